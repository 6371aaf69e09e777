package p2p

// State replication: deltas batched onto the cluster's gossipsub topic, and push-pull
// anti-entropy over a stream.
//
// Anti-entropy exchange (protocol /constellation/<hash>/sync/1.0.0), A initiates:
//
//   A -> B  frame(sha256(VersionA))
//   B -> A  frame(0x00)                      versions equal: done
//        or frame(0x01 || VersionB)
//   A -> B  frame(VersionA) frame(A.MissingFor(VersionB))   then A closes its write side
//   B -> A  frame(B.MissingFor(VersionA))                   then B closes
//   both Apply what they received (empty frame: nothing).
//
// An idle pair therefore exchanges ~40 bytes of payload per interval. What an exchange
// brings in is relayed on gossip when small (see applySynced).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const maxVersionBytes = 16 << 20

// Publish queues an encoded delta for gossip and returns at once. Deltas published
// within GossipBatch travel in one message; a delta larger than MaxGossipBytes is not
// gossiped: a small "pull from me" notice is, and receivers fetch it by anti-entropy
// (so the Replica's MissingFor must already include it when Publish is called).
func (h *Host) Publish(delta []byte) { h.pub.add(delta) }

type publisher struct {
	h    *Host
	wake chan struct{} // capacity 1

	mu     sync.Mutex // guards the following fields
	deltas [][]byte
	size   int
	pull   bool
}

func (p *publisher) init(h *Host) {
	p.h = h
	p.wake = make(chan struct{}, 1)
}

// maxPendingMessages bounds the publish buffer, in messages of MaxGossipBytes.
const maxPendingMessages = 64

// perDeltaOverhead bounds the CBOR framing added per delta; msgOverhead the rest.
const (
	perDeltaOverhead = 9
	msgOverhead      = 16
)

func (p *publisher) add(delta []byte) {
	if len(delta) == 0 {
		return
	}
	p.mu.Lock()
	switch {
	case len(delta)+perDeltaOverhead+msgOverhead > p.h.cfg.MaxGossipBytes:
		p.pull = true
	case p.size > maxPendingMessages*p.h.cfg.MaxGossipBytes:
		// The flusher is not keeping up (or the host is closed): stop buffering and
		// let receivers pull everything by anti-entropy instead.
		p.pull = true
		p.deltas, p.size = nil, 0
	default:
		p.deltas = append(p.deltas, bytes.Clone(delta))
		p.size += len(delta) + perDeltaOverhead
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size+msgOverhead >= p.h.cfg.MaxGossipBytes
}

func (p *publisher) run() {
	h := p.h
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-p.wake:
		}
		if h.cfg.GossipBatch > 0 && !p.full() {
			t := time.NewTimer(h.cfg.GossipBatch)
			select {
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		p.mu.Lock()
		deltas, pull := p.deltas, p.pull
		p.deltas, p.size, p.pull = nil, 0, false
		p.mu.Unlock()
		for _, msg := range splitGossip(deltas, h.cfg.MaxGossipBytes) {
			h.publishRaw(msg)
		}
		if pull {
			h.publishRaw(encodeGossip(gossipMsg{Kind: gossipPull}))
		}
	}
}

// splitGossip packs deltas, in order, into encoded messages of at most max bytes.
func splitGossip(deltas [][]byte, max int) [][]byte {
	var out [][]byte
	var cur [][]byte
	size := msgOverhead
	for _, d := range deltas {
		n := len(d) + perDeltaOverhead
		if len(cur) > 0 && (size+n > max || len(cur) >= maxGossipDeltas) {
			out = append(out, encodeGossip(gossipMsg{Kind: gossipDeltas, Deltas: cur}))
			cur, size = nil, msgOverhead
		}
		cur = append(cur, d)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, encodeGossip(gossipMsg{Kind: gossipDeltas, Deltas: cur}))
	}
	return out
}

func (h *Host) publishRaw(b []byte) {
	if h.topic == nil {
		return
	}
	if err := h.topic.Publish(h.ctx, b); err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("gossip publish failed", "err", err)
		}
		return
	}
	h.stats.gossipSent.Add(1)
}

