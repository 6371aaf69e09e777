package state

import (
	"context"
	"slices"

	"github.com/rads-lang/constellation/crdt"
)

// The change index: a per-node counter bumped by every committed local Update and every
// remote delta that changed something, with the index of each collection's last change.
// Lists carry it (X-Constellation-Index) and blocking reads wait for it to pass a value
// the client saw, as Consul's and Nomad's blocking queries do. It starts at 1 with every
// process, so it is only comparable with indexes of the same node and run: WaitIndex
// answers at once for an index it has not reached (another node's, or a previous run's).

// bump raises the index and marks colls changed at it, waking every WaitIndex.
func (s *Store) bump(colls []string) {
	s.imu.Lock()
	s.index++
	for _, c := range colls {
		s.collIndex[c] = s.index
	}
	close(s.indexCh)
	s.indexCh = make(chan struct{})
	s.imu.Unlock()
}

// changedColls lists the collections of changes, once each.
func changedColls(cs []crdt.Change) []string {
	var out []string
	for _, c := range cs {
		if !slices.Contains(out, c.Collection) {
			out = append(out, c.Collection)
		}
	}
	return out
}

// Touch raises the index for colls without a document change: for answers derived from
// local judgement, e.g. a member's status from the failure detector.
func (s *Store) Touch(colls ...string) { s.bump(colls) }

// Index is the index of the last change to any of colls (to anything when none are given);
// at least 1.
func (s *Store) Index(colls ...string) uint64 {
	s.imu.Lock()
	defer s.imu.Unlock()
	return s.indexLocked(colls)
}

func (s *Store) indexLocked(colls []string) uint64 {
	if len(colls) == 0 {
		return s.index
	}
	idx := uint64(1)
	for _, c := range colls {
		idx = max(idx, s.collIndex[c])
	}
	return idx
}

// WaitIndex blocks until the index of colls (see Index) exceeds after, or ctx ends, and
// returns the index then (with ctx's error when it ended first). It returns at once when
// after is beyond the whole store's index: the caller's index is not from this node's run.
func (s *Store) WaitIndex(ctx context.Context, after uint64, colls ...string) (uint64, error) {
	for {
		s.imu.Lock()
		cur, top, ch := s.indexLocked(colls), s.index, s.indexCh
		s.imu.Unlock()
		if cur > after || after > top {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return cur, ctx.Err()
		}
	}
}
