package content

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/rads-lang/constellation/p2p"
)

// Store is a node's content store: a persistent block store, the chunker and DAG
// builder, pins, leases, the LRU cache, and the transfer protocols. Its methods are safe
// for concurrent use.
type Store struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	net     Network
	members Members
	m       *metrics

	pack   *packStore
	bs     *bstore
	bsw    *bitswap.Bitswap       // nil without a network or with DisableBitswap
	bulk   *p2p.Service           // nil without a network
	router routing.ContentRouting // the private DHT, nil without one
	local  blockservice.BlockService

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	compactKick chan struct{} // wakes the compactor (pack.go); buffered, 1

	gwOnce sync.Once
	gw     http.Handler
	gwErr  error

	mu          sync.Mutex // guards everything below
	closed      bool
	sizes       map[string]int64 // every block present: its size
	used        int64            // sum of sizes
	reserved    int64            // bytes of writes in progress
	pins        map[string]*pinRec
	pinned      map[string]int // block -> number of pinned roots that reach it
	leases      map[uint64]*lease
	nextID      uint64
	leased      map[string]int // block -> number of leases that hold it
	lru         *list.List     // keys of unprotected blocks, most recently used first
	lruIdx      map[string]*list.Element
	cached      int64 // bytes of the blocks in lru
	inflight    map[string]chan struct{}
	roots       map[string]cid.Cid  // roots seen (added, opened, pinned, imported): GC asks keep about them
	pinBlocks   map[string][]string // pinned root -> its blocks counted in pinned
	pinLog      *os.File            // pins.log, open for appending (pinlog.go)
	blockClass  map[string]string   // cached block -> its cache class (cacheclass.go)
	classBytes  map[string]int64    // class -> bytes of its blocks in the LRU
	classLimit  map[string]int64    // class -> its bound
	pinLogLines int
	// statfs reports the free bytes of the disk (tests replace it).
	statfs func() (int64, error)
}

type pinRec struct {
	Root cid.Cid `json:"root"`
	N    int     `json:"n"`
}

// lease protects the blocks of a write (or of a pin in progress) from GC and eviction.
type lease struct {
	id     uint64
	root   cid.Cid
	blocks map[string]struct{}
	until  time.Time // zero: until released
}

// New opens (or creates) the store in cfg.Dir. net may be nil: the store then works
// offline (Add, Open of local content, Pin of complete DAGs, CAR, gateway).
func New(ctx context.Context, cfg Config, net Network) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dfs content: create %s: %w", cfg.Dir, err)
	}
	// Blocks live in append-only segments (pack.go); Add, Pin and ImportCAR make their
	// blocks durable with one fdatasync per segment written before they return (see
	// syncDisk). Cached blocks need no durability: a block damaged by a crash fails its
	// hash check on read and is fetched again.
	pack, err := openPack(filepath.Join(cfg.Dir, "packs"), cfg.Log)
	if err != nil {
		return nil, err
	}
	if err := migrateFlatfs(ctx, cfg.Dir, pack, cfg.Log); err != nil {
		pack.Close()
		return nil, err
	}
	s := &Store{
		cfg: cfg, log: cfg.Log, now: cfg.Clock, net: net,
		pack:      pack,
		sizes:     map[string]int64{},
		pins:      map[string]*pinRec{},
		pinned:    map[string]int{},
		leases:    map[uint64]*lease{},
		leased:    map[string]int{},
		lru:       list.New(),
		lruIdx:    map[string]*list.Element{},
		inflight:  map[string]chan struct{}{},
		roots:     map[string]cid.Cid{},
		pinBlocks: map[string][]string{},
	}
	s.statfs = s.diskFree
	s.members = cfg.Members
	if s.members == nil && net != nil {
		s.members = MembersFunc(net.IsAdmitted)
	}
	if s.members == nil {
		s.members = MembersFunc(func(peer.ID) bool { return false })
	}
	if s.m, err = newMetrics(cfg.Metrics, s); err != nil {
		pack.Close()
		return nil, err
	}
	s.bs = &bstore{s: s, inner: pack}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := s.load(ctx); err != nil {
		s.cancel()
		pack.Close()
		return nil, err
	}
	var ex exchange.Interface
	if net != nil {
		if cr, ok := net.(ContentRouter); ok {
			s.router = cr.ContentRouting()
		}
		if !cfg.DisableBitswap {
			s.bsw = newBitswap(s.ctx, s, net, s.router)
			ex = s.bsw
		}
		if s.bulk, err = net.NewService(bulkProtocol, bulkServiceConfig(cfg), s.serveBulk); err != nil {
			s.closeParts()
			return nil, fmt.Errorf("dfs content: %w", err)
		}
	}
	s.local = blockservice.New(s.bs, ex)
	s.compactKick = make(chan struct{}, 1)
	s.goRun(s.compactor)
	go func() { // ctx given to New is the node's shutdown signal
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	return s, nil
}

