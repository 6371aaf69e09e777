package p2p

// Messages for `constellation send/broadcast`: at-least-once delivery with an ID, over
// the Service "msg/2.0.0". The sender calls once per attempt: one request frame (CBOR
// wireMessage), one response frame (a one-byte ack); it retries with backoff until acked
// or ctx ends. The receiver remembers (sender, ID) for MessageDedupeWindow and hands
// each to OnMessage once.

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	ackOK       byte = 0
	ackRejected byte = 1 // malformed or too large: retrying cannot help

	msgService        = "msg/2.0.0" // 1.0.0 sent a raw ack byte
	msgAttemptTimeout = 5 * time.Second
	msgBackoffMin     = 100 * time.Millisecond
	msgBackoffMax     = 2 * time.Second
)

// ErrRejected means the receiver refused a message permanently (malformed, too large).
var ErrRejected = errors.New("p2p: message rejected by receiver")

func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Send delivers one message to peer to at least once: it retries with backoff until
// the receiver acknowledges or ctx ends (give ctx a deadline). The receiver's
// OnMessage sees it once. It returns the message ID even on error.
func (h *Host) Send(ctx context.Context, to peer.ID, typ string, data []byte) (string, error) {
	id := newMessageID()
	return id, h.sendWithID(ctx, to, wireMessage{ID: id, Type: typ, Data: data, At: h.now().UnixNano()})
}

// Broadcast sends one message (one ID) to every admitted peer, each with Send's
// guarantees, and waits for all. The local node is not a target. The error joins the
// per-peer failures.
func (h *Host) Broadcast(ctx context.Context, typ string, data []byte) (string, error) {
	id := newMessageID()
	m := wireMessage{ID: id, Type: typ, Data: data, At: h.now().UnixNano()}
	peers := h.Admitted()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { errs[i] = h.sendWithID(ctx, p, m) })
	}
	wg.Wait()
	return id, errors.Join(errs...)
}

func (h *Host) sendWithID(ctx context.Context, to peer.ID, m wireMessage) error {
	if len(m.Type) > maxMessageTypeLen {
		return fmt.Errorf("%w: type longer than %d bytes", ErrTooLarge, maxMessageTypeLen)
	}
	body := encodeMessage(m)
	if len(body) > h.cfg.MaxMessageBytes {
		return fmt.Errorf("%w: message of %d bytes (limit %d)", ErrTooLarge, len(body), h.cfg.MaxMessageBytes)
	}
	backoff := msgBackoffMin
	for {
		err := h.sendAttempt(ctx, to, body)
		if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrClosed) {
			return err
		}
		h.log.Debug("message send attempt failed; retrying", "to", to, "id", m.ID, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("p2p: send %s to %s: %w (last error: %v)", m.ID, to, ctx.Err(), err)
		case <-h.ctx.Done():
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, msgBackoffMax)
	}
}

func (h *Host) sendAttempt(ctx context.Context, to peer.ID, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, msgAttemptTimeout)
	defer cancel()
	if err := h.ensureAdmitted(ctx, to); err != nil {
		return err
	}
	ack, err := h.msgSvc.Call(ctx, to, body)
	if err != nil {
		return err
	}
	switch {
	case len(ack) != 1:
		return fmt.Errorf("%w: message ack of %d bytes", ErrMalformed, len(ack))
	case ack[0] == ackRejected:
		return ErrRejected
	case ack[0] != ackOK:
		return fmt.Errorf("%w: message ack %d", ErrMalformed, ack[0])
	}
	return nil
}

// errAckDropped resets a message stream instead of acking it (tests).
var errAckDropped = errors.New("p2p: test: ack dropped")

func (h *Host) handleMessage(_ context.Context, s *Stream) error {
	from := s.Peer()
	b, err := s.ReadFrame()
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return s.WriteFrame([]byte{ackRejected})
		}
		return err
	}
	m, err := decodeMessage(b, h.cfg.MaxMessageBytes)
	if err != nil {
		return s.WriteFrame([]byte{ackRejected})
	}
	if h.dedup.firstSeen(from.String()+"/"+m.ID, h.now()) {
		if cb := h.cfg.OnMessage; cb != nil {
			cb(Message{ID: m.ID, Type: m.Type, From: from, Data: m.Data, At: m.time()})
		}
	}
	if h.testDropAcks.Load() > 0 && h.testDropAcks.Add(-1) >= 0 {
		return errAckDropped // simulate a lost ack
	}
	return s.WriteFrame([]byte{ackOK})
}

// dedupe remembers keys for a window, bounded in count (oldest evicted first).
type dedupe struct {
	window time.Duration
	max    int

	mu    sync.Mutex // guards the following fields
	seen  map[string]*list.Element
	order *list.List // of dedupeEntry, oldest first
}

type dedupeEntry struct {
	key string
	at  time.Time
}

func newDedupe(window time.Duration, max int) *dedupe {
	return &dedupe{window: window, max: max, seen: map[string]*list.Element{}, order: list.New()}
}

// firstSeen records key and reports whether it was new.
func (d *dedupe) firstSeen(key string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for e := d.order.Front(); e != nil; e = d.order.Front() {
		ent := e.Value.(dedupeEntry)
		if now.Sub(ent.at) <= d.window && d.order.Len() < d.max {
			break
		}
		d.order.Remove(e)
		delete(d.seen, ent.key)
	}
	if _, ok := d.seen[key]; ok {
		return false
	}
	d.seen[key] = d.order.PushBack(dedupeEntry{key, now})
	return true
}
