package content

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Block accounting. Every block present is exactly one of: protected (reached by a
// pinned root or held by a lease) or cached (in the LRU, deleted past CacheBytes).

func (s *Store) present(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sizes[k]
	return ok
}

func (s *Store) protectedLocked(k string) bool { return s.pinned[k] > 0 || s.leased[k] > 0 }

// protectLocked takes k out of the LRU (it just became protected).
func (s *Store) protectLocked(k string) {
	if e, ok := s.lruIdx[k]; ok {
		s.lru.Remove(e)
		delete(s.lruIdx, k)
		s.cached -= s.sizes[k]
		s.classCachedLocked(k, s.sizes[k], -1)
	}
}

// unprotectLocked puts k in the LRU if it is present and nothing protects it any more.
func (s *Store) unprotectLocked(k string) {
	n, ok := s.sizes[k]
	if !ok || s.protectedLocked(k) {
		return
	}
	if _, in := s.lruIdx[k]; in {
		return
	}
	s.lruIdx[k] = s.lru.PushFront(k)
	s.cached += n
	s.classCachedLocked(k, n, 1)
}

func (s *Store) touch(c cid.Cid) {
	s.mu.Lock()
	if e, ok := s.lruIdx[key(c)]; ok {
		s.lru.MoveToFront(e)
	}
	s.mu.Unlock()
}

// added accounts blocks just written.
func (s *Store) added(ctx context.Context, fresh []blocks.Block, reserved int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved -= reserved
	for _, b := range fresh {
		k := key(b.Cid())
		if _, ok := s.sizes[k]; ok {
			continue
		}
		n := int64(len(b.RawData()))
		s.sizes[k] = n
		s.used += n
		s.unprotectLocked(k)
		s.classifyLocked(ctx, k)
	}
	s.evictClassesLocked(s.ctx)
	s.m.stored.Add(float64(len(fresh)))
	s.m.storedN.Add(int64(len(fresh)))
	s.evictLocked(s.ctx)
}

// forget removes a deleted block from the accounting.
func (s *Store) forget(c cid.Cid) {
	s.mu.Lock()
	s.forgetLocked(key(c))
	s.mu.Unlock()
}

func (s *Store) forgetLocked(k string) {
	n, ok := s.sizes[k]
	if !ok {
		return
	}
	delete(s.sizes, k)
	s.bs.hot.drop(cidOfKey(k))
	s.used -= n
	s.kickCompact()
	if e, ok := s.lruIdx[k]; ok {
		s.lru.Remove(e)
		delete(s.lruIdx, k)
		s.cached -= n
		s.classCachedLocked(k, n, -1)
	}
	if c, ok := s.blockClass[k]; ok {
		delete(s.blockClass, k)
		if s.classBytes[c] <= 0 {
			delete(s.classBytes, c)
			delete(s.classLimit, c)
		}
	}
}

// cacheLimit is the byte bound of the LRU.
func (s *Store) cacheLimit() int64 { return max(s.cfg.CacheBytes, 0) }

// evictLocked deletes least recently used cached blocks past the cache bound.
func (s *Store) evictLocked(ctx context.Context) {
	for s.cached > s.cacheLimit() {
		if !s.evictOneLocked(ctx) {
			return
		}
	}
}

func (s *Store) evictOneLocked(ctx context.Context) bool {
	e := s.lru.Back()
	if e == nil {
		return false
	}
	k := e.Value.(string)
	if err := s.bs.inner.DeleteBlock(ctx, cidOfKey(k)); err != nil {
		s.log.Warn("dfs content: evict block", "err", err)
		s.lru.MoveToFront(e) // try others first
		return false
	}
	s.forgetLocked(k)
	s.m.evicted.Inc()
	return true
}

// cidOfKey is a CID that addresses the block of key k in the pack store (which stores by
// multihash).
func cidOfKey(k string) cid.Cid { return cid.NewCidV1(cid.Raw, mh.Multihash(k)) }

// reserve makes room for need bytes (evicting cached blocks if the capacity or the disk
// requires it) or fails with ErrDiskFull.
func (s *Store) reserve(ctx context.Context, need int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		avail, err := s.availLocked()
		if err != nil {
			return err
		}
		if need <= avail {
			s.reserved += need
			return nil
		}
		if !s.evictOneLocked(ctx) {
			return s.diskFullLocked(need, avail, nil)
		}
	}
}

