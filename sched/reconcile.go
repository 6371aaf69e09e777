package sched

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Stamp orders instance creations: the wall and logical parts of the hybrid logical clock
// timestamp of the instance's record (crdt.Timestamp's Wall and Logical).
type Stamp struct {
	Wall    int64
	Logical uint32
}

func (s Stamp) cmp(o Stamp) int {
	return cmp.Or(cmp.Compare(s.Wall, o.Wall), cmp.Compare(s.Logical, o.Logical))
}

// Running is one instance of a deployment as the CRDT state records it.
type Running struct {
	ID      string // e.g. "web-3"
	Index   int    // 3 for web-3; see ParseInstanceID
	Node    string
	Created Stamp
	Ready   bool // running and healthy, as opposed to claimed or starting
}

// Reconciliation is what Reconcile decided.
type Reconciliation struct {
	Keep    []Running // at most one per index in [0, desired), sorted by Index
	Stop    []Running // duplicates and indexes >= desired, sorted by ID then Node
	Missing []int     // indexes in [0, desired) with no instance, ascending
}

// Reconcile decides which instances of a deployment to keep when running holds more than
// its desired count, e.g. after a partition heals and both sides placed the same index.
// For each index below desired it keeps one instance, preferring in order: Ready, the
// earliest Created, the node with the highest rendezvous weight for the deployment, the
// smallest node ID, the smallest instance ID. Everything else (duplicates, indexes >= desired
// or negative) is stopped. The result depends only on the set of inputs, not their order, so
// every node computes the same answer; pass only instances on nodes that are not dead.
func Reconcile(deployment string, desired int, running []Running) Reconciliation {
	kh := keyHash(deployment)
	weight := func(n string) uint64 { return combine(kh, nodeHash(n)) }
	rs := slices.Clone(running)
	slices.SortFunc(rs, func(a, b Running) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		if a.Ready != b.Ready {
			if a.Ready {
				return -1
			}
			return 1
		}
		if d := a.Created.cmp(b.Created); d != 0 {
			return d
		}
		if wa, wb := weight(a.Node), weight(b.Node); wa != wb {
			if wa > wb {
				return -1
			}
			return 1
		}
		if d := strings.Compare(a.Node, b.Node); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	var out Reconciliation
	next := 0 // smallest index not yet kept or reported missing
	for i, r := range rs {
		if r.Index < 0 || r.Index >= desired || i > 0 && rs[i-1].Index == r.Index {
			out.Stop = append(out.Stop, r)
			continue
		}
		for ; next < r.Index; next++ {
			out.Missing = append(out.Missing, next)
		}
		out.Keep = append(out.Keep, r)
		next = r.Index + 1
	}
	for ; next < desired; next++ {
		out.Missing = append(out.Missing, next)
	}
	slices.SortFunc(out.Stop, func(a, b Running) int {
		if d := strings.Compare(a.ID, b.ID); d != 0 {
			return d
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out
}

// InstanceID returns the name of a deployment's instance: "<deployment>-<index>".
func InstanceID(deployment string, index int) string {
	return deployment + "-" + strconv.Itoa(index)
}

// ParseInstanceID splits "<deployment>-<index>" at the last '-'; ok is false when there is
// no non-empty deployment or the index is not a non-negative decimal integer.
func ParseInstanceID(id string) (deployment string, index int, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || i == len(id)-1 {
		return "", 0, false
	}
	num := id[i+1:]
	for k := 0; k < len(num); k++ {
		if num[k] < '0' || num[k] > '9' {
			return "", 0, false
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || (len(num) > 1 && num[0] == '0') {
		return "", 0, false
	}
	return id[:i], n, true
}
