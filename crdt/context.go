package crdt

import (
	"fmt"
	"sort"
)

// Dot identifies one event: the Counter-th event issued by Replica. Every
// local mutation of a Document consumes exactly one dot, and the dot's counter
// is also the mutation's delta sequence number.
type Dot struct {
	Replica ReplicaID
	Counter uint64
}

func (d Dot) String() string { return fmt.Sprintf("%s:%d", d.Replica, d.Counter) }

func (d Dot) less(o Dot) bool {
	if d.Replica != o.Replica {
		return d.Replica < o.Replica
	}
	return d.Counter < o.Counter
}

// VersionVector maps each origin replica to the highest contiguous sequence
// number (dot counter) seen from it: every event 1..v[r] of r is included.
type VersionVector map[ReplicaID]uint64

// Clone returns a copy of v.
func (v VersionVector) Clone() VersionVector {
	out := make(VersionVector, len(v))
	for r, n := range v {
		out[r] = n
	}
	return out
}

// Covers reports whether v includes every event of o.
func (v VersionVector) Covers(o VersionVector) bool {
	for r, n := range o {
		if v[r] < n {
			return false
		}
	}
	return true
}

// CausalContext is a set of dots, stored as a version vector (the contiguous
// prefix per replica) plus a dot cloud (the dots past a gap). Adding the dot
// that closes a gap folds the following cloud dots into the vector, so a
// context that has seen every event of every replica is just a vector.
// The zero value is an empty context ready to use.
type CausalContext struct {
	vv    VersionVector
	cloud map[Dot]struct{}
}

// NewCausalContext returns an empty context.
func NewCausalContext() *CausalContext { return &CausalContext{} }

// Contains reports whether d is in the context.
func (c *CausalContext) Contains(d Dot) bool {
	if d.Counter <= c.vv[d.Replica] {
		return true
	}
	_, ok := c.cloud[d]
	return ok
}

// Add inserts d, compacting the cloud as far as the new dot allows.
func (c *CausalContext) Add(d Dot) {
	if d.Counter == 0 {
		return
	}
	cur := c.vv[d.Replica]
	switch {
	case d.Counter <= cur:
		return
	case d.Counter == cur+1:
		if c.vv == nil {
			c.vv = make(VersionVector)
		}
		cur++
		for len(c.cloud) > 0 {
			next := Dot{d.Replica, cur + 1}
			if _, ok := c.cloud[next]; !ok {
				break
			}
			delete(c.cloud, next)
			cur++
		}
		c.vv[d.Replica] = cur
	default:
		if c.cloud == nil {
			c.cloud = make(map[Dot]struct{})
		}
		c.cloud[d] = struct{}{}
	}
}

// Merge adds every dot of o to c and compacts.
func (c *CausalContext) Merge(o *CausalContext) {
	if len(o.vv) > 0 && c.vv == nil {
		c.vv = make(VersionVector, len(o.vv))
	}
	for r, n := range o.vv {
		if n > c.vv[r] {
			c.vv[r] = n
		}
	}
	for d := range o.cloud {
		if c.cloud == nil {
			c.cloud = make(map[Dot]struct{})
		}
		c.cloud[d] = struct{}{}
	}
	c.Compact()
}

// Compact folds into the version vector every cloud dot that is contiguous
// with it and drops cloud dots the vector already covers.
func (c *CausalContext) Compact() {
	if len(c.cloud) == 0 {
		return
	}
	for _, d := range c.cloudSorted() {
		cur := c.vv[d.Replica]
		switch {
		case d.Counter <= cur:
			delete(c.cloud, d)
		case d.Counter == cur+1:
			if c.vv == nil {
				c.vv = make(VersionVector)
			}
			c.vv[d.Replica] = d.Counter
			delete(c.cloud, d)
		}
	}
}

// Max returns the highest counter of r in the context.
func (c *CausalContext) Max(r ReplicaID) uint64 {
	m := c.vv[r]
	for d := range c.cloud {
		if d.Replica == r && d.Counter > m {
			m = d.Counter
		}
	}
	return m
}

// Version returns a copy of the compact part of the context.
func (c *CausalContext) Version() VersionVector { return c.vv.Clone() }

// CloudLen returns the number of dots held outside the version vector.
func (c *CausalContext) CloudLen() int { return len(c.cloud) }

// Clone returns a deep copy.
func (c *CausalContext) Clone() *CausalContext {
	out := &CausalContext{}
	if len(c.vv) > 0 {
		out.vv = c.vv.Clone()
	}
	if len(c.cloud) > 0 {
		out.cloud = make(map[Dot]struct{}, len(c.cloud))
		for d := range c.cloud {
			out.cloud[d] = struct{}{}
		}
	}
	return out
}

// Equal reports whether c and o hold the same dots (both compacted).
func (c *CausalContext) Equal(o *CausalContext) bool {
	if len(c.cloud) != len(o.cloud) {
		return false
	}
	for d := range c.cloud {
		if _, ok := o.cloud[d]; !ok {
			return false
		}
	}
	n := 0
	for r, v := range c.vv {
		if v == 0 {
			continue
		}
		n++
		if o.vv[r] != v {
			return false
		}
	}
	m := 0
	for _, v := range o.vv {
		if v != 0 {
			m++
		}
	}
	return n == m
}

func (c *CausalContext) cloudSorted() []Dot {
	out := make([]Dot, 0, len(c.cloud))
	for d := range c.cloud {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	return out
}

func (c *CausalContext) replicasSorted() []ReplicaID {
	out := make([]ReplicaID, 0, len(c.vv))
	for r, n := range c.vv {
		if n > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
