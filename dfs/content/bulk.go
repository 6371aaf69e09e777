package content

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/p2p"
)

// The bulk protocol moves blocks between members faster than bitswap: one request
// names up to maxWant blocks, the holder answers with one frame per block in the same
// order, and closes:
//
//	request  = one frame: CBOR {1: [CID bytes, ...]}        (1 <= n <= maxWant)
//	response = n frames:  0x00 || block bytes               (the block of the i-th CID)
//	                  or  0x01                              (not here)
//
// Frames are bounded (MaxBlockSize + 1 bytes), each read has a deadline, and every
// block is checked against the CID it was asked for before it is stored: a holder can
// only send the bytes that were asked for. The client splits a want list into batches,
// runs StreamsPerHolder requests per holder at once, and gives what a holder did not
// send (missing, failure, bad block) to the other holders.
const (
	bulkProtocol = "dfs-blocks/1.0.0"
	maxWant      = 1024 // CIDs per request
	bulkBatch    = 64   // CIDs per request the client sends (16 MiB of 256 KiB blocks)
	storeBatch   = 16   // blocks written (and fsynced) together
	frameBlock   = 0x00
	frameMissing = 0x01
)

func bulkServiceConfig(cfg Config) p2p.ServiceConfig {
	return p2p.ServiceConfig{
		MaxFrame:     MaxBlockSize + 1,
		ReadTimeout:  cfg.FetchTimeout,
		WriteTimeout: cfg.FetchTimeout,
	}
}

type wantRequest struct {
	Want [][]byte `cbor:"1,keyasint"`
}

var (
	wantEnc = func() cbor.EncMode {
		em, err := cbor.CanonicalEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
	wantDec = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			MaxNestedLevels:   4,
			MaxArrayElements:  maxWant + 16,
			MaxMapPairs:       16,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return dm
	}()
)

func encodeWant(cs []cid.Cid) ([]byte, error) {
	req := wantRequest{Want: make([][]byte, len(cs))}
	for i, c := range cs {
		req.Want[i] = c.Bytes()
	}
	return wantEnc.Marshal(req)
}

// decodeWant decodes a request (untrusted input).
func decodeWant(b []byte) ([]cid.Cid, error) {
	var req wantRequest
	if err := wantDec.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("%w: want request: %v", ErrBadData, err)
	}
	if len(req.Want) == 0 || len(req.Want) > maxWant {
		return nil, fmt.Errorf("%w: want request with %d CIDs (1..%d)", ErrBadData, len(req.Want), maxWant)
	}
	out := make([]cid.Cid, len(req.Want))
	for i, raw := range req.Want {
		n, c, err := cid.CidFromBytes(raw)
		if err != nil || n != len(raw) {
			return nil, fmt.Errorf("%w: want request: CID %d is malformed", ErrBadData, i)
		}
		out[i] = c
	}
	return out, nil
}

// decodeBlockFrame decodes a response frame for want (untrusted input): the block,
// verified against want, or nil when the holder does not have it.
func decodeBlockFrame(b []byte, want cid.Cid) (blocks.Block, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty block frame", ErrBadData)
	}
	switch b[0] {
	case frameMissing:
		if len(b) != 1 {
			return nil, fmt.Errorf("%w: 'missing' frame with %d trailing bytes", ErrBadData, len(b)-1)
		}
		return nil, nil
	case frameBlock:
		data := b[1:]
		if len(data) > MaxBlockSize {
			return nil, fmt.Errorf("%w: block of %d bytes", ErrTooLarge, len(data))
		}
		if err := verifyBlock(want, data); err != nil {
			return nil, err
		}
		return blocks.NewBlockWithCid(data, want)
	default:
		return nil, fmt.Errorf("%w: block frame of unknown type %#x", ErrBadData, b[0])
	}
}

