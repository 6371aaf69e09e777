package dfs

import (
	"fmt"
	"strings"

	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/state"
)

// Collections of the DFS in the replicated document.
const (
	// CollEntries holds one EntryRecord per (path, writer node): key path + "\x00" +
	// writer peer ID. A node writes only its own key of a path; what a path shows is
	// resolved from all of them (Resolve), the same on every node.
	CollEntries = "fs_entries"
	// CollTrees holds one TreeRecord per tree prefix (fs init).
	CollTrees = "fs_trees"
	// CollPins holds one PinRecord per (node, root): key node peer ID + "\x00" + CID. Only
	// the node itself writes its pins.
	CollPins = "fs_pins"
	// CollCapacity holds one CapacityRecord per node (its block store's room), written by
	// the node itself.
	CollCapacity = "fs_capacity"
	// CollSnapshots holds SnapshotRecords: key name, and name + "\x00" + part for the
	// further parts of a large snapshot.
	CollSnapshots = "fs_snapshots"
)

// Conflict policies of a tree.
const (
	LastWriteWins = "last_write_wins"
	KeepBoth      = "keep_both"
)

// Stamp is a hybrid logical clock time (crdt.Timestamp) in a record.
type Stamp struct {
	Wall    int64  `cbor:"1,keyasint,omitempty"`
	Logical uint32 `cbor:"2,keyasint,omitempty"`
	Replica uint64 `cbor:"3,keyasint,omitempty"`
}

func stampOf(t crdt.Timestamp) Stamp {
	return Stamp{Wall: t.Wall, Logical: t.Logical, Replica: uint64(t.Replica)}
}

// Compare orders stamps as crdt.Timestamp does (wall, logical, replica).
func (s Stamp) Compare(o Stamp) int {
	switch {
	case s.Wall != o.Wall:
		return cmp3(s.Wall < o.Wall)
	case s.Logical != o.Logical:
		return cmp3(s.Logical < o.Logical)
	case s.Replica != o.Replica:
		return cmp3(s.Replica < o.Replica)
	}
	return 0
}

func cmp3(less bool) int {
	if less {
		return -1
	}
	return 1
}

// Version is one version of a file: what a path pointed to after one write.
type Version struct {
	CID      string `cbor:"1,keyasint,omitempty"`
	Size     int64  `cbor:"2,keyasint,omitempty"`
	Mode     uint32 `cbor:"3,keyasint,omitempty"`
	MTime    int64  `cbor:"4,keyasint,omitempty"` // unix ns
	Writer   string `cbor:"5,keyasint,omitempty"` // node name
	WriterID string `cbor:"6,keyasint,omitempty"` // node peer ID
	Number   uint64 `cbor:"7,keyasint,omitempty"` // 1, 2, ... per path
	HLC      Stamp  `cbor:"8,keyasint"`
	Deleted  bool   `cbor:"9,keyasint,omitempty"`
	// Replication is the number of copies wanted; Holders the nodes chosen at the write.
	Replication int      `cbor:"10,keyasint,omitempty"`
	Holders     []string `cbor:"11,keyasint,omitempty"`
	// Rev is the lock service's revision of the commit of a strong tree's version (0:
	// eventual); the latest committed revision wins (resolveCommitted).
	Rev uint64 `cbor:"12,keyasint,omitempty"`
}

// Seen says that a write saw writer's entry of the path at stamp HLC (it supersedes
// that entry and every earlier one of the same writer).
type Seen struct {
	WriterID string `cbor:"1,keyasint"`
	HLC      Stamp  `cbor:"2,keyasint"`
}

// EntryRecord is one writer's entry of a path (collection fs_entries).
type EntryRecord struct {
	Path string  `cbor:"1,keyasint"`
	Cur  Version `cbor:"2,keyasint"`
	// Seen are the other writers' entries this write superseded.
	Seen []Seen `cbor:"3,keyasint,omitempty"`
	// History are earlier versions of the path, newest first (at most the tree's
	// versions - 1).
	History []Version `cbor:"4,keyasint,omitempty"`
	// Withdrawn: the writer took its entry out of a conflict (rm of its conflict copy).
	Withdrawn bool   `cbor:"5,keyasint,omitempty"`
	Namespace string `cbor:"6,keyasint,omitempty"`
}

