package p2p

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestJoinTwoHosts(t *testing.T) {
	for _, withID := range []bool{true, false} {
		t.Run(fmt.Sprintf("withID=%v", withID), func(t *testing.T) {
			ra, rb := newMapReplica(), newMapReplica()
			ra.Set("a", "1")
			rb.Set("b", "2")
			a := startHost(t, fastConfig(t), ra)
			cfg := fastConfig(t)
			cfg.Join = []JoinAddr{joinOf(t, a, withID)}
			b := startHost(t, cfg, rb)
			eventually(t, 10*time.Second, "mutual admission", func() bool { return admittedAll([]*Host{a, b}) })
			// Bootstrap sync after admission converges both states.
			eventually(t, 10*time.Second, "bootstrap sync", func() bool {
				_, okA := ra.Get("b")
				_, okB := rb.Get("a")
				return okA && okB
			})
		})
	}
}

func TestSeveralHostsJoinAndGossip(t *testing.T) {
	const n = 5
	var hs []*Host
	var rs []*mapReplica
	for i := 0; i < n; i++ {
		cfg := fastConfig(t)
		cfg.AntiEntropyInterval = time.Hour // gossip only
		if i > 0 {
			cfg.Join = []JoinAddr{joinOf(t, hs[0], i%2 == 0)}
		}
		r := newMapReplica()
		hs = append(hs, startHost(t, cfg, r))
		rs = append(rs, r)
	}
	// Everyone joined host 0 only; the DHT finds the rest.
	eventually(t, 30*time.Second, "full mesh admission", func() bool { return admittedAll(hs) })
	time.Sleep(500 * time.Millisecond) // let gossipsub meshes form after identify
	for i, h := range hs {
		h.Publish(rs[i].Set(fmt.Sprintf("k%d", i), "v"))
	}
	eventually(t, 10*time.Second, "gossip convergence", func() bool {
		for _, r := range rs {
			if r.Len() != n {
				return false
			}
		}
		return true
	})
	_ = slices.Contains[[]int]
	_ = context.Background
}
