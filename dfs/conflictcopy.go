package dfs

import (
	"context"
	"fmt"
	"io"

	"github.com/rads-lang/constellation/api"
)

// PutConflictCopy stores r's bytes as an ordinary file under name, a conflict name
// (NAME.conflict-<node>-<time>, as ConflictName makes). Put refuses such names so that a
// user cannot shadow the copies the namespace derives itself; the shared directories
// (dfs/share) use this to keep the loser of a conflict they resolve with keep_both on
// both sides under the same naming. The copy is a file like any other: listed, read,
// versioned and removed by name.
func (s *Service) PutConflictCopy(ctx context.Context, name string, r io.Reader, o PutOptions) (api.FSEntry, error) {
	if err := CheckPath(name); err != nil {
		return api.FSEntry{}, err
	}
	if _, ok := conflictBase(name); !ok {
		return api.FSEntry{}, &PathError{name, "not a conflict name (NAME" + conflictMark + "<node>-<time>); use Put"}
	}
	rf, ack, err := s.writeSettings(name, o)
	if err != nil {
		return api.FSEntry{}, err
	}
	var pre *committed
	if s.isStrong(name) { // a strong tree commits the copy through the lock service too
		c, err := s.strongGet(ctx, name)
		if err != nil {
			return api.FSEntry{}, err
		}
		pre = &c
	}
	root, size, err := s.content.Add(ctx, r, o.Chunker)
	if err != nil {
		return api.FSEntry{}, fmt.Errorf("dfs: storing %s: %w", name, err)
	}
	return s.putRoot(ctx, name, root, size, rf, ack, o.Mode, o.LockToken, pre)
}

// storedFile reports whether name is a path with entries of its own (a conflict copy
// written by PutConflictCopy is one; a copy the namespace derives is not).
func (s *Service) storedFile(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.idx[name]
	return st != nil && len(st.vis) > 0
}