// serveBulk answers one request of an admitted member with local blocks only.
func (s *Store) serveBulk(ctx context.Context, st *p2p.Stream) error {
	if !s.members.IsMember(st.Peer()) {
		return fmt.Errorf("dfs content: %s is not a member", st.Peer())
	}
	b, err := st.ReadFrame()
	if err != nil {
		return err
	}
	want, err := decodeWant(b)
	if err != nil {
		return err
	}
	// The client half-closed after its request: a reset of the stream (or a write
	// deadline) ends this loop, not the EOF.
	for _, c := range want {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		frame, err := s.bs.frame(ctx, c)
		if err != nil {
			frame = []byte{frameMissing}
		} else {
			s.m.servedBytes.Add(float64(len(frame) - 1))
		}
		if err := st.WriteFrame(frame); err != nil {
			return err
		}
	}
	return nil
}

// fetchMissing gets the blocks of want that are not here: from the holders over the
// bulk protocol, then bitswap for the rest. Each block is stored (fsynced) and then
// given to onBlock. Blocks another fetch of this store is already getting are waited
// for rather than fetched twice.
func (s *Store) fetchMissing(ctx context.Context, want []cid.Cid, holders []peer.ID, onBlock func(blocks.Block) error) error {
	if len(want) == 0 {
		return nil
	}
	mine, theirs, cs := s.claim(want)
	defer cs.release()
	given := onBlock
	onBlock = func(b blocks.Block) error { // stored: whoever waits for it may go on
		cs.done(key(b.Cid()))
		return given(b)
	}
	rest := mine
	var errs []error
	if len(rest) > 0 && s.bulk != nil && len(holders) > 0 {
		var err error
		rest, err = s.bulkFetch(ctx, rest, holders, onBlock)
		if err != nil {
			return err
		}
	}
	if len(rest) > 0 && s.bsw != nil {
		var err error
		rest, err = s.bitswapFetch(ctx, rest, onBlock)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for c, ch := range theirs {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		blk, err := s.bs.Get(ctx, c)
		if err != nil {
			rest = append(rest, c)
			continue
		}
		if err := onBlock(blk); err != nil {
			return err
		}
	}
	if len(rest) > 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d blocks (first %s) are on none of the holders %v nor to be had over bitswap", ErrNotFound, len(rest), len(want), rest[0], holders))
		return errors.Join(errs...)
	}
	return nil
}

// claim registers the blocks of want this fetch will get (mine) and returns those
// another fetch is getting (theirs) with their done channels.
func (s *Store) claim(want []cid.Cid) (mine []cid.Cid, theirs map[cid.Cid]chan struct{}, cs *claimSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	theirs = map[cid.Cid]chan struct{}{}
	cs = &claimSet{s: s, keys: map[string]bool{}}
	for _, c := range want {
		k := key(c)
		if cs.keys[k] {
			continue
		}
		if ch, ok := s.inflight[k]; ok {
			theirs[c] = ch
			continue
		}
		s.inflight[k] = make(chan struct{})
		cs.keys[k] = true
		mine = append(mine, c)
	}
	return mine, theirs, cs
}

// claimSet is the blocks one fetch is getting.
type claimSet struct {
	s    *Store
	keys map[string]bool
}

// done wakes those waiting for k (stored, or given up).
func (cs *claimSet) done(k string) {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	cs.doneLocked(k)
}

func (cs *claimSet) doneLocked(k string) {
	if cs.keys[k] {
		close(cs.s.inflight[k])
		delete(cs.s.inflight, k)
		delete(cs.keys, k)
	}
}

func (cs *claimSet) release() {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	for k := range cs.keys {
		cs.doneLocked(k)
	}
}

// bulkJob is the shared work of one bulkFetch: the CIDs left and who tried them.
type bulkJob struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []cid.Cid
	tried   map[string]map[peer.ID]bool
	running int // requests in progress
	alive   map[peer.ID]bool
	missing []cid.Cid // tried by every live holder
	err     error     // a local failure (disk full): stops everything
}