// TreeRecord are the settings of a tree (collection fs_trees, key its prefix).
type TreeRecord struct {
	Prefix      string `cbor:"1,keyasint"`
	Replication int    `cbor:"2,keyasint,omitempty"`
	Consistency string `cbor:"3,keyasint,omitempty"`
	CacheMB     int64  `cbor:"4,keyasint,omitempty"`
	Versions    int    `cbor:"5,keyasint,omitempty"`
	Conflict    string `cbor:"6,keyasint,omitempty"`
	Ack         int    `cbor:"7,keyasint,omitempty"` // 0: majority of Replication
	Namespace   string `cbor:"8,keyasint,omitempty"`
}

// PinRecord is a node's fact that it holds a root pinned (collection fs_pins).
type PinRecord struct {
	Root   string `cbor:"1,keyasint"`
	NodeID string `cbor:"2,keyasint"`
	Size   int64  `cbor:"3,keyasint,omitempty"`
	At     int64  `cbor:"4,keyasint,omitempty"` // unix ns
}

// CapacityRecord is a node's block store room (collection fs_capacity).
type CapacityRecord struct {
	CapacityBytes int64  `cbor:"1,keyasint,omitempty"`
	UsedBytes     int64  `cbor:"2,keyasint,omitempty"`
	Zone          string `cbor:"3,keyasint,omitempty"`
}

// SnapFile is one file of a snapshot.
type SnapFile struct {
	Path string `cbor:"1,keyasint"`
	CID  string `cbor:"2,keyasint"`
	Size int64  `cbor:"3,keyasint,omitempty"`
	Mode uint32 `cbor:"4,keyasint,omitempty"`
}

// SnapshotRecord is a named map of paths to CIDs (collection fs_snapshots). Part 0 (key:
// the name) carries the header; parts 1..Parts-1 carry more files.
type SnapshotRecord struct {
	Name      string     `cbor:"1,keyasint"`
	Prefix    string     `cbor:"2,keyasint,omitempty"`
	Created   int64      `cbor:"3,keyasint,omitempty"`
	Node      string     `cbor:"4,keyasint,omitempty"`
	Parts     int        `cbor:"5,keyasint,omitempty"`
	Files     []SnapFile `cbor:"6,keyasint,omitempty"`
	Count     int        `cbor:"7,keyasint,omitempty"`
	Bytes     int64      `cbor:"8,keyasint,omitempty"`
	Namespace string     `cbor:"9,keyasint,omitempty"`
}

// snapPartFiles is the number of files per snapshot record part (well under the record
// limit with 4 KiB paths... not quite: parts are also cut by size, see snapshot.go).
const snapPartFiles = 512

func entryKey(path, writerID string) string { return path + "\x00" + writerID }

func splitEntryKey(k string) (path, writerID string, ok bool) {
	i := strings.IndexByte(k, 0)
	if i < 0 {
		return "", "", false
	}
	return k[:i], k[i+1:], true
}

func pinKey(nodeID, root string) string { return nodeID + "\x00" + root }

func snapPartKey(name string, part int) string {
	if part == 0 {
		return name
	}
	return fmt.Sprintf("%s\x00%d", name, part)
}

// decodeEntry decodes an entry record and checks what the resolver relies on.
func decodeEntry(b []byte) (EntryRecord, error) {
	var e EntryRecord
	if err := state.Decode(b, &e); err != nil {
		return e, err
	}
	if err := CheckPath(e.Path); err != nil {
		return e, fmt.Errorf("dfs: entry record: %w", err)
	}
	if e.Cur.WriterID == "" {
		return e, fmt.Errorf("dfs: entry record of %s has no writer", e.Path)
	}
	return e, nil
}

func decodeTree(b []byte) (TreeRecord, error) {
	var t TreeRecord
	if err := state.Decode(b, &t); err != nil {
		return t, err
	}
	if _, err := CleanPrefix(t.Prefix); err != nil {
		return t, fmt.Errorf("dfs: tree record: %w", err)
	}
	return t, nil
}

func decodePin(b []byte) (PinRecord, error) {
	var p PinRecord
	err := state.Decode(b, &p)
	return p, err
}

func decodeSnapshot(b []byte) (SnapshotRecord, error) {
	var s SnapshotRecord
	err := state.Decode(b, &s)
	return s, err
}
