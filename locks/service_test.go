package locks

import (
	"context"
	"testing"
	"time"
)

func TestSingleNodeLocks(t *testing.T) {
	c := newCluster(t, 1, testConfig())
	if c.leader(5*time.Second) == "" {
		t.Fatal("one node did not bootstrap itself")
	}
	s := c.svc("node-1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := s.Acquire(ctx, "/cluster/critical", "a", time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "/cluster/critical", "b", time.Second, false); !IsCode(err, "held") {
		t.Fatalf("second holder: %v, want held", err)
	}
	if _, err := s.Renew(ctx, "/cluster/critical", l.Token+1); !IsCode(err, "not_held") {
		t.Fatalf("renew with a wrong token: %v, want not_held", err)
	}
	if _, err := s.Renew(ctx, "/cluster/critical", l.Token); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "/cluster/critical", l.Token); err != nil {
		t.Fatal(err)
	}
	l2, err := s.Acquire(ctx, "/cluster/critical", "b", time.Second, false)
	if err != nil || l2.Token <= l.Token {
		t.Fatalf("after release: %+v %v (want a token above %d)", l2, err, l.Token)
	}
	// Expiry then lock-delay: a waiting acquire gets it after TTL + delay.
	start := time.Now()
	l3, err := s.Acquire(ctx, "/cluster/critical", "c", time.Second, true)
	if err != nil || l3.Token <= l2.Token {
		t.Fatalf("after expiry: %+v %v", l3, err)
	}
	if d := time.Since(start); d < time.Second+c.cfg.LockDelay-50*time.Millisecond {
		t.Fatalf("re-granted after %s, before TTL %s + lock-delay %s", d, time.Second, c.cfg.LockDelay)
	}
	// CAS and Get.
	rev, err := s.CAS(ctx, "/data/x#version", 0, []byte("v1"), l3.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CAS(ctx, "/data/x#version", 0, []byte("v2"), l3.Token); !IsCode(err, "conflict") {
		t.Fatalf("CAS on a wrong revision: %v, want conflict", err)
	}
	if _, err := s.CAS(ctx, "/data/x#version", rev, []byte("v2"), l3.Token-1); !IsCode(err, "stale_token") {
		t.Fatalf("CAS with an older token: %v, want stale_token", err)
	}
	rev2, err := s.CAS(ctx, "/data/x#version", rev, []byte("v2"), l3.Token)
	if err != nil || rev2 <= rev {
		t.Fatalf("CAS: %d %v", rev2, err)
	}
	v, r, err := s.Get(ctx, "/data/x#version")
	if err != nil || string(v) != "v2" || r != rev2 {
		t.Fatalf("Get: %q %d %v", v, r, err)
	}
	ls, err := s.List(ctx)
	if err != nil || len(ls) != 1 || ls[0].Holder != "c" {
		t.Fatalf("List: %+v %v", ls, err)
	}
	if _, err := s.Acquire(ctx, "relative/path", "a", time.Second, false); !IsCode(err, "bad_request") {
		t.Fatalf("relative path: %v, want bad_request", err)
	}
}

func TestThreeNodesForwardAndFailover(t *testing.T) {
	c := newCluster(t, 3, testConfig())
	voters := c.waitVoters(3, 10*time.Second)
	if len(voters) != 3 {
		t.Fatalf("voters %v", voters)
	}
	leader := c.leader(5 * time.Second)
	var follower string
	for _, id := range c.ids {
		if id != leader {
			follower = id
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.svc(follower).Acquire(ctx, "/a", "x", 500*time.Millisecond, false)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(leader)
	// The new leader keeps the lease at least a TTL from its takeover, then expires it.
	l2, err := c.svc(follower).Acquire(ctx, "/a", "y", time.Second, true)
	if err != nil || l2.Token <= l.Token {
		t.Fatalf("after failover: %+v %v", l2, err)
	}
}
