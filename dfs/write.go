package dfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// PutOptions tune one write.
type PutOptions struct {
	Replication int    // copies wanted (0: the tree's)
	Ack         int    // holders that must confirm (0: the tree's, else a majority)
	Chunker     string // "" (fixed 256 KiB) or e.g. "buzhash"
	Mode        uint32 // permission bits (0: 0644)
	// LockToken is the fencing token of a lock the writer holds (fs lock), checked by the
	// holders and the lock service on a strong tree's write (0: unfenced; ignored by
	// eventual trees).
	LockToken uint64
}

// MaxReplication bounds a replication factor.
const MaxReplication = 16

// Put stores r's bytes under path: the content is chunked into the local block store,
// pinned by the holders the rendezvous hash chooses (each fetching from this node), and
// the namespace entry is written only once the ack count of holders confirmed the pin
// fsynced. A failed write leaves no entry; its error names the nodes and bytes missing.
func (s *Service) Put(ctx context.Context, path string, r io.Reader, o PutOptions) (api.FSEntry, error) {
	if err := CheckPath(path); err != nil {
		return api.FSEntry{}, err
	}
	if _, ok := conflictBase(path); ok {
		return api.FSEntry{}, &PathError{path, "names containing " + conflictMark + " are the conflict copies' own; choose another name"}
	}
	if o.Replication < 0 || o.Replication > MaxReplication {
		return api.FSEntry{}, fmt.Errorf("%w: replication %d outside 1..%d", ErrBadRequest, o.Replication, MaxReplication)
	}
	if o.Ack < 0 {
		return api.FSEntry{}, fmt.Errorf("%w: ack %d must be >= 1", ErrBadRequest, o.Ack)
	}
	rf, ack, err := s.writeSettings(path, o)
	if err != nil {
		return api.FSEntry{}, err
	}
	var pre *committed
	if s.isStrong(path) { // fail before storing anything when the lock service is out of reach
		c, err := s.strongGet(ctx, path)
		if err != nil {
			return api.FSEntry{}, err
		}
		pre = &c
	}
	root, size, err := s.content.Add(ctx, r, o.Chunker)
	if err != nil {
		return api.FSEntry{}, fmt.Errorf("dfs: storing %s: %w", path, err)
	}
	return s.putRoot(ctx, path, root, size, rf, ack, o.Mode, o.LockToken, pre)
}

// writeSettings are the replication factor and ack count of a write of path.
func (s *Service) writeSettings(path string, o PutOptions) (rf, ack int, err error) {
	var tree TreeRecord
	s.st.View(func(v *state.View) { tree = s.treeOf(v, path) })
	rf = tree.Replication
	if o.Replication > 0 {
		rf = o.Replication
	}
	ack = tree.Ack
	if o.Ack > 0 {
		ack = o.Ack
	}
	if ack > rf {
		return 0, 0, fmt.Errorf("%w: ack %d is more than the replication factor %d", ErrBadRequest, ack, rf)
	}
	return rf, ack, nil
}

// putRoot replicates a root stored here and writes its entry: in a strong tree, the
// holders are fenced with token and the version is committed through the lock service
// (pre: the committed record read before the content was stored) before its entry is
// published.
func (s *Service) putRoot(ctx context.Context, path string, root cid.Cid, size int64, rf, ack int, mode uint32, token uint64, pre *committed) (api.FSEntry, error) {
	key := root.String()
	s.hold(key, 1)
	defer s.hold(key, -1)
	strong := s.isStrong(path)
	f := fencing{}
	if strong {
		f = fencing{path: path, token: token}
	}
	holders, acked, err := s.replicate(ctx, root, size, rf, ack, f)
	if err != nil {
		s.met.writeFailures.Inc()
		var se *StaleTokenError
		if errors.As(err, &se) {
			s.met.staleTokens.Inc()
			return api.FSEntry{}, err
		}
		return api.FSEntry{}, fmt.Errorf("dfs: put %s: %w", path, err)
	}
	if mode == 0 {
		mode = 0o644
	}
	now := s.cfg.Now()
	v := Version{CID: key, Size: size, Mode: mode, MTime: now.UnixNano(), Replication: rf, Holders: holders}
	var rec EntryRecord
	if strong {
		rec, err = s.setStrong(ctx, path, token, pre, func(*Version) (Version, error) { return v, nil })
	} else {
		rec, err = s.commit(path, func(es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
			r := s.newRecord(path, es, tree, v)
			return &r, nil
		})
	}
	if err != nil {
		s.met.writeFailures.Inc()
		return api.FSEntry{}, err
	}
	s.met.writes.Inc()
	s.met.writeBytes.Add(float64(size))
	e := s.entryAPI(visName{path: path, cur: rec.Cur})
	for _, a := range acked {
		e.Acked = append(e.Acked, s.nameOf(a))
	}
	return e, nil
}

