package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/ipfs/boxo/blockservice"
	chunk "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// AddOptions tune Add.
type AddOptions struct {
	// Chunker: "" or "size-262144" (fixed 256 KiB chunks), "size-N" (1 <= N <= 1 MiB),
	// or "buzhash" (content-defined).
	Chunker string
}

// Added describes content stored by Add.
type Added struct {
	Root   cid.Cid // CIDv1 (dag-pb root, raw leaves; a raw CID for a one-chunk file)
	Size   int64   // bytes of the file
	Blocks int     // distinct blocks of its DAG
}

// File is an open file of the store.
type File interface {
	io.ReadSeekCloser
	// Size is the file's length in bytes.
	Size() int64
}

var cidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}

// checkChunker validates a chunker name.
func checkChunker(name string) (string, error) {
	switch {
	case name == "":
		return ChunkerFixed, nil
	case name == ChunkerBuzhash:
		return name, nil
	case strings.HasPrefix(name, "size-"):
		var n int
		if _, err := fmt.Sscanf(name, "size-%d", &n); err == nil && n >= 1 && n <= 1<<20 && fmt.Sprintf("size-%d", n) == name {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w %q: use \"size-N\" (fixed chunks of N bytes, 1 <= N <= 1048576; default size-262144) or \"buzhash\" (content-defined)", ErrBadChunker, name)
}

// Add chunks r into a UnixFS balanced DAG (CIDv1, raw leaves) and stores it, each block
// once. The new blocks stay protected from GC by a write lease until Release(root) or
// Pin(root) (or LeaseTTL). On a full disk it fails with ErrDiskFull, telling how many
// bytes were missing; nothing of the write stays protected then.
func (s *Store) Add(ctx context.Context, r io.Reader, opt AddOptions) (Added, error) {
	name, err := checkChunker(opt.Chunker)
	if err != nil {
		return Added{}, err
	}
	if err := s.checkOpen(); err != nil {
		return Added{}, err
	}
	cr := &countReader{r: r}
	spl, err := chunk.FromString(cr, name)
	if err != nil {
		return Added{}, fmt.Errorf("%w %q: %v", ErrBadChunker, name, err)
	}
	l := s.newLease(cid.Undef, true)
	dag := &holdDAG{DAGService: merkledag.NewDAGService(s.local), s: s, l: l}
	buf := format.NewBufferedDAG(ctx, dag)
	params := helpers.DagBuilderParams{Maxlinks: helpers.DefaultLinksPerBlock, RawLeaves: true, CidBuilder: cidBuilder, Dagserv: buf}
	db, err := params.New(spl)
	var nd format.Node
	if err == nil {
		nd, err = balanced.Layout(db)
	}
	if err == nil {
		err = buf.Commit()
	}
	if err == nil {
		err = s.syncDisk()
	}
	if err != nil {
		s.abandon(ctx, l)
		if errors.Is(err, ErrDiskFull) {
			rest, _ := io.Copy(io.Discard, r) // how large the file was, to say what was missing
			total := cr.n + rest
			s.mu.Lock()
			avail, _ := s.availLocked()
			s.mu.Unlock()
			e := &diskFullError{Node: s.nodeName(), Need: total, Avail: min(avail, total-1), What: fmt.Sprintf("adding a file of %d bytes", total)}
			e.Missing = e.Need - e.Avail
			return Added{}, e
		}
		return Added{}, fmt.Errorf("dfs content: add: %w", err)
	}
	s.mu.Lock()
	l.root = nd.Cid()
	n := len(l.blocks)
	s.noteRootLocked(nd.Cid())
	s.mu.Unlock()
	s.m.addedBytes.Add(float64(cr.n))
	return Added{Root: nd.Cid(), Size: cr.n, Blocks: n}, nil
}

// abandon drops a failed write's lease and deletes the blocks only it held.
func (s *Store) abandon(ctx context.Context, l *lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(l.blocks))
	for k := range l.blocks {
		keys = append(keys, k)
	}
	s.dropLeaseLocked(l)
	for _, k := range keys {
		if _, cached := s.lruIdx[k]; cached {
			if err := s.bs.inner.DeleteBlock(ctx, cidOfKey(k)); err == nil {
				s.forgetLocked(k)
			}
		}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// holdDAG puts every node it writes under a lease first.
type holdDAG struct {
	format.DAGService
	s *Store
	l *lease
}

func (d *holdDAG) Add(ctx context.Context, n format.Node) error {
	d.s.hold(d.l, n.Cid())
	return d.DAGService.Add(ctx, n)
}

func (d *holdDAG) AddMany(ctx context.Context, ns []format.Node) error {
	for _, n := range ns {
		d.s.hold(d.l, n.Cid())
	}
	return d.DAGService.AddMany(ctx, ns)
}

// noteRootLocked remembers a root for GC's keep callback.
func (s *Store) noteRootLocked(c cid.Cid) {
	if s.roots == nil {
		s.roots = map[string]cid.Cid{}
	}
	s.roots[key(c)] = c
}

// links returns the links of a local block (none for raw blocks and codecs other than
// dag-pb); format.ErrNotFound if it is not here.
func (s *Store) links(ctx context.Context, c cid.Cid) ([]cid.Cid, error) {
	if c.Type() != cid.DagProtobuf {
		if ok, err := s.bs.Has(ctx, c); err != nil || !ok {
			return nil, format.ErrNotFound{Cid: c}
		}
		return nil, nil
	}
	blk, err := s.bs.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return blockLinks(blk)
}

func blockLinks(blk blocks.Block) ([]cid.Cid, error) {
	if blk.Cid().Type() != cid.DagProtobuf {
		return nil, nil
	}
	nd, err := merkledag.DecodeProtobufBlock(blk)
	if err != nil {
		return nil, fmt.Errorf("%w: block %s: %v", ErrBadData, blk.Cid(), err)
	}
	out := make([]cid.Cid, 0, len(nd.Links()))
	for _, l := range nd.Links() {
		out = append(out, l.Cid)
	}
	return out, nil
}

// walkLocal calls fn for every block of root's DAG that can be reached through local
// blocks (present or not), each once; missing blocks are reported and not descended.
func (s *Store) walkLocal(ctx context.Context, root cid.Cid, fn func(c cid.Cid)) error {
	_, err := s.walkLocalMissing(ctx, root, fn)
	return err
}

func (s *Store) walkLocalMissing(ctx context.Context, root cid.Cid, fn func(c cid.Cid)) (missing int, err error) {
	seen := map[string]bool{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return missing, err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[key(c)] {
			continue
		}
		seen[key(c)] = true
		fn(c)
		ls, err := s.links(ctx, c)
		if err != nil {
			if format.IsNotFound(err) {
				missing++
				continue
			}
			return missing, err
		}
		for i := len(ls) - 1; i >= 0; i-- {
			stack = append(stack, ls[i])
		}
	}
	return missing, nil
}

// fetchDAG makes root's whole DAG local, level by level: what is missing of a level is
// fetched from the holders in parallel (bitswap as the fallback). Every block is put
// under lease l (if not nil) before it is written.
func (s *Store) fetchDAG(ctx context.Context, root cid.Cid, holders []peer.ID, l *lease) error {
	seen := map[string]bool{}
	level := []cid.Cid{root}
	for len(level) > 0 {
		var next, missing []cid.Cid
		var mu sync.Mutex
		for _, c := range level {
			if seen[key(c)] {
				continue
			}
			seen[key(c)] = true
			if l != nil {
				s.hold(l, c)
			}
			ls, err := s.links(ctx, c)
			switch {
			case err == nil:
				next = append(next, ls...)
			case format.IsNotFound(err):
				missing = append(missing, c)
			default:
				return err
			}
		}
		err := s.fetchMissing(ctx, missing, holders, func(b blocks.Block) error {
			ls, err := blockLinks(b)
			if err != nil {
				return err
			}
			mu.Lock()
			next = append(next, ls...)
			mu.Unlock()
			return nil
		})
		if err != nil {
			return err
		}
		level = next
	}
	return nil
}

// Open opens root as a file. Blocks that are not here are fetched from holders first
// (bitswap as the fallback); they land in the cache unless pinned. With holders and a
// file that fits in half the cache, the whole DAG is read ahead in the background.
func (s *Store) Open(ctx context.Context, root cid.Cid, holders []peer.ID) (File, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(withHot(ctx))
	stop := context.AfterFunc(s.ctx, cancel)
	dserv := merkledag.NewDAGService(blockservice.New(s.bs, &holderExchange{s: s, holders: holders}))
	nd, err := dserv.Get(fctx, root)
	if err != nil {
		stop()
		cancel()
		return nil, s.notFound(root, holders, err)
	}
	if pn, ok := nd.(*merkledag.ProtoNode); ok {
		fs, err := ft.FSNodeFromBytes(pn.Data())
		if err != nil || (fs.Type() != ft.TFile && fs.Type() != ft.TRaw) {
			stop()
			cancel()
			return nil, fmt.Errorf("%w: %s is not a UnixFS file", ErrNotFile, root)
		}
	}
	dr, err := uio.NewDagReader(fctx, nd, dserv)
	if err != nil {
		stop()
		cancel()
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFile, root, err)
	}
	s.mu.Lock()
	s.noteRootLocked(root)
	s.mu.Unlock()
	f := &file{DagReader: dr, cancel: cancel, stop: stop}
	if len(holders) > 0 && s.bulk != nil && int64(dr.Size()) <= s.cacheLimit()/2 {
		if complete, _ := s.Has(fctx, root); !complete {
			f.ahead.Add(1)
			if !s.goRun(func() {
				defer f.ahead.Done()
				if err := s.fetchDAG(fctx, root, holders, nil); err != nil && fctx.Err() == nil {
					s.log.Debug("dfs content: read-ahead stopped", "root", root, "err", err)
				}
			}) {
				f.ahead.Done()
			}
		}
	}
	return f, nil
}

func (s *Store) notFound(root cid.Cid, holders []peer.ID, err error) error {
	if format.IsNotFound(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s is not here and none of the holders %v sent it: %v", ErrNotFound, root, holders, err)
	}
	return err
}

type file struct {
	uio.DagReader
	cancel context.CancelFunc
	stop   func() bool
	ahead  sync.WaitGroup
	once   sync.Once
}

func (f *file) Size() int64 { return int64(f.DagReader.Size()) }

func (f *file) Close() error {
	f.once.Do(func() {
		f.stop()
		f.cancel()
		f.ahead.Wait()
	})
	return f.DagReader.Close()
}

// Pin makes root's whole DAG local (fetching what is missing from holders, bitswap as
// the fallback; every block written with fsync) and marks it pinned, persistently.
// Pins are counted by root: n Pin calls need n Unpin calls. A pin takes over the write
// lease of root, if any. On a full disk it fails with ErrDiskFull and how many bytes
// were missing on this node.
func (s *Store) Pin(ctx context.Context, root cid.Cid, holders []peer.ID) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	l := s.newLease(root, false)
	defer s.dropLease(l)
	if err := s.fetchDAG(ctx, root, holders, l); err != nil {
		if errors.Is(err, ErrDiskFull) {
			return s.pinDiskFull(ctx, root, l, err)
		}
		return s.notFound(root, holders, err)
	}
	if err := s.syncDisk(); err != nil {
		return err
	}
	first, err := s.recordPin(root, l)
	if err != nil {
		return err
	}
	if first {
		s.announce(root)
	}
	return nil
}

