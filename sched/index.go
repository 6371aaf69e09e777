package sched

// slotCounts counts instances per node slot for one label, as a dense list of entries (fast
// to iterate, which placement does for every term) plus a slot -> entry position map (for
// O(1) updates).
type slotCounts struct {
	pos     map[int32]int32 // slot -> position in entries
	entries []slotCount
}

type slotCount struct {
	slot, n int32
}

func (s *slotCounts) inc(slot int32) {
	if i, ok := s.pos[slot]; ok {
		s.entries[i].n++
		return
	}
	s.pos[slot] = int32(len(s.entries))
	s.entries = append(s.entries, slotCount{slot, 1})
}

// dec decrements slot's count and reports whether the set became empty.
func (s *slotCounts) dec(slot int32) bool {
	i, ok := s.pos[slot]
	if !ok {
		return len(s.entries) == 0
	}
	if s.entries[i].n--; s.entries[i].n > 0 {
		return false
	}
	last := len(s.entries) - 1
	if int(i) != last {
		s.entries[i] = s.entries[last]
		s.pos[s.entries[i].slot] = i
	}
	s.entries = s.entries[:last]
	delete(s.pos, slot)
	return len(s.entries) == 0
}

// maxConstraintCache bounds the number of cached constraint evaluations.
const maxConstraintCache = 1024

// constraintMask is a cached evaluation of one constraint on every node slot.
type constraintMask struct {
	gen uint64 // Cluster.nodeGen it was computed at
	ok  []bool // by slot
}

// mask returns, for each slot, whether the node satisfies con, evaluating it only when the
// nodes changed since the last call with the same constraint.
func (c *Cluster) mask(con *Constraint) []bool {
	key := con.String()
	m := c.masks[key]
	if m != nil && m.gen == c.nodeGen && len(m.ok) == len(c.nodes) {
		return m.ok
	}
	if m == nil {
		if len(c.masks) >= maxConstraintCache {
			clear(c.masks)
		}
		m = &constraintMask{}
		c.masks[key] = m
	}
	m.gen = c.nodeGen
	m.ok = append(m.ok[:0], make([]bool, len(c.nodes))...)
	for slot, n := range c.nodes {
		m.ok[slot] = n != nil && con.Match(&n.Node)
	}
	return m.ok
}