// bulkFetch fetches want from holders in parallel and returns what none of them sent.
func (s *Store) bulkFetch(ctx context.Context, want []cid.Cid, holders []peer.ID, onBlock func(blocks.Block) error) ([]cid.Cid, error) {
	j := &bulkJob{queue: append([]cid.Cid(nil), want...), tried: map[string]map[peer.ID]bool{}, alive: map[peer.ID]bool{}}
	j.cond = sync.NewCond(&j.mu)
	var hs []peer.ID
	for _, h := range holders {
		if h != s.net.ID() && !j.alive[h] {
			j.alive[h] = true
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return want, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		j.mu.Lock()
		j.cond.Broadcast()
		j.mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	for _, h := range hs {
		for range s.cfg.StreamsPerHolder {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.bulkWorker(ctx, j, h, onBlock)
			}()
		}
	}
	wg.Wait()
	if j.err != nil {
		return nil, j.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return append(j.missing, j.queue...), nil
}

// take gives holder h up to bulkBatch CIDs it has not tried; nil when nothing is left
// for it.
func (j *bulkJob) take(ctx context.Context, h peer.ID) []cid.Cid {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		if j.err != nil || ctx.Err() != nil || !j.alive[h] {
			return nil
		}
		var batch, keep []cid.Cid
		for _, c := range j.queue {
			if len(batch) < bulkBatch && !j.tried[key(c)][h] {
				batch = append(batch, c)
			} else {
				keep = append(keep, c)
			}
		}
		if len(batch) > 0 {
			j.queue = keep
			for _, c := range batch {
				if j.tried[key(c)] == nil {
					j.tried[key(c)] = map[peer.ID]bool{}
				}
				j.tried[key(c)][h] = true
			}
			j.running++
			return batch
		}
		if j.running == 0 {
			j.settleLocked()
			j.cond.Broadcast()
			return nil
		}
		j.cond.Wait() // another request may give back CIDs
	}
}

// settleLocked moves the CIDs every live holder tried to missing.
func (j *bulkJob) settleLocked() {
	var keep []cid.Cid
	for _, c := range j.queue {
		all := true
		for h := range j.alive {
			if !j.tried[key(c)][h] {
				all = false
			}
		}
		if all {
			j.missing = append(j.missing, c)
		} else {
			keep = append(keep, c)
		}
	}
	j.queue = keep
}

// done returns a request's unfetched CIDs to the queue; dead marks the holder failed.
func (j *bulkJob) done(h peer.ID, back []cid.Cid, dead bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.running--
	j.queue = append(j.queue, back...)
	if dead {
		delete(j.alive, h)
	}
	if err != nil && j.err == nil {
		j.err = err
	}
	j.cond.Broadcast()
}

func (s *Store) bulkWorker(ctx context.Context, j *bulkJob, h peer.ID, onBlock func(blocks.Block) error) {
	for {
		batch := j.take(ctx, h)
		if batch == nil {
			return
		}
		got, notHere, err := s.bulkRequest(ctx, h, batch, onBlock)
		var back []cid.Cid
		for i, c := range batch {
			if i >= got || notHere[i] {
				back = append(back, c)
			}
		}
		var local error
		if errors.Is(err, ErrDiskFull) || errors.Is(err, errOnBlock) {
			local = err
		}
		if err != nil && local == nil {
			s.log.Debug("dfs content: bulk fetch from holder failed; others get the rest", "holder", h, "left", len(back), "err", err)
			s.m.holderFailures.Inc()
		}
		j.done(h, back, err != nil, local)
	}
}

var errOnBlock = errors.New("dfs content: block consumer failed")

// bulkRequest asks h for batch and stores what it sends. got is how many frames were
// read; notHere marks the CIDs h said it does not have.
func (s *Store) bulkRequest(ctx context.Context, h peer.ID, batch []cid.Cid, onBlock func(blocks.Block) error) (got int, notHere map[int]bool, err error) {
	req, err := encodeWant(batch)
	if err != nil {
		return 0, nil, err
	}
	st, err := s.bulk.Open(ctx, h)
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	st.SetReadTimeout(s.cfg.FetchTimeout)
	if err := st.WriteFrame(req); err != nil {
		st.Reset()
		return 0, nil, err
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return 0, nil, err
	}
	notHere = map[int]bool{}
	var pending []blocks.Block
	flushed := 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := s.bs.putVerified(ctx, pending); err != nil {
			return err
		}
		for _, b := range pending {
			if err := onBlock(b); err != nil {
				return fmt.Errorf("%w: %v", errOnBlock, err)
			}
		}
		s.m.fetchedBlocks.WithLabelValues("bulk").Add(float64(len(pending)))
		pending = pending[:0]
		flushed = got
		return nil
	}
	for i, c := range batch {
		b, err := st.ReadFrame()
		if err != nil {
			st.Reset()
			if ferr := flush(); ferr != nil {
				return flushed, notHere, ferr
			}
			return got, notHere, err
		}
		blk, err := decodeBlockFrame(b, c)
		if err != nil {
			s.m.badBlocks.Inc()
			st.Reset()
			if ferr := flush(); ferr != nil {
				return flushed, notHere, ferr
			}
			return got, notHere, fmt.Errorf("holder %s: %w", h, err)
		}
		got = i + 1
		if blk == nil {
			notHere[i] = true
			continue
		}
		s.m.fetchedBytes.WithLabelValues("bulk").Add(float64(len(blk.RawData())))
		pending = append(pending, blk)
		if len(pending) >= storeBatch {
			if err := flush(); err != nil {
				st.Reset()
				return flushed, notHere, err
			}
		}
	}
	if err := flush(); err != nil {
		return flushed, notHere, err
	}
	return got, notHere, nil
}

