package node

import (
	"slices"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestDeployLeftGrace: the deployment instances of a node that leaves gracefully (a restart,
// an upgrade) are not placed again during the grace, so a node that comes back finds them
// where they were; after the grace they run elsewhere. (A killed node's instances move at
// once: TestDeployNodeKill.)
func TestDeployLeftGrace(t *testing.T) {
	const grace = 3 * time.Second
	ns := startSchedCluster(t, 3, nil)
	for _, n := range ns {
		n.sched.SetLeftGrace(grace)
	}
	deploy(t, ns[0], api.DeploymentSpec{Name: "grace", Instances: 3, CPUPercent: 5, RAMMB: 16})
	waitRunning(t, ns, ns, "grace", 3, 20*time.Second)

	owner := mustStatus(t, ns[0], "grace").Owner
	var victim *schedNode
	var rest []*schedNode
	for _, n := range ns {
		if victim == nil && n.cfg.Node != owner {
			victim = n
		} else {
			rest = append(rest, n)
		}
	}
	before := placement(rest, "grace")
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, victim.cfg.Node+" is left on the others", func() (bool, string) {
		for _, n := range rest {
			for _, x := range n.Nodes() {
				if x.Name == victim.cfg.Node && x.Status != api.StatusLeft {
					return false, n.cfg.Node + " sees " + x.Status
				}
			}
		}
		return true, ""
	})
	// The grace counts from when the node left as the owner sees it (the LastSeen of the
	// left node: its record's refresh at leave), not from when this test saw the leave:
	// Close and the wait above can take seconds on a slow machine.
	var ownerNode *schedNode
	for _, n := range rest {
		if n.cfg.Node == owner {
			ownerNode = n
		}
	}
	var left time.Time
	for _, x := range ownerNode.Nodes() {
		if x.Name == victim.cfg.Node {
			left = x.LastSeen
		}
	}
	if left.IsZero() {
		t.Fatalf("the owner %s has no record of %s", owner, victim.cfg.Node)
	}
	// Within the grace nothing moves: the remaining nodes run only their own two.
	for time.Now().Before(left.Add(grace - 100*time.Millisecond)) {
		if c := total(placement(rest, "grace")); c != 2 {
			t.Fatalf("%v after %s left: %d instances run on the others, want 2 (nothing placed again within the grace)",
				time.Since(left).Round(time.Millisecond), victim.cfg.Node, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After the grace the owner places the lost instance elsewhere, and not earlier: its
	// start time (the fake runtime's, which no polling delays) is after the grace.
	after := waitRunning(t, rest, rest, "grace", 3, 20*time.Second)
	started := 0
	for _, n := range rest {
		for _, name := range after[n.cfg.Node] {
			if slices.Contains(before[n.cfg.Node], name) {
				continue
			}
			in, err := n.fake().Get(name)
			if err != nil {
				t.Fatalf("%s on %s: %v", name, n.cfg.Node, err)
			}
			started++
			if d := in.StartedAt.Sub(left); d <= grace {
				t.Errorf("%s started on %s %v after %s left; want it placed again only after the %v grace",
					name, n.cfg.Node, d.Round(time.Millisecond), victim.cfg.Node, grace)
			} else {
				t.Logf("%s re-placed on %s %v after %s left", name, n.cfg.Node, d.Round(time.Millisecond), victim.cfg.Node)
			}
		}
	}
	if started != 1 {
		t.Fatalf("%d instances started on the others (before %v, after %v); want the one that was lost", started, before, after)
	}
}
