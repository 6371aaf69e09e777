// Package events is the node's event bus: every feature publishes what happened (members
// joining and dying, instances changing status, messages), and the API streams it to
// clients (GET /v1/events). A short history lets a client that reconnects with
// Last-Event-ID miss nothing recent.
package events

import (
	"strconv"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
)

// Bus fans events out to subscribers and keeps a short history so a client that
// reconnects with Last-Event-ID misses nothing recent.
type Bus struct {
	mu      sync.Mutex // guards the following fields
	seq     uint64
	history []api.Event // ring of the last historySize events, oldest first
	subs    map[chan api.Event]struct{}
}

const (
	historySize   = 1024
	subBufferSize = 256
)

// New returns an empty bus.
func New() *Bus { return &Bus{subs: map[chan api.Event]struct{}{}} }

// Publish stamps e and delivers it to every subscriber. A subscriber whose buffer is full
// loses the event rather than stalling the node; it can notice from the gap in Seq.
func (b *Bus) Publish(e api.Event) api.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b.history = append(b.history, e)
	if len(b.history) > historySize {
		b.history = append(b.history[:0:0], b.history[len(b.history)-historySize:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
	return e
}

// Subscribe returns a channel of new events and a cancel func; with replay, the retained
// events after seq `after` come first (after 0: all retained events).
func (b *Bus) Subscribe(after uint64, replay bool) (<-chan api.Event, func()) {
	ch := make(chan api.Event, subBufferSize+historySize)
	b.mu.Lock()
	for _, e := range b.history {
		if replay && e.Seq > after {
			ch <- e
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
		})
	}
}

// ParseSeq reads an event sequence number (0 when s is not one).
func ParseSeq(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
