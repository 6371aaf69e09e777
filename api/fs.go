package api

import "time"

// Distributed file system (docs/dfs.md). File content travels as raw streaming bodies
// (PUT and GET /v1/fs/files/{path}); the JSON types below are everything else.

// FS event types (GET /v1/fs/watch).
const (
	FSCreated  = "created"
	FSModified = "modified"
	FSDeleted  = "deleted"
)

// FSEntry is one file of the namespace (GET /v1/fs/list, the answer of a put).
type FSEntry struct {
	Path        string    `json:"path"`
	CID         string    `json:"cid"`
	Size        int64     `json:"size"`
	Mode        uint32    `json:"mode"`
	MTime       time.Time `json:"mtime"`
	Writer      string    `json:"writer"`    // node name
	WriterID    string    `json:"writer_id"` // node peer ID
	Version     uint64    `json:"version"`
	HLC         string    `json:"hlc"`
	Replication int       `json:"replication"`
	Holders     []string  `json:"holders,omitempty"` // node names chosen at the write
	// Conflict marks a keep_both loser shown under NAME.conflict-<node>-<time>.
	Conflict bool `json:"conflict,omitempty"`
	// Acked are the holders that confirmed the write (the answer of a put only).
	Acked []string `json:"acked,omitempty"`
}

// FSCopy is one node holding a file's blocks.
type FSCopy struct {
	Node   string `json:"node"`
	ID     string `json:"id"`
	Status string `json:"status"` // the node's membership status
}

// FSStat is GET /v1/fs/stat/{path}: the entry, where its copies are and whether this node
// has its blocks cached (a non-holder that read it).
type FSStat struct {
	FSEntry
	Copies     []FSCopy `json:"copies"`
	PinnedHere bool     `json:"pinned_here"`
	CachedHere bool     `json:"cached_here"`
	Tree       FSTree   `json:"tree"`
}

// FSTree are a tree's settings (POST /v1/fs/trees, `fs init`).
type FSTree struct {
	Prefix      string `json:"prefix"`
	Replication int    `json:"replication"`
	// Consistency is "eventual" (default) or "strong": a strong tree's writes commit
	// through the Raft lock service (compare-and-set with the writer's fencing token) and
	// its reads are linearizable; only the side of a partition with a Raft majority can
	// write it. Changed only while the tree holds no file.
	Consistency string `json:"consistency"`
	CacheMB     int64  `json:"cache_mb,omitempty"`
	Versions    int    `json:"versions"`
	Conflict    string `json:"conflict"` // last_write_wins | keep_both
	Ack         int    `json:"ack,omitempty"`
}

// FSVersion is one kept version of a path (GET /v1/fs/versions/{path}).
type FSVersion struct {
	Version uint64    `json:"version"`
	CID     string    `json:"cid,omitempty"`
	Size    int64     `json:"size"`
	MTime   time.Time `json:"mtime"`
	Writer  string    `json:"writer"`
	Deleted bool      `json:"deleted,omitempty"`
	Current bool      `json:"current,omitempty"`
}

// FSEvent is one change of the namespace as this node saw it (GET /v1/fs/watch, SSE).
type FSEvent struct {
	Type    string    `json:"type"` // created | modified | deleted
	Path    string    `json:"path"`
	Node    string    `json:"node"` // the writer
	CID     string    `json:"cid,omitempty"`
	Size    int64     `json:"size"`
	Version uint64    `json:"version"`
	HLC     string    `json:"hlc"`
	Time    time.Time `json:"time"`
}

// FSMoveRequest is POST /v1/fs/move.
type FSMoveRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
	// LockToken is the fencing token of a lock the writer holds (strong trees; 0: none).
	LockToken uint64 `json:"lock_token,omitempty"`
}

// FSRevertRequest is POST /v1/fs/revert.
type FSRevertRequest struct {
	Path    string `json:"path"`
	Version uint64 `json:"version"`
	// LockToken is the fencing token of a lock the writer holds (strong trees; 0: none).
	LockToken uint64 `json:"lock_token,omitempty"`
}

// FSSnapshotRequest is POST /v1/fs/snapshots.
type FSSnapshotRequest struct {
	Prefix string `json:"prefix"`
	Name   string `json:"name"`
}

// FSRestoreRequest is POST /v1/fs/restore.
type FSRestoreRequest struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
}

// FSSnapshot describes a snapshot (GET /v1/fs/snapshots).
type FSSnapshot struct {
	Name    string    `json:"name"`
	Prefix  string    `json:"prefix"`
	Created time.Time `json:"created"`
	Node    string    `json:"node"`
	Files   int       `json:"files"`
	Bytes   int64     `json:"bytes"`
}

// FSCount is the answer of mutations that touch several paths (rm -r, mv, restore).
type FSCount struct {
	Count int `json:"count"`
}

// FSDu is GET /v1/fs/du: the files under a prefix, and with by_node the bytes each node
// holds of them (the spread of a sharded tree).
type FSDu struct {
	Prefix string     `json:"prefix"`
	Files  int        `json:"files"`
	Bytes  int64      `json:"bytes"`
	ByNode []FSDuNode `json:"by_node,omitempty"`
}

// FSDuNode is one node's share of a prefix.
type FSDuNode struct {
	Node  string `json:"node"`
	ID    string `json:"id"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}