// bitswapFetch asks bitswap for want, giving up after FetchTimeout without progress.
func (s *Store) bitswapFetch(ctx context.Context, want []cid.Cid, onBlock func(blocks.Block) error) ([]cid.Cid, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.bsw.GetBlocks(ctx, want)
	if err != nil {
		return want, err
	}
	left := map[string]cid.Cid{}
	for _, c := range want {
		left[key(c)] = c
	}
	timer := time.NewTimer(s.cfg.FetchTimeout)
	defer timer.Stop()
	for len(left) > 0 {
		select {
		case blk, ok := <-ch:
			if !ok {
				return values(left), ctx.Err()
			}
			if err := verifyBlock(blk.Cid(), blk.RawData()); err != nil {
				s.m.badBlocks.Inc()
				continue
			}
			if err := s.bs.Put(ctx, blk); err != nil {
				return values(left), err
			}
			delete(left, key(blk.Cid()))
			s.m.fetchedBlocks.WithLabelValues("bitswap").Inc()
			s.m.fetchedBytes.WithLabelValues("bitswap").Add(float64(len(blk.RawData())))
			if err := onBlock(blk); err != nil {
				return values(left), err
			}
			timer.Reset(s.cfg.FetchTimeout)
		case <-timer.C:
			return values(left), nil
		case <-ctx.Done():
			return values(left), ctx.Err()
		}
	}
	return nil, nil
}

func values(m map[string]cid.Cid) []cid.Cid {
	out := make([]cid.Cid, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	return out
}

// holderExchange is the exchange of one Open or export: blocks come from its holders
// first, then bitswap.
type holderExchange struct {
	s       *Store
	holders []peer.ID
}

func (x *holderExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	var got blocks.Block
	err := x.s.fetchMissing(ctx, []cid.Cid{c}, x.holders, func(b blocks.Block) error {
		got = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return got, nil
}

func (x *holderExchange) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	out := make(chan blocks.Block, len(cs))
	if !x.s.goRun(func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(x.s.ctx, cancel)
		defer stop()
		err := x.s.fetchMissing(ctx, cs, x.holders, func(b blocks.Block) error {
			out <- b // buffered for every CID
			return nil
		})
		if err != nil && ctx.Err() == nil {
			x.s.log.Debug("dfs content: fetch failed", "blocks", len(cs), "err", err)
		}
	}) {
		close(out)
		return out, ErrClosed
	}
	return out, nil
}

func (x *holderExchange) NotifyNewBlocks(ctx context.Context, blks ...blocks.Block) error {
	if x.s.bsw != nil {
		return x.s.bsw.NotifyNewBlocks(ctx, blks...)
	}
	return nil
}

func (x *holderExchange) Close() error { return nil }
