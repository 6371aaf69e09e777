package share

import (
	"sort"
	"strings"
	"time"

	"github.com/rads-lang/constellation/dfs"
)

// Sync modes and conflict policies of a share.
const (
	Realtime      = "realtime"
	Periodic      = "periodic"
	LastWriteWins = dfs.LastWriteWins
	KeepBoth      = dfs.KeepBoth
)

// Local is a regular file of the shared directory as a scan found it.
type Local struct {
	Size  int64
	MTime time.Time
	Mode  uint32 // permission bits
	Hash  string // SHA-256 of the content, hex
}

// Remote is a file of the shared DFS tree.
type Remote struct {
	CID    string
	Size   int64
	MTime  time.Time // when the writer wrote it
	Writer string    // node name of the writer
	Mode   uint32
	// Hash is the SHA-256 of the content when the runner knows it (it uploaded or
	// downloaded that CID), else "". It lets two sides that changed to the same bytes agree
	// without a conflict.
	Hash string
}

// Synced is what a path was on both sides after its last sync: the base of the three-way
// comparison (persisted with the share).
type Synced struct {
	Hash  string `json:"hash"`
	CID   string `json:"cid"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"` // the local file's mtime (ns) when synced: a scan reuses Hash while size and mtime match
}

// Class is what happened to a path since its last sync.
type Class string

// Classes of a path (Plan's Action.Class).
const (
	LocalNew      Class = "local-new"
	LocalModified Class = "local-modified"
	LocalDeleted  Class = "local-deleted"
	RemoteChanged Class = "remote-changed"
	BothChanged   Class = "both-changed"
)

// Op is one step of the runner.
type Op string

// Ops of a plan.
const (
	// Upload puts the local file to the DFS path.
	Upload Op = "upload"
	// Download writes the DFS file locally (temp file + rename).
	Download Op = "download"
	// DeleteRemote removes the DFS file.
	DeleteRemote Op = "delete-remote"
	// DeleteLocal removes the local file.
	DeleteLocal Op = "delete-local"
	// Adopt records both sides as synced (they hold the same bytes).
	Adopt Op = "adopt"
	// Forget drops the path's sync record (gone on both sides, or left local-only).
	Forget Op = "forget"
	// KeepLocal copies the local file to the conflict name Copy, locally and (when
	// writable) in the DFS, before the remote version replaces it.
	KeepLocal Op = "keep-local"
	// KeepRemote copies the DFS file to the conflict name Copy, in the DFS and locally,
	// before the local version replaces it.
	KeepRemote Op = "keep-remote"
	// Report changes nothing: the path needs the user (Reason says why).
	Report Op = "report"
)

// Action is one step for one path. Steps of one path come in order.
type Action struct {
	Op    Op
	Path  string // relative to the share's root, with "/" separators
	Class Class
	Copy  string // the conflict name (KeepLocal, KeepRemote)
	// Reason explains a Report, a conflict's outcome or a read-only share's restore.
	Reason string
	// Changed is when the change being applied happened, when known (zero otherwise):
	// the base of the lag.
	Changed time.Time
}

// Input is everything Plan looks at.
type Input struct {
	Local  map[string]Local
	Remote map[string]Remote
	Base   map[string]Synced
	// Skip names paths the scans left out on either side (too large, a special file, a
	// link): no action touches them, so a skipped file is never taken for a deletion.
	Skip     map[string]bool
	Policy   string // LastWriteWins or KeepBoth
	Writable bool   // local changes go to the DFS; otherwise the DFS side wins
	Self     string // this node's name (conflict copies of the local side)
}

// Plan compares the local files, the DFS files and the last-synced state and returns the
// steps that bring both sides together, sorted by path. Pure and deterministic.
//
//   - only the local side changed: upload or delete remotely (writable); a read-only share
//     restores the DFS version instead, and leaves files that exist only locally alone;
//   - only the DFS side changed: download or delete locally;
//   - both changed: the same bytes are adopted; content beats a deletion on either side;
//     otherwise the policy decides: the newer write wins (last_write_wins) and with
//     keep_both the loser is kept as NAME.conflict-<node>-<time> on both sides.
func Plan(in Input) []Action {
	paths := map[string]bool{}
	for p := range in.Local {
		paths[p] = true
	}
	for p := range in.Remote {
		paths[p] = true
	}
	for p := range in.Base {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		if !in.Skip[p] {
			sorted = append(sorted, p)
		}
	}
	sort.Strings(sorted)
	var out []Action
	for _, p := range sorted {
		out = append(out, planPath(in, p)...)
	}
	return out
}

