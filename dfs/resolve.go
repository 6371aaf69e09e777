package dfs

import (
	"sort"
	"strings"
	"time"
)

// conflictMark separates a path from the conflict suffix of a keep_both loser.
const conflictMark = ".conflict-"

// Visible is one name the namespace shows and the entry behind it.
type Visible struct {
	Path     string // the name shown (a conflict copy's own name)
	Base     string // the path the entries are stored under
	Entry    EntryRecord
	Conflict bool // a keep_both loser
}

// ConflictName is the name a keep_both loser is shown under: NAME.conflict-<node>-<time>.
func ConflictName(base string, v Version) string {
	node := v.Writer
	if node == "" {
		node = v.WriterID
	}
	return base + conflictMark + node + "-" + time.Unix(0, v.HLC.Wall).UTC().Format("20060102T150405.000Z")
}

// conflictBase returns the path a conflict name belongs to.
func conflictBase(p string) (string, bool) {
	i := strings.LastIndex(p, conflictMark)
	if i <= 0 {
		return "", false
	}
	return p[:i], true
}

// superseded reports whether entry i of es was seen by another writer's entry.
func superseded(es []EntryRecord, i int) bool {
	e := es[i]
	for j, f := range es {
		if j == i || f.Cur.WriterID == e.Cur.WriterID {
			continue
		}
		for _, s := range f.Seen {
			if s.WriterID == e.Cur.WriterID && e.Cur.HLC.Compare(s.HLC) <= 0 {
				return true
			}
		}
	}
	return false
}

// Resolve computes what one path shows from every writer's entry of it. An entry seen by a
// later write of another writer is superseded; of the rest (the concurrent heads) the one
// with the latest HLC wins. With keep_both, the other live heads stay visible as conflict
// copies (ConflictName). A winner that is a deletion shows nothing under the path. Pure
// and deterministic: the same entries (in any order) give the same answer on every node.
// winner is -1 when no entry competes. Strong trees resolve with the committed policy
// (policyOf): the latest committed revision wins.
func Resolve(es []EntryRecord, policy string) (winner int, vis []Visible) {
	if policy == committedPolicy {
		return resolveCommitted(es)
	}
	winner = -1
	var heads []int
	for i, e := range es {
		if !e.Withdrawn && !superseded(es, i) {
			heads = append(heads, i)
		}
	}
	if len(heads) == 0 { // only withdrawn or (inconsistent) mutually superseded entries
		for i, e := range es {
			if !e.Withdrawn {
				heads = append(heads, i)
			}
		}
	}
	for _, i := range heads {
		if winner < 0 || es[i].Cur.HLC.Compare(es[winner].Cur.HLC) > 0 {
			winner = i
		}
	}
	if winner < 0 {
		return -1, nil
	}
	w := es[winner]
	if !w.Cur.Deleted {
		vis = append(vis, Visible{Path: w.Path, Base: w.Path, Entry: w})
	}
	if policy == KeepBoth {
		for _, i := range heads {
			if i == winner || es[i].Cur.Deleted {
				continue
			}
			vis = append(vis, Visible{Path: ConflictName(es[i].Path, es[i].Cur), Base: es[i].Path, Entry: es[i], Conflict: true})
		}
	}
	sort.Slice(vis, func(a, b int) bool { return vis[a].Path < vis[b].Path })
	return winner, vis
}

// nextNumber is the version number of a new write of a path.
func nextNumber(es []EntryRecord) uint64 {
	var n uint64
	for _, e := range es {
		n = max(n, e.Cur.Number)
	}
	return n + 1
}

// seenAll is the Seen list of a write that saw every entry of es (the writer's own
// excluded).
func seenAll(es []EntryRecord, self string) []Seen {
	var out []Seen
	for _, e := range es {
		if e.Cur.WriterID != self {
			out = append(out, Seen{WriterID: e.Cur.WriterID, HLC: e.Cur.HLC})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WriterID < out[j].WriterID })
	return out
}
