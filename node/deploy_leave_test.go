package node

import (
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
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
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	waitFor(t, 10*time.Second, victim.cfg.Node+" is left on the others", func() (bool, string) {
		for _, n := range rest {
			for _, x := range n.Nodes() {
				if x.Name == victim.cfg.Node && x.Status != api.StatusLeft {
					return false, n.cfg.Node + " sees " + x.Status
				}
			}
		}
		return true, ""
	})
	// Within the grace nothing moves: the remaining nodes run only their own two.
	for time.Since(left) < grace-time.Second {
		if c := total(placement(rest, "grace")); c != 2 {
			t.Fatalf("%v after %s left: %d instances run on the others, want 2 (nothing placed again within the grace)",
				time.Since(left).Round(time.Millisecond), victim.cfg.Node, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After the grace the owner places the lost instance elsewhere.
	waitRunning(t, rest, rest, "grace", 3, 20*time.Second)
	t.Logf("re-placed %v after %s left", time.Since(left).Round(time.Millisecond), victim.cfg.Node)
}
