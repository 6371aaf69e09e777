package dfs

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sort"
)

// Candidate is a node that may hold a file's copy.
type Candidate struct {
	ID        string // peer ID
	Zone      string // failure domain label ("" = its own domain)
	FreeBytes int64  // room left in its block store
}

// Place chooses up to r holders of key (a file's root CID) among cands by weighted
// rendezvous hashing: each candidate scores -w/ln(h) with h a hash of (key, ID) mapped to
// (0,1) and w its free bytes, so a node with twice the room wins twice as often and the
// choice moves little when nodes come and go. Holders are spread over zones first (the best
// candidate of each zone in score order), then filled by score. Pure: the same input gives
// the same order on every node. Candidates without free room are never chosen.
func Place(key string, cands []Candidate, r int) []string {
	type scored struct {
		c     Candidate
		score float64
	}
	var s []scored
	for _, c := range cands {
		if c.FreeBytes <= 0 || c.ID == "" {
			continue
		}
		s = append(s, scored{c, rendezvousScore(key, c.ID, float64(c.FreeBytes))})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].score != s[j].score {
			return s[i].score > s[j].score
		}
		return s[i].c.ID < s[j].c.ID
	})
	if r > len(s) {
		r = len(s)
	}
	out := make([]string, 0, r)
	taken := map[string]bool{}
	zones := map[string]bool{}
	for _, x := range s { // one per zone, best first
		if len(out) == r {
			break
		}
		z := x.c.Zone
		if z == "" {
			z = "\x00" + x.c.ID
		}
		if zones[z] {
			continue
		}
		zones[z] = true
		taken[x.c.ID] = true
		out = append(out, x.c.ID)
	}
	for _, x := range s {
		if len(out) == r {
			break
		}
		if !taken[x.c.ID] {
			taken[x.c.ID] = true
			out = append(out, x.c.ID)
		}
	}
	return out
}

// rendezvousScore is the weighted rendezvous score -w/ln(h), h in (0,1).
func rendezvousScore(key, id string, w float64) float64 {
	sum := sha256.Sum256([]byte(key + "\x00" + id))
	v := binary.BigEndian.Uint64(sum[:8]) >> 11 // 53 bits
	h := (float64(v) + 0.5) / float64(uint64(1)<<53)
	return -w / math.Log(h)
}

// AckCount is how many holders must confirm a write: ack when set (capped at r), else a
// majority of r.
func AckCount(r, ack int) int {
	if r <= 0 {
		return 0
	}
	if ack > 0 {
		return min(ack, r)
	}
	return r/2 + 1
}
