package locks

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVoterReplacement: a dead voter is replaced by the non-voter after the grace and locks
// keep working; with a majority of voters dead the service answers "unavailable" naming
// them, and works again once they are back.
func TestVoterReplacement(t *testing.T) {
	cfg := testConfig()
	cfg.Grace = 300 * time.Millisecond
	c := newCluster(t, 4, cfg)
	voters := c.waitVoters(3, 10*time.Second)
	leader := c.leader(5 * time.Second)
	var victim string
	for _, v := range voters {
		if v != leader {
			victim = v
			break
		}
	}
	c.kill(victim)
	deadline := time.Now().Add(10 * time.Second)
	var now []string
	for time.Now().Before(deadline) {
		if l := c.leader(5 * time.Second); l != "" {
			now = c.svc(l).Status().Voters
			if len(now) == 3 && !slices.Contains(now, victim) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(now) != 3 || slices.Contains(now, victim) {
		t.Fatalf("voters %v: %s (dead) was not replaced", now, victim)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := c.svc(now[0]).Acquire(ctx, "/after/replacement", "x", time.Second, false)
	if err != nil {
		t.Fatalf("acquire after the replacement: %v", err)
	}
	if err := c.svc(now[1]).Release(ctx, "/after/replacement", l.Token); err != nil {
		t.Fatal(err)
	}

	// Kill two of the three voters: no quorum.
	survivor := now[2]
	c.kill(now[0])
	c.kill(now[1])
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = c.svc(survivor).Acquire(sctx, "/no/quorum", "x", time.Second, false)
	scancel()
	if !IsCode(err, "unavailable") || !strings.Contains(err.Error(), now[0]) || !strings.Contains(err.Error(), now[1]) {
		t.Fatalf("acquire without a quorum: %v, want unavailable naming %s and %s", err, now[0], now[1])
	}
	// Heal: they come back on their stores and the group serves again.
	c.start(now[0])
	c.start(now[1])
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	l2, err := c.svc(survivor).Acquire(hctx, "/no/quorum", "x", time.Second, false)
	if err != nil || l2.Token <= l.Token {
		t.Fatalf("acquire after heal: %+v %v", l2, err)
	}
}
