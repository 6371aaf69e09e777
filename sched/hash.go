package sched

import (
	"slices"
	"strings"
)

// Rendezvous (highest random weight) hashing: every (key, node) pair gets a pseudo-random
// 64-bit weight and the node with the highest weight wins the key. When a node leaves, only
// the keys it won move (to their second-highest node); when one joins, it takes over only
// the keys for which it has the new highest weight. Weights depend on nothing but the two
// strings, so every node computes the same answer from the same membership.

// fnv1a64 hashes s with 64-bit FNV-1a.
func fnv1a64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is the splitmix64 / murmur3 finaliser: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// keyHash and nodeHash pre-hash each side so a weight costs one mix per pair.
func keyHash(key string) uint64   { return mix64(fnv1a64(key)) }
func nodeHash(node string) uint64 { return mix64(fnv1a64(node) ^ 0x9e3779b97f4a7c15) }

func combine(kh, nh uint64) uint64 { return mix64(kh ^ nh) }

// Weight returns the rendezvous weight of node for key: higher wins.
func Weight(key, node string) uint64 { return combine(keyHash(key), nodeHash(node)) }

// Owner returns the node among aliveNodeIDs with the highest rendezvous weight for
// deploymentID, or "" when aliveNodeIDs is empty. Equal weights (a 2^-64 event) go to the
// smaller node ID. Order and duplicates in aliveNodeIDs do not matter.
func Owner(deploymentID string, aliveNodeIDs []string) string {
	kh := keyHash(deploymentID)
	best, bestW := "", uint64(0)
	for _, n := range aliveNodeIDs {
		w := combine(kh, nodeHash(n))
		if best == "" || w > bestW || w == bestW && n < best {
			best, bestW = n, w
		}
	}
	return best
}

// Rank returns the distinct nodeIDs ordered by decreasing rendezvous weight for key: Rank[0]
// is the Owner, Rank[1] takes over when it leaves, and so on.
func Rank(key string, nodeIDs []string) []string {
	kh := keyHash(key)
	type nw struct {
		n string
		w uint64
	}
	ws := make([]nw, 0, len(nodeIDs))
	for _, n := range nodeIDs {
		ws = append(ws, nw{n, combine(kh, nodeHash(n))})
	}
	slices.SortFunc(ws, func(a, b nw) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		}
		return strings.Compare(a.n, b.n)
	})
	out := make([]string, 0, len(ws))
	for i, x := range ws {
		if i > 0 && x.n == ws[i-1].n {
			continue
		}
		out = append(out, x.n)
	}
	return out
}

// Rendezvous is a fixed set of nodes with their hashes precomputed, for callers deciding the
// owners of many keys against the same membership (Owner rehashes every node ID per call).
type Rendezvous struct {
	ids    []string // sorted, distinct
	hashes []uint64 // nodeHash(ids[i])
}

// NewRendezvous returns the set of the distinct nodeIDs.
func NewRendezvous(nodeIDs []string) *Rendezvous {
	ids := slices.Compact(slices.Sorted(slices.Values(nodeIDs)))
	r := &Rendezvous{ids: ids, hashes: make([]uint64, len(ids))}
	for i, id := range ids {
		r.hashes[i] = nodeHash(id)
	}
	return r
}

// Owner is Owner(key, nodeIDs) for the set's nodes.
func (r *Rendezvous) Owner(key string) string {
	kh := keyHash(key)
	best, bestW := -1, uint64(0)
	for i, h := range r.hashes {
		// ids are sorted, so on equal weights the first (smallest) ID stays.
		if w := combine(kh, h); best < 0 || w > bestW {
			best, bestW = i, w
		}
	}
	if best < 0 {
		return ""
	}
	return r.ids[best]
}