// hold counts a write in progress on root (never collected while > 0).
func (s *Service) hold(root string, d int) {
	s.mu.Lock()
	s.inflight[root] += d
	if s.inflight[root] <= 0 {
		delete(s.inflight, root)
	}
	s.mu.Unlock()
}

// fencing is the path and fencing token a strong write sends with its pin requests.
type fencing struct {
	path  string
	token uint64
}

// replicate has root pinned by the chosen holders and waits for ack of them. A holder
// refusing f's token as stale fails the write with that refusal (*StaleTokenError).
func (s *Service) replicate(ctx context.Context, root cid.Cid, size int64, rf, ack int, f fencing) (holders, acked []string, err error) {
	cands, stores := s.candidates(size)
	holders = Place(root.String(), cands, rf)
	// A cluster smaller than R (a single node, a 2-node lab) still takes writes: the ack
	// counts over the copies that can exist now, and repair adds the missing ones as nodes
	// with a block store join (the entry keeps R). Room is another matter: nodes that exist
	// but cannot hold the file make the write fail.
	need := AckCount(min(rf, max(stores, 1)), ack)
	if len(holders) < need {
		return nil, nil, fmt.Errorf("%w: %d bytes with replication %d need %d holders to confirm; only %d node(s) have %d bytes free (%s)",
			ErrNoRoom, size, rf, need, len(holders), size, describeCands(cands))
	}
	type result struct {
		id  string
		err error
	}
	res := make(chan result, len(holders))
	for _, h := range holders {
		s.wg.Add(1)
		go func() { // owned by the service: finishes a holder's pin even after the ack
			defer s.wg.Done()
			pctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
			defer cancel()
			var err error
			if h == s.self {
				if err = s.fence(f.path, f.token); err == nil {
					err = s.pinLocal(pctx, root, size, nil)
				}
			} else if s.peers == nil {
				err = errors.New("no pin protocol")
			} else if id, derr := peer.Decode(h); derr != nil {
				err = derr
			} else {
				err = s.peers.Pin(pctx, id, PinRequest{Root: root.String(), Size: size, From: []string{s.self}, Path: f.path, Token: f.token})
			}
			res <- result{h, err}
		}()
	}
	var fails []string
	for range holders {
		select {
		case r := <-res:
			var se *StaleTokenError
			if errors.As(r.err, &se) {
				s.afterWrite(root, holders)
				return nil, nil, se
			}
			if r.err != nil {
				fails = append(fails, fmt.Sprintf("node %s: %v", s.nameOf(r.id), r.err))
				continue
			}
			acked = append(acked, r.id)
			if len(acked) >= need {
				s.afterWrite(root, holders)
				return holders, acked, nil
			}
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %v after %d of %d confirmations", ErrWriteFailed, ctx.Err(), len(acked), need)
		}
	}
	s.afterWrite(root, holders)
	return nil, nil, fmt.Errorf("%w: %d of %d holders confirmed %d bytes, %d needed: %s",
		ErrWriteFailed, len(acked), len(holders), size, need, strings.Join(fails, "; "))
}

// afterWrite leaves this node's copy as cache when it is not a holder.
func (s *Service) afterWrite(root cid.Cid, holders []string) {
	if !containsStr(holders, s.self) {
		if err := s.content.Unpin(root); err != nil {
			s.log.Debug("unpin after write", "root", root, "err", err)
		}
	}
}

func describeCands(cs []Candidate) string {
	if len(cs) == 0 {
		return "no node with the DFS alive"
	}
	var b []string
	for _, c := range cs {
		b = append(b, fmt.Sprintf("%s %d free", shortID(c.ID), c.FreeBytes))
	}
	return strings.Join(b, ", ")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[len(id)-12:]
	}
	return id
}