func (h *Host) startPubsub() error {
	maxMsg := 2*h.cfg.MaxGossipBytes + 64<<10
	if maxMsg < pubsub.DefaultMaxMessageSize {
		maxMsg = pubsub.DefaultMaxMessageSize
	}
	ps, err := pubsub.NewGossipSub(h.ctx, h.mh,
		pubsub.WithMaxMessageSize(maxMsg),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
	)
	if err != nil {
		return fmt.Errorf("p2p: gossipsub: %w", err)
	}
	self := h.ID()
	err = ps.RegisterTopicValidator(h.topicName, func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if from != self && !h.IsAdmitted(from) {
			return pubsub.ValidationReject
		}
		if _, err := decodeGossip(m.GetData(), h.cfg.MaxGossipBytes); err != nil {
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	})
	if err != nil {
		return fmt.Errorf("p2p: topic validator: %w", err)
	}
	topic, err := ps.Join(h.topicName)
	if err != nil {
		return fmt.Errorf("p2p: join topic: %w", err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return fmt.Errorf("p2p: subscribe: %w", err)
	}
	h.ps, h.topic = ps, topic
	h.goRun(func() {
		defer sub.Cancel()
		for {
			m, err := sub.Next(h.ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom == self {
				continue
			}
			h.handleGossip(m)
		}
	})
	return nil
}

func (h *Host) handleGossip(m *pubsub.Message) {
	author := m.GetFrom()
	h.stats.gossipReceived.Add(1)
	g, err := decodeGossip(m.GetData(), h.cfg.MaxGossipBytes)
	if err != nil {
		return // the validator already rejected it
	}
	switch g.Kind {
	case gossipPull:
		h.requestSync(author)
	case gossipDeltas:
		r := h.getReplica()
		if r == nil {
			return
		}
		apply := r.Apply
		if ga, ok := r.(GossipReplica); ok {
			apply = ga.ApplyGossip
		}
		for _, d := range g.Deltas {
			if err := apply(author, d); err != nil {
				h.log.Warn("apply gossiped delta failed", "from", author, "err", err)
			}
		}
	}
}

// antiEntropyLoop runs one exchange with a random admitted peer every
// AntiEntropyInterval (±20% jitter so nodes do not synchronise).
func (h *Host) antiEntropyLoop() {
	if h.cfg.AntiEntropyInterval == 0 {
		return
	}
	for {
		d := time.Duration(float64(h.cfg.AntiEntropyInterval) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-h.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if p := h.randomAdmitted(); p != "" && h.getReplica() != nil {
			h.requestSync(p)
		}
	}
}

// requestSync runs an exchange with p in the background, coalescing requests that
// arrive while one is running into one more exchange.
func (h *Host) requestSync(p peer.ID) {
	if h.getReplica() == nil {
		return
	}
	h.mu.Lock()
	if h.syncing[p] {
		h.syncAgain[p] = true
		h.mu.Unlock()
		return
	}
	h.syncing[p] = true
	h.mu.Unlock()
	ok := h.goRun(func() {
		for {
			ctx, cancel := context.WithTimeout(h.ctx, h.cfg.SyncTimeout)
			err := h.SyncWith(ctx, p)
			cancel()
			if err != nil && h.ctx.Err() == nil {
				h.log.Debug("anti-entropy failed", "peer", p, "err", err)
			}
			h.mu.Lock()
			if h.syncAgain[p] && h.ctx.Err() == nil {
				delete(h.syncAgain, p)
				h.mu.Unlock()
				continue
			}
			delete(h.syncing, p)
			delete(h.syncAgain, p)
			h.mu.Unlock()
			return
		}
	})
	if !ok {
		h.mu.Lock()
		delete(h.syncing, p)
		h.mu.Unlock()
	}
}

// SyncWith runs one push-pull anti-entropy exchange with p (connecting and waiting
// for admission if needed). Without a Replica it does nothing.
func (h *Host) SyncWith(ctx context.Context, p peer.ID) error {
	r := h.getReplica()
	if r == nil {
		return nil
	}
	if err := h.ensureAdmitted(ctx, p); err != nil {
		return err
	}
	s, err := h.h.NewStream(memberCtx(ctx), p, h.protoSync)
	if err != nil {
		return fmt.Errorf("p2p: sync with %s: %w", p, err)
	}
	if err := h.syncInitiator(ctx, s, r, p); err != nil {
		s.Reset()
		h.stats.syncFailures.Add(1)
		return fmt.Errorf("p2p: sync with %s: %w", p, err)
	}
	s.Close()
	h.stats.syncs.Add(1)
	return nil
}

func (h *Host) streamDeadline(ctx context.Context, s network.Stream) {
	dl := h.now().Add(h.cfg.SyncTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s.SetDeadline(dl)
}

func (h *Host) syncInitiator(ctx context.Context, s network.Stream, r Replica, p peer.ID) error {
	h.streamDeadline(ctx, s)
	br := bufio.NewReader(s)
	va := r.Version()
	dg := sha256.Sum256(va)
	if err := writeFrame(s, dg[:]); err != nil {
		return err
	}
	resp, err := readFrame(br, min(h.cfg.MaxSyncBytes, maxVersionBytes)+1)
	if err != nil {
		return err
	}
	if len(resp) == 0 || resp[0] > 1 {
		return fmt.Errorf("%w: sync status", ErrMalformed)
	}
	if resp[0] == 0 {
		return nil // equal versions
	}
	mine, err := r.MissingFor(resp[1:])
	if err != nil {
		return fmt.Errorf("missing-for: %w", err)
	}
	bw := bufio.NewWriterSize(s, 64<<10)
	if err := writeFrame(bw, va); err != nil {
		return err
	}
	if err := writeFrame(bw, mine); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	s.CloseWrite()
	theirs, err := readFrame(br, h.cfg.MaxSyncBytes)
	if err != nil {
		return err
	}
	return h.applySynced(r, p, theirs)
}

// applySynced applies what an anti-entropy exchange brought in and relays it on gossip
// when it is small: whatever this node lacked, others probably lack too (a new node's
// own records after its bootstrap, the other side's writes after a partition heals).
// Large ones are not relayed; anti-entropy spreads them.
func (h *Host) applySynced(r Replica, p peer.ID, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if err := r.Apply(p, data); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if len(data)+perDeltaOverhead+msgOverhead <= h.cfg.MaxGossipBytes {
		h.pub.add(data)
	}
	return nil
}

func (h *Host) handleSync(s network.Stream) {
	p := s.Conn().RemotePeer()
	r := h.getReplica()
	if r == nil {
		s.Reset()
		return
	}
	if err := h.syncResponder(s, r, p); err != nil {
		h.log.Debug("anti-entropy (responder) failed", "peer", p, "err", err)
		h.stats.syncFailures.Add(1)
		s.Reset()
		return
	}
	s.Close()
	h.stats.syncs.Add(1)
}

func (h *Host) syncResponder(s network.Stream, r Replica, p peer.ID) error {
	h.streamDeadline(context.Background(), s)
	br := bufio.NewReader(s)
	dg, err := readFrame(br, sha256.Size)
	if err != nil {
		return err
	}
	if len(dg) != sha256.Size {
		return fmt.Errorf("%w: sync digest", ErrMalformed)
	}
	vb := r.Version()
	mine := sha256.Sum256(vb)
	if bytes.Equal(mine[:], dg) {
		return writeFrame(s, []byte{0})
	}
	if err := writeFrame(s, append([]byte{1}, vb...)); err != nil {
		return err
	}
	va, err := readFrame(br, min(h.cfg.MaxSyncBytes, maxVersionBytes))
	if err != nil {
		return err
	}
	theirs, err := readFrame(br, h.cfg.MaxSyncBytes)
	if err != nil {
		return err
	}
	missing, err := r.MissingFor(va)
	if err != nil {
		return fmt.Errorf("missing-for: %w", err)
	}
	bw := bufio.NewWriterSize(s, 64<<10)
	if err := writeFrame(bw, missing); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	s.CloseWrite()
	return h.applySynced(r, p, theirs)
}