func planPath(in Input, p string) []Action {
	l, hasL := in.Local[p]
	r, hasR := in.Remote[p]
	b, hasB := in.Base[p]
	lc := hasL != hasB || (hasL && l.Hash != b.Hash)
	rc := hasR != hasB || (hasR && r.CID != b.CID)
	act := func(op Op, c Class, t time.Time, reason string) Action {
		return Action{Op: op, Path: p, Class: c, Changed: t, Reason: reason}
	}
	switch {
	case !lc && !rc:
		return nil
	case lc && !rc:
		switch {
		case hasL && !hasB:
			if in.Writable {
				return []Action{act(Upload, LocalNew, l.MTime, "")}
			}
			if hasR { // unreachable: !rc with no base means no remote file
				return nil
			}
			return []Action{act(Report, LocalNew, time.Time{}, "exists only locally; the share is read-only (DFS to local), so it is not uploaded")}
		case hasL:
			if in.Writable {
				return []Action{act(Upload, LocalModified, l.MTime, "")}
			}
			return []Action{act(Download, LocalModified, time.Time{}, "local edit overwritten: the share is read-only (DFS to local)")}
		default:
			if in.Writable {
				return []Action{act(DeleteRemote, LocalDeleted, time.Time{}, "")}
			}
			return []Action{act(Download, LocalDeleted, time.Time{}, "restored: the share is read-only (DFS to local)")}
		}
	case !lc && rc:
		switch {
		case hasR:
			return []Action{act(Download, RemoteChanged, r.MTime, "")}
		case hasL:
			return []Action{act(DeleteLocal, RemoteChanged, time.Time{}, "")}
		default:
			return []Action{act(Forget, RemoteChanged, time.Time{}, "")}
		}
	}
	// both changed
	switch {
	case !hasL && !hasR:
		return []Action{act(Forget, BothChanged, time.Time{}, "")}
	case hasL && hasR && r.Hash != "" && r.Hash == l.Hash:
		return []Action{act(Adopt, BothChanged, time.Time{}, "")}
	case !hasL:
		return []Action{act(Download, BothChanged, r.MTime, "deleted locally, modified in the DFS: the content is kept")}
	case !hasR:
		if in.Writable {
			return []Action{act(Upload, BothChanged, l.MTime, "deleted in the DFS, modified locally: the content is kept")}
		}
		return []Action{act(Forget, BothChanged, time.Time{}, "deleted in the DFS, modified locally: kept locally only (read-only share)")}
	}
	localWins := in.Writable && l.MTime.After(r.MTime)
	why := "the DFS version is newer"
	if !in.Writable {
		why = "the share is read-only (DFS to local)"
	} else if localWins {
		why = "the local version is newer"
	}
	if in.Policy != KeepBoth {
		if localWins {
			return []Action{act(Upload, BothChanged, l.MTime, "conflict, last_write_wins: "+why)}
		}
		return []Action{act(Download, BothChanged, r.MTime, "conflict, last_write_wins: "+why)}
	}
	if localWins {
		cp := ConflictName(p, r.Writer, r.MTime)
		return []Action{
			{Op: KeepRemote, Path: p, Class: BothChanged, Copy: cp, Reason: "conflict, keep_both: " + why},
			act(Upload, BothChanged, l.MTime, "conflict, keep_both: "+why),
		}
	}
	cp := ConflictName(p, in.Self, l.MTime)
	return []Action{
		{Op: KeepLocal, Path: p, Class: BothChanged, Copy: cp, Reason: "conflict, keep_both: " + why},
		act(Download, BothChanged, r.MTime, "conflict, keep_both: "+why),
	}
}

// ConflictName is the name a conflict's loser is kept under, the DFS's own keep_both
// naming (dfs.ConflictName): NAME.conflict-<node>-<time>.
func ConflictName(p, node string, t time.Time) string {
	if node == "" {
		node = "unknown"
	}
	node = strings.NewReplacer("/", "_", " ", "_").Replace(node)
	return dfs.ConflictName(p, dfs.Version{Writer: node, HLC: dfs.Stamp{Wall: t.UnixNano()}})
}
