package node

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// Event types streamed by GET /v1/events and `constellation events`.
const (
	EventNodeJoin    = "node_join"    // a node became alive (first seen, or back after dead/left)
	EventNodeLeave   = "node_leave"   // a node left gracefully
	EventNodeSuspect = "node_suspect" // a node stopped answering probes; may still be alive
	EventNodeDead    = "node_dead"    // a node was confirmed dead by the failure detector
	EventNodeAlive   = "node_alive"   // a suspect node answered again (refuted the suspicion)
	EventMessage     = "message"      // a message sent with `constellation send` or `broadcast`
)

// Event is one entry of the node's event stream.
type Event struct {
	Seq  uint64          `json:"seq"` // per-node, increasing; SSE id
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Node *EventNode      `json:"node,omitempty"`    // the node the event is about
	Msg  *MessageEvent   `json:"message,omitempty"` // for "message"
	Data json.RawMessage `json:"data,omitempty"`
}

// EventNode names the node an event is about.
type EventNode struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// MessageEvent is a message delivered to this node.
type MessageEvent struct {
	ID       string          `json:"id"` // unique per send; receivers de-duplicate on it
	Type     string          `json:"type"`
	From     string          `json:"from"` // sender's peer ID
	FromName string          `json:"from_name,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// eventBus fans events out to subscribers and keeps a short history so a client that
// reconnects with Last-Event-ID misses nothing recent.
type eventBus struct {
	mu      sync.Mutex // guards the following fields
	seq     uint64
	history []Event // ring of the last historySize events, oldest first
	subs    map[chan Event]struct{}
}

const (
	historySize   = 1024
	subBufferSize = 256
)

func newEventBus() *eventBus { return &eventBus{subs: map[chan Event]struct{}{}} }

// publish stamps e and delivers it to every subscriber. A subscriber whose buffer is full
// loses the event rather than stalling the node; it can notice from the gap in Seq.
func (b *eventBus) publish(e Event) Event {
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

// subscribe returns a channel of new events and a cancel func; with replay, the retained
// events after seq `after` come first (after 0: all retained events).
func (b *eventBus) subscribe(after uint64, replay bool) (<-chan Event, func()) {
	ch := make(chan Event, subBufferSize+historySize)
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

func parseSeq(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