// recordPin counts a pin of root whose blocks lease l holds; first: root was not pinned.
func (s *Store) recordPin(root cid.Cid, l *lease) (first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pins[key(root)]
	if r == nil {
		r = &pinRec{Root: root}
		s.pins[key(root)] = r
		if s.pinBlocks == nil {
			s.pinBlocks = map[string][]string{}
		}
	}
	have := map[string]bool{}
	for _, k := range s.pinBlocks[key(root)] {
		have[k] = true
	}
	for k := range l.blocks {
		if !have[k] {
			s.pinned[k]++
			s.protectLocked(k)
			s.pinBlocks[key(root)] = append(s.pinBlocks[key(root)], k)
		}
	}
	r.N++
	s.noteRootLocked(root)
	for _, wl := range s.leases { // the pin takes over a write lease of root
		if !wl.until.IsZero() && wl.root.Equals(root) {
			s.dropLeaseLocked(wl)
			break
		}
	}
	if err := s.logPinLocked(*r); err != nil {
		return false, fmt.Errorf("dfs content: save pins: %w", err)
	}
	return r.N == 1, nil
}

// pinDiskFull rewrites a write's disk-full error as the pin's: the bytes of the file
// still missing here against the room there was.
func (s *Store) pinDiskFull(ctx context.Context, root cid.Cid, l *lease, cause error) error {
	size, _ := s.fileSize(ctx, root)
	s.mu.Lock()
	defer s.mu.Unlock()
	var have int64
	for k := range l.blocks {
		have += s.sizes[k]
	}
	avail, _ := s.availLocked()
	avail += s.cached
	e := &diskFullError{Node: s.nodeName(), What: "pinning " + root.String()}
	var de *diskFullError
	if errors.As(cause, &de) {
		e.Need, e.Avail = de.Need, de.Avail
	}
	if rest := int64(size) - have; rest > e.Need {
		e.Need, e.Avail = rest, min(avail, rest-1)
	}
	e.Missing = e.Need - e.Avail
	return e
}

