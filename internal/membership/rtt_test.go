package membership

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The RTT table in the record keeps a value until the measurement moves by more than
// rttHysteresis (jitter does not rewrite the record), drops members no longer measured,
// and records a sub-microsecond RTT as 1 µs (0 would read as "not measured").
func TestRTTTableHysteresis(t *testing.T) {
	p, q := peer.ID("p"), peer.ID("q")
	m := map[peer.ID]time.Duration{p: 10 * time.Millisecond, q: 200 * time.Nanosecond}
	s := &Service{cfg: Config{RTT: func() map[peer.ID]time.Duration { return m }}}
	got := s.rttTable()
	if got[p.String()] != 10000 || got[q.String()] != 1 {
		t.Fatalf("first table %v; want p 10000 µs, q 1 µs", got)
	}
	m[p] = 12 * time.Millisecond // +20%: kept
	if got := s.rttTable(); got[p.String()] != 10000 {
		t.Errorf("after +20%%: %v; want p still 10000", got)
	}
	m[p] = 14 * time.Millisecond // +40% of the published value: updated
	if got := s.rttTable(); got[p.String()] != 14000 {
		t.Errorf("after +40%%: %v; want p 14000", got)
	}
	delete(m, q)
	if got := s.rttTable(); len(got) != 1 {
		t.Errorf("after q left: %v; want only p", got)
	}
	s.cfg.RTT = nil
	if got := s.rttTable(); got != nil {
		t.Errorf("without an RTT source: %v; want nil", got)
	}
}