// candidates are the alive members with the DFS whose block store has size bytes free.
func (s *Service) candidates(size int64) (out []Candidate, stores int) {
	alive := map[string]bool{}
	for _, n := range s.members.Nodes() {
		if n.Status == api.StatusAlive || n.Self {
			alive[n.ID] = true
		}
	}
	s.st.View(func(v *state.View) {
		for _, id := range v.Keys(CollCapacity) {
			if !alive[id] {
				continue
			}
			b, _, ok := v.GetLWW(CollCapacity, id)
			if !ok {
				continue
			}
			var c CapacityRecord
			if state.Decode(b, &c) != nil {
				continue
			}
			stores++
			free := c.CapacityBytes - c.UsedBytes
			if free < size || free <= 0 {
				continue
			}
			out = append(out, Candidate{ID: id, Zone: c.Zone, FreeBytes: free})
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, stores
}

// stamp is a new HLC time after every entry in es.
func (s *Service) stamp(es []EntryRecord) Stamp {
	t := stampOf(s.clock.Now())
	for _, e := range es {
		if t.Compare(e.Cur.HLC) <= 0 {
			t = Stamp{Wall: e.Cur.HLC.Wall, Logical: e.Cur.HLC.Logical + 1, Replica: t.Replica}
		}
	}
	return t
}

// newRecord is this node's entry of path after a write of v that saw es.
func (s *Service) newRecord(path string, es []EntryRecord, tree TreeRecord, v Version) EntryRecord {
	self := s.self
	w, _ := Resolve(es, policyOf(tree))
	v.Writer, v.WriterID, v.Number, v.HLC = s.cfg.NodeName, self, nextNumber(es), s.stamp(es)
	rec := EntryRecord{Path: path, Cur: v, Seen: seenAll(es, self)}
	if w >= 0 {
		for _, h := range append([]Version{es[w].Cur}, es[w].History...) {
			if !h.Deleted && len(rec.History) < tree.Versions-1 {
				rec.History = append(rec.History, h)
			}
		}
	}
	return rec
}

// commit writes this node's entry of one path.
func (s *Service) commit(path string, mk func(es []EntryRecord, tree TreeRecord) (*EntryRecord, error)) (EntryRecord, error) {
	var out EntryRecord
	_, err := s.commitMany([]string{path}, func(p string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
		r, err := mk(es, tree)
		if r != nil {
			out = *r
		}
		return r, err
	})
	return out, err
}

// commitMany writes this node's entries of several paths in one delta (all or none):
// mk returns the new record of a path, or nil to leave it.
func (s *Service) commitMany(paths []string, mk func(path string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error)) (int, error) {
	self := s.self
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var done []string
	err := s.st.Update(func(tx *state.Tx) error {
		type put struct {
			key string
			b   []byte
		}
		var puts []put
		for _, p := range paths {
			s.mu.Lock()
			var writers []string
			if st := s.idx[p]; st != nil {
				writers = append(writers, st.writers...)
			}
			s.mu.Unlock()
			es := readEntries(&tx.View, p, writers)
			rec, err := mk(p, es, s.treeOf(&tx.View, p))
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			b, err := state.Encode(rec)
			if err != nil {
				return err
			}
			puts = append(puts, put{entryKey(p, self), b})
			done = append(done, p)
		}
		for _, x := range puts { // nothing is written when any path failed
			if err := tx.Put(CollEntries, x.key, x.b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	for _, p := range done {
		st := s.idx[p]
		if st == nil {
			st = &pathState{}
			s.idx[p] = st
		}
		if !containsStr(st.writers, self) {
			st.writers = append(st.writers, self)
		}
	}
	s.mu.Unlock()
	s.reindex(done...)
	return len(done), nil
}

// Remove deletes a file (a tombstone with the path's history), a conflict copy, or with
// recursive every file under a prefix. It returns the number of names removed.
func (s *Service) Remove(name string, recursive bool) (int, error) {
	ctx, cancel := s.strongCtx()
	defer cancel()
	return s.RemoveFenced(ctx, name, recursive, 0)
}

// RemoveFenced is Remove with a fencing token for the files of strong trees (each of
// their deletions is committed through the lock service; a recursive remove takes the
// strong files one by one, as this node lists them).
func (s *Service) RemoveFenced(ctx context.Context, name string, recursive bool, token uint64) (int, error) {
	if err := checkCommon(name); err != nil {
		return 0, err
	}
	if base, ok := conflictBase(name); ok && !s.isStrong(base) && !s.storedFile(name) {
		return s.removeConflict(name, base)
	}
	prefix, _ := CleanPrefix(name)
	if !recursive && prefix != "/" && s.isStrong(prefix) {
		err := s.setVersion(ctx, prefix, Version{Deleted: true, MTime: s.cfg.Now().UnixNano()}, token)
		if errors.Is(err, ErrNotFound) {
			isDir := false
			s.mu.Lock()
			for _, x := range s.filesLocked(prefix) {
				isDir = isDir || x.path != prefix
			}
			s.mu.Unlock()
			if isDir {
				return 0, fmt.Errorf("%w: %s is a directory; remove it with -r (recursive)", ErrBadRequest, name)
			}
		}
		if err != nil {
			return 0, err
		}
		return 1, nil
	}
	var paths []string
	s.mu.Lock()
	for _, x := range s.filesLocked(prefix) {
		if x.conflict {
			continue
		}
		if x.path == prefix || recursive {
			paths = append(paths, x.path)
		}
	}
	isDir := len(paths) == 0 && len(s.filesLocked(prefix)) > 0
	s.mu.Unlock()
	if isDir {
		return 0, fmt.Errorf("%w: %s is a directory; remove it with -r (recursive)", ErrBadRequest, name)
	}
	if len(paths) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	now := s.cfg.Now()
	var strong []string
	paths, strong = s.splitStrong(paths)
	n := 0
	if len(paths) > 0 {
		var err error
		n, err = s.commitMany(paths, func(p string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
			w, vis := Resolve(es, policyOf(tree))
			if w < 0 || len(vis) == 0 || es[w].Cur.Deleted {
				return nil, nil // removed meanwhile
			}
			r := s.newRecord(p, es, tree, Version{Deleted: true, MTime: now.UnixNano()})
			return &r, nil
		})
		if err != nil {
			return n, err
		}
	}
	for _, p := range strong {
		err := s.setVersion(ctx, p, Version{Deleted: true, MTime: now.UnixNano()}, token)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("%d removed before: %w", n, err)
		}
		n++
	}
	return n, nil
}

// splitStrong separates the paths of strong trees from the others.
func (s *Service) splitStrong(paths []string) (eventual, strong []string) {
	s.st.View(func(v *state.View) {
		for _, p := range paths {
			if s.treeOf(v, p).Consistency == Strong {
				strong = append(strong, p)
			} else {
				eventual = append(eventual, p)
			}
		}
	})
	return eventual, strong
}

// removeConflict takes a keep_both loser out of view: this node's entry of the path is
// rewritten to the winner's content having seen every head.
func (s *Service) removeConflict(name, base string) (int, error) {
	n, err := s.commitMany([]string{base}, func(p string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
		w, vis := Resolve(es, policyOf(tree))
		found := false
		for _, x := range vis {
			found = found || (x.Conflict && x.Path == name)
		}
		if !found {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		win := es[w]
		r := s.newRecord(p, es, tree, win.Cur)
		r.Cur.Number = win.Cur.Number // the same version, now without rival
		return &r, nil
	})
	return n, err
}

// Move renames a file, or every file under a directory prefix, in one delta: the new
// names get the content as new versions, the old names are deleted.
func (s *Service) Move(from, to string) (int, error) {
	ctx, cancel := s.strongCtx()
	defer cancel()
	return s.MoveFenced(ctx, from, to, 0)
}

// MoveFenced is Move with a fencing token for strong trees. When a strong tree is on
// either side, the files move one by one: each new name is committed before its old name
// is deleted (a failure in between leaves both names, never none).
func (s *Service) MoveFenced(ctx context.Context, from, to string, token uint64) (int, error) {
	src, err := CleanPrefix(from)
	if err != nil {
		return 0, err
	}
	dst, err := CleanPrefix(to)
	if err != nil {
		return 0, err
	}
	if dst == src || underPrefix(dst, src) {
		return 0, fmt.Errorf("%w: cannot move %s into itself (%s)", ErrBadRequest, src, dst)
	}
	moves := map[string]Version{}
	s.mu.Lock()
	for _, x := range s.filesLocked(src) {
		if x.conflict {
			continue
		}
		if x.path == src {
			moves[dst] = x.cur
		} else {
			moves[dst+strings.TrimPrefix(x.path, src)] = x.cur
		}
		moves[x.path] = Version{Deleted: true}
	}
	s.mu.Unlock()
	if len(moves) == 0 && src != "/" && s.isStrong(src) { // committed elsewhere, not listed here yet
		if c, err := s.strongGet(ctx, src); err != nil {
			return 0, err
		} else if v, ok := c.live(); ok {
			moves[dst], moves[src] = v, Version{Deleted: true}
		}
	}
	if len(moves) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, from)
	}
	paths := make([]string, 0, len(moves))
	for p := range moves {
		if err := CheckPath(p); err != nil {
			return 0, err
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if _, strong := s.splitStrong(paths); len(strong) > 0 {
		return s.moveOneByOne(ctx, src, dst, moves, token)
	}
	now := s.cfg.Now().UnixNano()
	n, err := s.commitMany(paths, func(p string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
		v := moves[p]
		v.MTime = now
		if v.Deleted {
			v = Version{Deleted: true, MTime: now}
		}
		r := s.newRecord(p, es, tree, Version{CID: v.CID, Size: v.Size, Mode: v.Mode, MTime: v.MTime,
			Deleted: v.Deleted, Replication: v.Replication, Holders: v.Holders})
		return &r, nil
	})
	return n / 2, err
}

// moveOneByOne moves files when a strong tree is involved: per file, the new name first
// (the committed content when the old name is strong), then the deletion of the old name.
func (s *Service) moveOneByOne(ctx context.Context, src, dst string, moves map[string]Version, token uint64) (int, error) {
	now := s.cfg.Now().UnixNano()
	var olds []string
	for p, v := range moves {
		if v.Deleted {
			olds = append(olds, p)
		}
	}
	sort.Strings(olds)
	n := 0
	for _, old := range olds {
		nw := dst
		if old != src {
			nw = dst + strings.TrimPrefix(old, src)
		}
		v := moves[nw]
		if s.isStrong(old) {
			c, err := s.strongGet(ctx, old)
			if err != nil {
				return n, err
			}
			lv, ok := c.live()
			if !ok {
				continue // removed meanwhile
			}
			v = lv
		}
		nv := Version{CID: v.CID, Size: v.Size, Mode: v.Mode, MTime: now, Replication: v.Replication, Holders: v.Holders}
		if err := s.setVersion(ctx, nw, nv, token); err != nil {
			return n, fmt.Errorf("%d moved before; %s: %w", n, nw, err)
		}
		if err := s.setVersion(ctx, old, Version{Deleted: true, MTime: now}, token); err != nil && !errors.Is(err, ErrNotFound) {
			return n, fmt.Errorf("%d moved before; %s was copied to %s but not removed: %w", n, old, nw, err)
		}
		n++
	}
	return n, nil
}

// Revert makes version n of path its current content again (a new version).
func (s *Service) Revert(path string, n uint64) (api.FSEntry, error) {
	ctx, cancel := s.strongCtx()
	defer cancel()
	return s.RevertFenced(ctx, path, n, 0)
}

// RevertFenced is Revert with a fencing token; in a strong tree the new version is
// committed through the lock service (version n is the committed one or one of the kept
// versions this node knows).
func (s *Service) RevertFenced(ctx context.Context, path string, n uint64, token uint64) (api.FSEntry, error) {
	if err := CheckPath(path); err != nil {
		return api.FSEntry{}, err
	}
	if s.isStrong(path) {
		now := s.cfg.Now().UnixNano()
		rec, err := s.setStrong(ctx, path, token, nil, func(prev *Version) (Version, error) {
			v, ok := Version{}, false
			if prev != nil && prev.Number == n && !prev.Deleted {
				v, ok = *prev, true
			} else {
				s.st.View(func(vw *state.View) {
					s.mu.Lock()
					defer s.mu.Unlock()
					if st := s.idx[path]; st != nil {
						es := readEntries(vw, path, st.writers)
						if w, _ := Resolve(es, committedPolicy); w >= 0 {
							v, ok = findVersion(es[w], n)
						}
					}
				})
			}
			if !ok || v.Deleted {
				return Version{}, fmt.Errorf("%w: %s has no version %d (see fs versions %s)", ErrNotFound, path, n, path)
			}
			return Version{CID: v.CID, Size: v.Size, Mode: v.Mode, MTime: now, Replication: v.Replication, Holders: v.Holders}, nil
		})
		if err != nil {
			return api.FSEntry{}, err
		}
		return s.entryAPI(visName{path: path, cur: rec.Cur}), nil
	}
	now := s.cfg.Now().UnixNano()
	rec, err := s.commit(path, func(es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
		w, _ := Resolve(es, policyOf(tree))
		if w < 0 {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		v, ok := findVersion(es[w], n)
		if !ok || v.Deleted {
			return nil, fmt.Errorf("%w: %s has no version %d (see fs versions %s)", ErrNotFound, path, n, path)
		}
		r := s.newRecord(path, es, tree, Version{CID: v.CID, Size: v.Size, Mode: v.Mode, MTime: now,
			Replication: v.Replication, Holders: v.Holders})
		return &r, nil
	})
	if err != nil {
		return api.FSEntry{}, err
	}
	return s.entryAPI(visName{path: path, cur: rec.Cur}), nil
}

func findVersion(e EntryRecord, n uint64) (Version, bool) {
	if n == 0 || e.Cur.Number == n {
		return e.Cur, true
	}
	for _, h := range e.History {
		if h.Number == n {
			return h, true
		}
	}
	return Version{}, false
}

// Init sets a tree's settings (fs init).
func (s *Service) Init(t api.FSTree) (api.FSTree, error) {
	prefix, err := CleanPrefix(t.Prefix)
	if err != nil {
		return t, err
	}
	switch t.Consistency {
	case "": // an existing tree keeps its mode, a new one is eventual
		t.Consistency = Eventual
		s.st.View(func(v *state.View) {
			if b, _, ok := v.GetLWW(CollTrees, prefix); ok {
				if old, err := decodeTree(b); err == nil && old.Consistency != "" {
					t.Consistency = old.Consistency
				}
			}
		})
	case Eventual, Strong:
	default:
		return t, fmt.Errorf("%w: consistency %q; use eventual or strong", ErrBadRequest, t.Consistency)
	}
	if t.Conflict == "" {
		t.Conflict = LastWriteWins
	}
	if t.Conflict != LastWriteWins && t.Conflict != KeepBoth {
		return t, fmt.Errorf("%w: conflict %q; use last_write_wins or keep_both", ErrBadRequest, t.Conflict)
	}
	if t.Replication == 0 {
		t.Replication = s.cfg.DefaultReplication
	}
	if t.Replication < 1 || t.Replication > MaxReplication {
		return t, fmt.Errorf("%w: replication %d outside 1..%d", ErrBadRequest, t.Replication, MaxReplication)
	}
	if t.Versions == 0 {
		t.Versions = s.cfg.DefaultVersions
	}
	if t.Versions < 1 || t.Versions > 100 {
		return t, fmt.Errorf("%w: versions %d outside 1..100", ErrBadRequest, t.Versions)
	}
	if t.Ack < 0 || t.Ack > t.Replication {
		return t, fmt.Errorf("%w: ack %d outside 0..replication (%d); 0 means a majority", ErrBadRequest, t.Ack, t.Replication)
	}
	if t.CacheMB < 0 {
		return t, fmt.Errorf("%w: cache-mb %d must be >= 0", ErrBadRequest, t.CacheMB)
	}
	t.Prefix = prefix
	rec := TreeRecord{Prefix: prefix, Replication: t.Replication, Consistency: t.Consistency,
		CacheMB: t.CacheMB, Versions: t.Versions, Conflict: t.Conflict, Ack: t.Ack}
	b, err := state.Encode(rec)
	if err != nil {
		return t, err
	}
	s.wmu.Lock() // no local write slips in between the check and the tree record
	err = s.st.Update(func(tx *state.Tx) error {
		if err := s.checkConsistencyChange(&tx.View, prefix, t.Consistency); err != nil {
			return err
		}
		return tx.Put(CollTrees, prefix, b)
	})
	s.wmu.Unlock()
	if err != nil {
		return t, err
	}
	// the conflict policy changes what paths show
	s.mu.Lock()
	var paths []string
	for p := range s.idx {
		if p == prefix || underPrefix(p, prefix) {
			paths = append(paths, p)
		}
	}
	s.mu.Unlock()
	s.reindex(paths...)
	return t, nil
}

// Trees lists the trees' settings.
func (s *Service) Trees() []api.FSTree {
	var out []api.FSTree
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollTrees) {
			b, _, ok := v.GetLWW(CollTrees, k)
			if !ok {
				continue
			}
			if t, err := decodeTree(b); err == nil {
				out = append(out, api.FSTree{Prefix: t.Prefix, Replication: t.Replication, Consistency: t.Consistency,
					CacheMB: t.CacheMB, Versions: t.Versions, Conflict: t.Conflict, Ack: t.Ack})
			}
		}
	})
	return out
}

var _ = time.Second
