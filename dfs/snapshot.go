package dfs

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// snapPartBytes bounds the paths of one snapshot record part (well under the record limit).
const snapPartBytes = 128 << 10

// checkSnapName validates a snapshot name.
func checkSnapName(name string) error {
	if name == "" || len(name) > 128 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00/") {
		return fmt.Errorf("%w: snapshot name %q: 1..128 bytes of UTF-8 without / (e.g. backup-2026-01-12)", ErrBadRequest, name)
	}
	return nil
}

// Snapshot saves the files under prefix as the named snapshot: a replicated map of paths
// to CIDs, O(number of files), no data copied. Its roots stay referenced (kept and
// replicated) until the snapshot is deleted.
func (s *Service) Snapshot(prefix, name string) (api.FSSnapshot, error) {
	p, err := CleanPrefix(prefix)
	if err != nil {
		return api.FSSnapshot{}, err
	}
	if err := checkSnapName(name); err != nil {
		return api.FSSnapshot{}, err
	}
	s.mu.Lock()
	files := s.filesLocked(p)
	s.mu.Unlock()
	var parts [][]SnapFile
	var cur []SnapFile
	n, total := 0, int64(0)
	for _, x := range files {
		if x.conflict {
			continue
		}
		if n+len(x.path)+80 > snapPartBytes || len(cur) >= snapPartFiles {
			parts, cur, n = append(parts, cur), nil, 0
		}
		cur = append(cur, SnapFile{Path: x.path, CID: x.cur.CID, Size: x.cur.Size, Mode: x.cur.Mode})
		n += len(x.path) + 80
		total += x.cur.Size
	}
	parts = append(parts, cur)
	count := 0
	for _, pt := range parts {
		count += len(pt)
	}
	now := s.cfg.Now()
	err = s.st.Update(func(tx *state.Tx) error {
		if tx.Has(CollSnapshots, name) {
			return fmt.Errorf("%w: snapshot %s exists; delete it first (fs snapshot --delete %s) or choose another name", ErrBadRequest, name, name)
		}
		for i, pt := range parts {
			rec := SnapshotRecord{Name: name, Files: pt}
			if i == 0 {
				rec = SnapshotRecord{Name: name, Prefix: p, Created: now.UnixNano(), Node: s.cfg.NodeName,
					Parts: len(parts), Files: pt, Count: count, Bytes: total}
			}
			b, err := state.Encode(rec)
			if err != nil {
				return err
			}
			if err := tx.Put(CollSnapshots, snapPartKey(name, i), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return api.FSSnapshot{}, err
	}
	return api.FSSnapshot{Name: name, Prefix: p, Created: now.UTC(), Node: s.cfg.NodeName, Files: count, Bytes: total}, nil
}

// Snapshots lists the snapshots.
func (s *Service) Snapshots() []api.FSSnapshot {
	out := []api.FSSnapshot{}
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollSnapshots) {
			if strings.IndexByte(k, 0) >= 0 {
				continue
			}
			b, _, ok := v.GetLWW(CollSnapshots, k)
			if !ok {
				continue
			}
			r, err := decodeSnapshot(b)
			if err != nil || r.Name != k {
				continue
			}
			out = append(out, api.FSSnapshot{Name: r.Name, Prefix: r.Prefix, Created: time.Unix(0, r.Created).UTC(),
				Node: r.Node, Files: r.Count, Bytes: r.Bytes})
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// snapshotFiles reads every part of a snapshot.
func snapshotFiles(v *state.View, name string) (SnapshotRecord, []SnapFile, bool) {
	b, _, ok := v.GetLWW(CollSnapshots, name)
	if !ok {
		return SnapshotRecord{}, nil, false
	}
	head, err := decodeSnapshot(b)
	if err != nil {
		return SnapshotRecord{}, nil, false
	}
	files := append([]SnapFile(nil), head.Files...)
	for i := 1; i < head.Parts && i < 1<<16; i++ {
		b, _, ok := v.GetLWW(CollSnapshots, snapPartKey(name, i))
		if !ok {
			return head, nil, false // a part has not arrived yet
		}
		r, err := decodeSnapshot(b)
		if err != nil {
			return head, nil, false
		}
		files = append(files, r.Files...)
	}
	return head, files, true
}

// DeleteSnapshot deletes a snapshot; its roots become collectable unless still referenced.
func (s *Service) DeleteSnapshot(name string) error {
	if err := checkSnapName(name); err != nil {
		return err
	}
	return s.st.Update(func(tx *state.Tx) error {
		head, _, ok := snapshotFiles(&tx.View, name)
		if !ok && !tx.Has(CollSnapshots, name) {
			return fmt.Errorf("%w: no snapshot %s (see fs snapshots)", ErrNotFound, name)
		}
		for i := 0; i < max(head.Parts, 1); i++ {
			if tx.Has(CollSnapshots, snapPartKey(name, i)) {
				if err := tx.Remove(CollSnapshots, snapPartKey(name, i)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Restore writes a snapshot's files under prefix (their paths relative to the
// snapshot's prefix), as new versions pointing at the snapshot's CIDs. Files under prefix
// that the snapshot lacks are left alone. It returns the number of files restored.
func (s *Service) Restore(name, prefix string) (int, error) {
	if err := checkSnapName(name); err != nil {
		return 0, err
	}
	dst, err := CleanPrefix(prefix)
	if err != nil {
		return 0, err
	}
	var (
		head  SnapshotRecord
		files []SnapFile
		ok    bool
	)
	s.st.View(func(v *state.View) { head, files, ok = snapshotFiles(v, name) })
	if !ok {
		return 0, fmt.Errorf("%w: no snapshot %s (see fs snapshots)", ErrNotFound, name)
	}
	target := map[string]SnapFile{}
	var paths []string
	for _, f := range files {
		rel := strings.TrimPrefix(f.Path, head.Prefix)
		if head.Prefix == "/" {
			rel = f.Path
		}
		p := dst + rel
		if dst == "/" {
			p = rel
		}
		if rel == "" {
			p = dst
		}
		if err := CheckPath(p); err != nil {
			return 0, err
		}
		target[p] = f
		paths = append(paths, p)
	}
	sort.Strings(paths)
	now := s.cfg.Now().UnixNano()
	total := 0
	paths, strong := s.splitStrong(paths)
	if len(strong) > 0 { // strong trees: each file committed through the lock service
		ctx, cancel := s.strongCtx()
		defer cancel()
		for _, p := range strong {
			f := target[p]
			c, err := s.strongGet(ctx, p)
			if err != nil {
				return total, err
			}
			if v, ok := c.live(); ok && v.CID == f.CID {
				continue // already this content
			}
			rf := 0
			s.st.View(func(v *state.View) { rf = s.treeOf(v, p).Replication })
			if err := s.setVersion(ctx, p, Version{CID: f.CID, Size: f.Size, Mode: f.Mode, MTime: now, Replication: rf}, 0); err != nil {
				return total, err
			}
			total++
		}
	}
	for len(paths) > 0 { // in batches: one delta per 256 files
		batch := paths[:min(256, len(paths))]
		paths = paths[len(batch):]
		n, err := s.commitMany(batch, func(p string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
			f := target[p]
			w, vis := Resolve(es, policyOf(tree))
			if w >= 0 && len(vis) > 0 && es[w].Cur.CID == f.CID && !es[w].Cur.Deleted {
				return nil, nil // already this content
			}
			r := s.newRecord(p, es, tree, Version{CID: f.CID, Size: f.Size, Mode: f.Mode, MTime: now, Replication: tree.Replication})
			return &r, nil
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
