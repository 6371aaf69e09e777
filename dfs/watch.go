package dfs

import (
	"fmt"
	"sync"

	"github.com/rads-lang/constellation/api"
)

// watchBuffer is how many events a watcher may lag before it is ended.
const watchBuffer = 1024

// subscriber is one watcher of a path or prefix.
type subscriber struct {
	prefix string
	ch     chan api.FSEvent
	once   sync.Once
	lagged bool // ended because it fell behind (set before ch closes)
}

func (sub *subscriber) end() { sub.once.Do(func() { close(sub.ch) }) }

// Watch follows the changes of a file or of every file under a prefix, as this node
// derives them from the namespace (local writes and remote deltas alike): each change of
// a visible name once, in HLC order per path. The channel closes when cancel is called,
// the service closes, or the watcher falls more than 1024 events behind (Lagged says so).
func (s *Service) Watch(pathOrPrefix string) (events <-chan api.FSEvent, lagged func() bool, cancel func(), err error) {
	prefix, err := CleanPrefix(pathOrPrefix)
	if err != nil {
		return nil, nil, nil, err
	}
	sub := &subscriber{prefix: prefix, ch: make(chan api.FSEvent, watchBuffer)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, nil, fmt.Errorf("%w", ErrClosed)
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	cancel = func() {
		s.mu.Lock()
		delete(s.subs, sub)
		sub.end()
		s.mu.Unlock()
	}
	lagged = func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return sub.lagged
	}
	return sub.ch, lagged, cancel, nil
}

// emitLocked hands events to the watchers (s.mu held: one order for all).
func (s *Service) emitLocked(evs []api.FSEvent) {
	for sub := range s.subs {
		for _, e := range evs {
			if e.Path != sub.prefix && !underPrefix(e.Path, sub.prefix) {
				continue
			}
			select {
			case sub.ch <- e:
			default:
				sub.lagged = true
				delete(s.subs, sub)
				sub.end()
				s.met.watchDropped.Inc()
			}
			if sub.lagged {
				break
			}
		}
	}
}
