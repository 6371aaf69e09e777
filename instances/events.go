package instances

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
)

// instanceEvents de-duplicates status changes into events.
type instanceEvents struct {
	mu   sync.Mutex        // guards last
	last map[string]Record // name -> last record an event was published for
}

func (e *instanceEvents) key(r Record) string {
	return r.ID + "/" + r.Status + "/" + strconv.Itoa(r.Restarts)
}

// note publishes an event when r differs (id, status, restarts) from the last one seen.
func (m *Service) noteRecord(r Record) {
	e := &m.events
	e.mu.Lock()
	if e.last == nil {
		e.last = map[string]Record{}
	}
	old, had := e.last[r.Name]
	if had && e.key(old) == e.key(r) {
		e.mu.Unlock()
		return
	}
	e.last[r.Name] = r
	e.mu.Unlock()
	m.publishInstanceEvent(r, r.Status)
}

// noteRemoved publishes a "removed" event for an instance seen before.
func (m *Service) noteRemoved(name string) {
	e := &m.events
	e.mu.Lock()
	old, had := e.last[name]
	delete(e.last, name)
	e.mu.Unlock()
	if had {
		m.publishInstanceEvent(old, "removed")
	}
}

func (m *Service) publishInstanceEvent(r Record, status string) {
	b, _ := json.Marshal(api.InstanceEvent{Name: r.Name, ID: r.ID, Status: status, ExitCode: r.ExitCode,
		ExitReason: r.ExitReason, Restarts: r.Restarts})
	m.bus.Publish(api.Event{Type: api.EventInstance, Node: &api.EventNode{Name: r.Node, ID: r.NodeID}, Data: b})
}

// noteChangeLocked turns a replicated change of an instance record into an event (n.mu held).
func (m *Service) noteChange(c crdt.Change) {
	v, ok := m.get(Coll, c.Key)
	if !ok {
		m.noteRemoved(c.Key)
		return
	}
	if r, err := DecodeRecord(v); err == nil {
		m.noteRecord(r)
	}
}