// fileSize is the UnixFS size of a local root.
func (s *Store) fileSize(ctx context.Context, root cid.Cid) (uint64, error) {
	blk, err := s.bs.Get(ctx, root)
	if err != nil {
		return 0, err
	}
	if root.Type() == cid.Raw {
		return uint64(len(blk.RawData())), nil
	}
	nd, err := merkledag.DecodeProtobuf(blk.RawData())
	if err != nil {
		return 0, err
	}
	fs, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		return 0, err
	}
	return fs.FileSize(), nil
}

// Unpin removes one pin of root; when none is left its blocks become cached (and go
// with the LRU or GC). ErrNotPinned if root is not pinned.
func (s *Store) Unpin(root cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pins[key(root)]
	if r == nil {
		return fmt.Errorf("%w: %s", ErrNotPinned, root)
	}
	r.N--
	rec := pinRec{Root: r.Root, N: max(r.N, 0)}
	if r.N <= 0 {
		delete(s.pins, key(root))
		for _, k := range s.pinBlocks[key(root)] {
			if s.pinned[k]--; s.pinned[k] <= 0 {
				delete(s.pinned, k)
				s.unprotectLocked(k)
			}
		}
		delete(s.pinBlocks, key(root))
		s.evictLocked(s.ctx)
	}
	if err := s.logPinLocked(rec); err != nil {
		return fmt.Errorf("dfs content: save pins: %w", err)
	}
	return nil
}

