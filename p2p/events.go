package p2p

import "sync"

// eventQueue runs callbacks one at a time, in push order, on one goroutine, so user
// callbacks never block network notifications and never run concurrently.
type eventQueue struct {
	mu     sync.Mutex // guards the following fields
	q      []func()
	closed bool
	wake   chan struct{} // capacity 1: "the queue may be non-empty or closed"
}

func (e *eventQueue) init() { e.wake = make(chan struct{}, 1) }

func (e *eventQueue) push(f func()) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.q = append(e.q, f)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) close() {
	e.mu.Lock()
	e.closed = true
	e.q = nil
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// run executes callbacks until close.
func (e *eventQueue) run() {
	for range e.wake {
		for {
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				return
			}
			if len(e.q) == 0 {
				e.mu.Unlock()
				break
			}
			f := e.q[0]
			e.q[0] = nil
			e.q = e.q[1:]
			e.mu.Unlock()
			f()
		}
	}
}