func (s *Store) unreserve(n int64) {
	s.mu.Lock()
	s.reserved -= n
	s.mu.Unlock()
}

// availLocked is the room left: the capacity's and the disk's, less writes in progress.
func (s *Store) availLocked() (int64, error) {
	free, err := s.statfs()
	if err != nil {
		return 0, fmt.Errorf("dfs content: free space of %s: %w", s.cfg.Dir, err)
	}
	avail := free - s.reserved
	if s.cfg.Capacity > 0 {
		avail = min(avail, s.cfg.Capacity-s.used-s.reserved)
	}
	return max(avail, 0), nil
}

func (s *Store) diskFree() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.Dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// diskFullError says how many bytes were missing on which node.
type diskFullError struct {
	Node    string
	Need    int64 // bytes the operation still needed
	Avail   int64 // bytes that were available
	Missing int64 // Need - Avail
	What    string
	cause   error
}

func (e *diskFullError) Error() string {
	msg := fmt.Sprintf("%v on node %s: %s needs %d more bytes, %d available: %d bytes missing", ErrDiskFull, e.Node, e.What, e.Need, e.Avail, e.Missing)
	if e.cause != nil {
		msg += " (" + e.cause.Error() + ")"
	}
	return msg
}

func (e *diskFullError) Unwrap() error { return ErrDiskFull }

func (s *Store) nodeName() string {
	if s.net != nil {
		return s.net.ID().String()
	}
	return "local"
}

func (s *Store) diskFullLocked(need, avail int64, cause error) error {
	return &diskFullError{Node: s.nodeName(), Need: need, Avail: avail, Missing: need - avail, What: "a write", cause: cause}
}

func (s *Store) diskFull(need int64, cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	avail, _ := s.availLocked()
	if avail >= need {
		avail = need - 1 // the disk said no: at least one byte was missing
	}
	return s.diskFullLocked(need, avail, cause)
}

// corrupt handles a block whose content does not match its CID: delete, count, log.
func (s *Store) corrupt(ctx context.Context, c cid.Cid, why error) {
	s.m.corrupt.Inc()
	s.log.Warn("dfs content: corrupt block deleted; it will be fetched again", "cid", c, "err", why)
	if err := s.bs.inner.DeleteBlock(ctx, c); err != nil {
		s.log.Warn("dfs content: delete corrupt block", "cid", c, "err", err)
	}
	s.forget(c)
}

// Leases.

func (s *Store) newLease(root cid.Cid, ttl bool) *lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	l := &lease{id: s.nextID, root: root, blocks: map[string]struct{}{}}
	if ttl {
		l.until = s.now().Add(s.cfg.LeaseTTL)
	}
	s.leases[l.id] = l
	return l
}

// hold adds c to lease l (before the block is written, so that it is never cached).
func (s *Store) hold(l *lease, c cid.Cid) {
	k := key(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := l.blocks[k]; ok {
		return
	}
	if _, live := s.leases[l.id]; !live {
		return
	}
	l.blocks[k] = struct{}{}
	s.leased[k]++
	s.protectLocked(k)
}

// dropLeaseLocked ends lease l; its blocks that nothing else protects become cached.
func (s *Store) dropLeaseLocked(l *lease) {
	if _, ok := s.leases[l.id]; !ok {
		return
	}
	delete(s.leases, l.id)
	for k := range l.blocks {
		if s.leased[k]--; s.leased[k] <= 0 {
			delete(s.leased, k)
			s.unprotectLocked(k)
		}
	}
	s.evictLocked(s.ctx)
}

func (s *Store) dropLease(l *lease) {
	s.mu.Lock()
	s.dropLeaseLocked(l)
	s.mu.Unlock()
}

// expireLeasesLocked ends the leases past their TTL.
func (s *Store) expireLeasesLocked() {
	now := s.now()
	for _, l := range s.leases {
		if !l.until.IsZero() && now.After(l.until) {
			s.log.Info("dfs content: write lease expired without Release or Pin", "root", l.root)
			s.dropLeaseLocked(l)
		}
	}
}

// Release ends one write lease of root (from Add): its blocks are no longer protected
// from GC unless pinned. It is a no-op when root has no lease.
func (s *Store) Release(root cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.leases {
		if !l.until.IsZero() && l.root.Equals(root) {
			s.dropLeaseLocked(l)
			return
		}
	}
}

// writeFileSync writes b to path durably: temp file, fsync, rename, fsync of the dir.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
