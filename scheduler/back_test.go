package scheduler

import (
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// TestBackFromDead: a node judged dead that has restarted since it was last seen counts as
// back for a while; one that restarted long ago (and died again) or never restarted does not.
func TestBackFromDead(t *testing.T) {
	now := time.Unix(1000, 0)
	seen := now.Add(-20 * time.Second)
	for _, c := range []struct {
		name string
		x    api.NodeInfo
		back bool
	}{
		{"restarted 1 s ago", api.NodeInfo{Status: api.StatusDead, LastSeen: seen, StartedAt: now.Add(-time.Second)}, true},
		{"restarted before it was last seen", api.NodeInfo{Status: api.StatusDead, LastSeen: seen, StartedAt: seen.Add(-time.Minute)}, false},
		{"restarted 30 s ago, still dead", api.NodeInfo{Status: api.StatusDead, LastSeen: now.Add(-time.Minute), StartedAt: now.Add(-30 * time.Second)}, false},
		{"alive", api.NodeInfo{Status: api.StatusAlive, LastSeen: now, StartedAt: now.Add(-time.Second)}, false},
		{"left", api.NodeInfo{Status: api.StatusLeft, LastSeen: seen, StartedAt: now.Add(-time.Second)}, false},
	} {
		if got := backFromDead(c.x, now); got != c.back {
			t.Errorf("%s: backFromDead = %v; want %v", c.name, got, c.back)
		}
	}
}
