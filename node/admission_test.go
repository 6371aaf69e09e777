package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestOutsidersExcluded: a node with the wrong key, another cluster's name, or no key
// against a keyed cluster never appears in the members' `nodes`, receives no state (its
// document holds only its own record), and both sides log a clear line.
func TestOutsidersExcluded(t *testing.T) {
	tests := []struct {
		name    string
		cluster string
		key     string
		reason  string // in the log line of both sides
	}{
		{"wrong key", "test", "other-secret", "wrong cluster key"},
		{"other cluster", "other", "secret", "wrong cluster name"},
		{"keyless", "test", "", "wrong cluster key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := startCluster(t, 2, func(_ int, c *Config) { c.ClusterKey = "secret" })
			testutil.WaitFor(t, 20*time.Second, "members converge", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
			if err := ns[0].PutState("test", map[string][]byte{"secret-data": []byte("x")}); err != nil {
				t.Fatal(err)
			}
			cfg := nodeConfig(t, "intruder")
			cfg.Cluster, cfg.ClusterKey = tt.cluster, tt.key
			cfg.Join = []string{joinAddr(t, ns[0].Node), joinAddr(t, ns[1].Node)}
			x := startTestNode(t, cfg)
			xid := x.ID().String()

			testutil.WaitFor(t, 15*time.Second, "the rejection logged on both sides", func() (bool, string) {
				member := ns[0].log.contains("failed cluster admission") && ns[0].log.contains(xid)
				intruder := x.log.contains("failed cluster admission") && x.log.contains(tt.reason)
				return member && intruder, fmt.Sprintf("member logged: %v, intruder logged %q: %v", member, tt.reason, intruder)
			})
			// Give gossip and anti-entropy (500 ms here) several rounds to leak anything.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				for _, m := range ns {
					if st := memberStatus(m.Node, xid); st != "" {
						t.Fatalf("member %s lists the intruder as %q", m.cfg.Node, st)
					}
					for _, p := range m.Host().Admitted() {
						if p == x.ID() {
							t.Fatalf("member %s admitted the intruder", m.cfg.Node)
						}
					}
				}
				if got := x.Nodes(); len(got) != 1 || got[0].ID != xid {
					t.Fatalf("intruder's nodes = %v; want only itself", got)
				}
				if _, ok := x.GetState("test", "secret-data"); ok {
					t.Fatal("intruder received cluster state")
				}
				if adm := x.Host().Admitted(); len(adm) != 0 {
					t.Fatalf("intruder admitted %v", adm)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// The members stay healthy and converged with each other.
			if ok, why := allSee(ns, ns, api.StatusAlive); !ok {
				t.Fatal(why)
			}
			if _, err := peer.Decode(xid); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPartitionAndHeal: two halves keep working while cut apart (each writes state only
// its side sees and judges the other side dead), and converge after the cut heals.
func TestPartitionAndHeal(t *testing.T) {
	ns := startCluster(t, 4, nil)
	testutil.WaitFor(t, 20*time.Second, "convergence", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	side := map[peer.ID]int{}
	for i, n := range ns {
		side[n.ID()] = i % 2
	}
	halves := [2][]*testNode{{ns[0], ns[2]}, {ns[1], ns[3]}}
	for i, n := range ns {
		mine := i % 2
		n.Host().SetPartition(func(p peer.ID) bool { s, ok := side[p]; return ok && s != mine })
	}
	for i, n := range ns {
		if err := n.PutState("test", map[string][]byte{fmt.Sprintf("during-%d", i): []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	// Each side judges the other side dead and keeps its own writes.
	testutil.WaitFor(t, 20*time.Second, "each side marks the other dead", func() (bool, string) {
		if ok, why := allSee(halves[0], halves[1], api.StatusDead); !ok {
			return false, why
		}
		return allSee(halves[1], halves[0], api.StatusDead)
	})
	for i, n := range ns {
		for j := range ns {
			_, ok := n.GetState("test", fmt.Sprintf("during-%d", j))
			if i%2 == j%2 && !ok {
				t.Errorf("n%d misses the write of same-side n%d during the partition", i, j)
			}
			if i%2 != j%2 && ok {
				t.Errorf("n%d got the write of other-side n%d across the partition", i, j)
			}
		}
	}
	// A concurrent write of one key on both sides: after the heal all agree on one value.
	ns[0].PutState("test", map[string][]byte{"contested": []byte("left")})
	ns[1].PutState("test", map[string][]byte{"contested": []byte("right")})

	for _, n := range ns {
		n.Host().SetPartition(nil)
	}
	testutil.WaitFor(t, 30*time.Second, "heal: every node alive everywhere", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	testutil.WaitFor(t, 15*time.Second, "heal: state converges", func() (bool, string) {
		want, _ := ns[0].GetState("test", "contested")
		for i, n := range ns {
			for j := range ns {
				if _, ok := n.GetState("test", fmt.Sprintf("during-%d", j)); !ok {
					return false, fmt.Sprintf("n%d lacks during-%d", i, j)
				}
			}
			if v, _ := n.GetState("test", "contested"); string(v) != string(want) {
				return false, fmt.Sprintf("n%d has contested=%q, n0 has %q", i, v, want)
			}
		}
		return true, ""
	})
}

// TestUnreachableJoinRetries: a join peer that does not answer is retried with backoff and
// the node says so, while it keeps working alone.
func TestUnreachableJoinRetries(t *testing.T) {
	cfg := nodeConfig(t, "lonely")
	cfg.Join = []string{"127.0.0.1:9"} // discard port: nothing listens for QUIC or TCP there
	n := startTestNode(t, cfg)
	testutil.WaitFor(t, 15*time.Second, "a logged retry", func() (bool, string) {
		lines := strings.Count(n.log.String(), "join peer unreachable; retrying")
		return lines >= 1 && n.log.contains("127.0.0.1:9") && n.log.contains("retry_in"), fmt.Sprintf("%d retry lines", lines)
	})
	if st := n.Status(); st.NodesAlive != 1 || st.NodesTotal != 1 {
		t.Fatalf("status while the join peer is unreachable = %+v; want itself alive", st)
	}
}
