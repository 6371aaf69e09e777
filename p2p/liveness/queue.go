package liveness

import "sort"

// queued is one pending membership change.
type queued struct {
	e         entry
	size      int
	transmits int
	order     uint64 // insertion order; newer first among equal transmits
}

// broadcastQueue holds at most one pending change per member (a newer change
// about a member replaces the older one), so its size is bounded by the
// number of members.
type broadcastQueue struct {
	items map[string]*queued
	next  uint64
}

func (q *broadcastQueue) push(e entry) {
	if q.items == nil {
		q.items = make(map[string]*queued)
	}
	q.next++
	q.items[e.node] = &queued{e: e, size: entrySize(e), order: q.next}
}

func (q *broadcastQueue) remove(node string) { delete(q.items, node) }

func (q *broadcastQueue) len() int { return len(q.items) }

// take appends to b the least transmitted changes that fit in budget bytes,
// counts the transmission and drops changes sent limit times. Changes about
// skip are left out (the caller adds its own entry about that member). At
// most maxN changes are taken.
func (q *broadcastQueue) take(b []byte, budget, limit, maxN int, skip string) []byte {
	if len(q.items) == 0 || budget <= 0 || maxN <= 0 {
		return b
	}
	list := make([]*queued, 0, len(q.items))
	for _, it := range q.items {
		if it.e.node != skip {
			list = append(list, it)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].transmits != list[j].transmits {
			return list[i].transmits < list[j].transmits
		}
		return list[i].order > list[j].order
	})
	for _, it := range list {
		if maxN == 0 {
			break
		}
		if it.size > budget {
			continue
		}
		budget -= it.size
		maxN--
		b = appendEntry(b, it.e)
		it.transmits++
		if it.transmits >= limit {
			delete(q.items, it.e.node)
		}
	}
	return b
}