// Close stops the transfer protocols, waits for the store's goroutines and closes the
// block store. It is safe to call twice.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.closeParts()
}

func (s *Store) closeParts() error {
	s.cancel()
	if s.bulk != nil {
		s.bulk.Close()
	}
	if s.bsw != nil {
		s.bsw.Close()
	}
	s.wg.Wait()
	s.mu.Lock()
	if s.pinLog != nil {
		s.pinLog.Close()
		s.pinLog = nil
	}
	s.mu.Unlock()
	return s.pack.Close()
}

// goRun runs f as a goroutine owned by the store (Close waits for it); false when closed.
func (s *Store) goRun(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// syncDisk makes every block written so far durable.
func (s *Store) syncDisk() error {
	return s.pack.Sync()
}

// kickCompact asks the compactor to look at the segments (after deletions).
func (s *Store) kickCompact() {
	if s.compactKick == nil {
		return
	}
	select {
	case s.compactKick <- struct{}{}:
	default:
	}
}

// compactor rewrites mostly-dead segments when deletions (GC, eviction, corruption)
// ask for it, until the store closes.
func (s *Store) compactor() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.compactKick:
		}
		freed, err := s.pack.Compact(s.ctx)
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("dfs content: compact block segments", "err", err)
		}
		if freed > 0 {
			s.m.compacted.Add(float64(freed))
		}
	}
}

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// load reads the block sizes and the pins, and rebuilds the pinned set and the LRU.
func (s *Store) load(ctx context.Context) error {
	s.pack.forEach(func(k string, n int64) {
		s.sizes[k] = n
		s.used += n
	})
	b, err := os.ReadFile(s.pinsFile())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("dfs content: read pins: %w", err)
	default:
		var recs []pinRec
		if err := json.Unmarshal(b, &recs); err != nil {
			return fmt.Errorf("dfs content: %s is damaged (%v); it should be a JSON list of {\"root\": CID, \"n\": count}", s.pinsFile(), err)
		}
		for _, r := range recs {
			if !r.Root.Defined() || r.N <= 0 {
				return fmt.Errorf("dfs content: %s: bad pin record %+v", s.pinsFile(), r)
			}
			rr := r
			s.pins[key(r.Root)] = &rr
		}
	}
	if err := s.replayPinLog(); err != nil {
		return err
	}
	if _, err := os.Stat(s.pinLogFile()); err == nil {
		if err := s.foldPinsLocked(); err != nil {
			return fmt.Errorf("dfs content: save pins: %w", err)
		}
	}
	for _, r := range s.pins {
		rk := key(r.Root)
		s.noteRootLocked(r.Root)
		err := s.walkLocal(ctx, r.Root, func(c cid.Cid) {
			s.pinned[key(c)]++
			s.pinBlocks[rk] = append(s.pinBlocks[rk], key(c))
		})
		if err != nil {
			return err
		}
	}
	for k, n := range s.sizes {
		if !s.protectedLocked(k) {
			s.lruIdx[k] = s.lru.PushBack(k)
			s.cached += n
		}
	}
	s.evictLocked(ctx)
	return nil
}

func (s *Store) pinsFile() string { return filepath.Join(s.cfg.Dir, "pins.json") }

// writePinSnapshotLocked writes the pins durably (temp file, fsync, rename, fsync of the
// dir).
func (s *Store) writePinSnapshotLocked() error {
	recs := make([]pinRec, 0, len(s.pins))
	for _, r := range s.pins {
		recs = append(recs, *r)
	}
	slices.SortFunc(recs, func(a, b pinRec) int { return strings.Compare(a.Root.KeyString(), b.Root.KeyString()) })
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	return writeFileSync(s.pinsFile(), b)
}