// Has reports whether root's whole DAG is here.
func (s *Store) Has(ctx context.Context, root cid.Cid) (bool, error) {
	missing, err := s.walkLocalMissing(ctx, root, func(cid.Cid) {})
	if err != nil {
		return false, err
	}
	return missing == 0, nil
}

// Pins lists the pinned roots, sorted.
func (s *Store) Pins() []cid.Cid {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cid.Cid, 0, len(s.pins))
	for _, r := range s.pins {
		out = append(out, r.Root)
	}
	slices.SortFunc(out, func(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) })
	return out
}

// Stat describes what this node has of a file.
type Stat struct {
	Root        cid.Cid
	Size        int64 // file bytes (0 when the root is not here)
	Blocks      int   // blocks of the DAG known from the local blocks
	LocalBlocks int   // of which here
	LocalBytes  int64
	Complete    bool // the whole DAG is here
	Pins        int  // pin count (0: not pinned)
	Leased      bool // a write lease holds it
	Cached      bool // complete here without a pin or lease (the LRU may drop it)
}

// Stat tells how much of root is here and whether it is pinned, leased or cached.
func (s *Store) Stat(ctx context.Context, root cid.Cid) (Stat, error) {
	st := Stat{Root: root}
	var keys []string
	missing, err := s.walkLocalMissing(ctx, root, func(c cid.Cid) { keys = append(keys, key(c)) })
	if err != nil {
		return st, err
	}
	if size, err := s.fileSize(ctx, root); err == nil {
		st.Size = int64(size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Blocks = len(keys)
	for _, k := range keys {
		if n, ok := s.sizes[k]; ok {
			st.LocalBlocks++
			st.LocalBytes += n
		}
	}
	st.Complete = missing == 0
	if r := s.pins[key(root)]; r != nil {
		st.Pins = r.N
	}
	st.Leased = s.leased[key(root)] > 0
	st.Cached = st.Complete && st.Pins == 0 && !st.Leased
	return st, nil
}

// Usage is the store's use of its disk.
type Usage struct {
	PinnedBytes int64 // blocks reached by a pinned root
	LeasedBytes int64 // blocks held only by write leases
	CacheBytes  int64 // blocks in the LRU
	UsedBytes   int64 // all blocks
	DiskBytes   int64 // the block segments on disk (UsedBytes, record headers, and deleted blocks until compaction)
	Capacity    int64 // Config.Capacity (0: the disk)
	Blocks      int
	Pins        int
}

// Usage reports the bytes pinned, leased and cached.
func (s *Store) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := Usage{CacheBytes: s.cached, UsedBytes: s.used, DiskBytes: s.pack.DiskBytes(), Capacity: s.cfg.Capacity, Blocks: len(s.sizes), Pins: len(s.pins)}
	for k, n := range s.sizes {
		switch {
		case s.pinned[k] > 0:
			u.PinnedBytes += n
		case s.leased[k] > 0:
			u.LeasedBytes += n
		}
	}
	return u
}

// GC deletes the blocks that no pinned root reaches, no write lease holds, and no root
// for which keep returns true reaches. keep is asked about the roots this store has seen
// (added, opened, pinned, imported) and not pinned. Expired leases end first. It returns
// the bytes freed.
func (s *Store) GC(ctx context.Context, keep func(cid.Cid) bool) (freed int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.expireLeasesLocked()
	var roots []cid.Cid
	for k, c := range s.roots {
		if s.pins[k] == nil {
			roots = append(roots, c)
		}
	}
	s.mu.Unlock()
	kept := map[string]bool{}
	for _, r := range roots {
		if keep == nil || !keep(r) {
			continue
		}
		if err := s.walkLocal(ctx, r, func(c cid.Cid) { kept[key(c)] = true }); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := s.lru.Back(); e != nil; {
		prev := e.Prev()
		k := e.Value.(string)
		if !kept[k] && !s.protectedLocked(k) {
			n := s.sizes[k]
			if err := s.bs.inner.DeleteBlock(ctx, cidOfKey(k)); err != nil {
				return freed, fmt.Errorf("dfs content: gc: %w", err)
			}
			s.forgetLocked(k)
			freed += n
		}
		e = prev
	}
	for k := range s.roots {
		if _, ok := s.sizes[k]; !ok && s.pins[k] == nil {
			delete(s.roots, k)
		}
	}
	s.m.gcFreed.Add(float64(freed))
	return freed, nil
}

// Repair reads every local block of root's DAG (checking each against its CID: corrupt
// blocks are deleted and counted) and fetches what is missing from holders, so that a
// pinned file is whole again (the re-replication runner and scrubbing call it). It
// returns how many blocks were fetched.
func (s *Store) Repair(ctx context.Context, root cid.Cid, holders []peer.ID) (fetched int, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	err = s.walkLocal(ctx, root, func(c cid.Cid) {
		if c.Type() == cid.Raw { // dag-pb blocks were read (and checked) by the walk
			s.bs.Get(ctx, c)
		}
	})
	if err != nil {
		return 0, err
	}
	before := s.m.storedCount()
	l := s.newLease(root, false)
	defer s.dropLease(l)
	if err := s.fetchDAG(ctx, root, holders, l); err != nil {
		return 0, s.notFound(root, holders, err)
	}
	if err := s.syncDisk(); err != nil {
		return 0, err
	}
	return int(s.m.storedCount() - before), nil
}
