package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkDeploy100: time from a deploy of 100 instances (the API call on one node) to
// all 100 running, over 5 in-process nodes with fake runtimes (placement, claims,
// gossip, admission through the instance manager, records replicated back to the
// deploying node). Reports ms/deploy.
func BenchmarkDeploy100(b *testing.B) {
	ns := startSchedCluster(b, 5, func(i int) map[string]string { return map[string]string{"zone": fmt.Sprint(i % 3)} })
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench%d", i)
		start := time.Now()
		if _, _, err := ns[i%5].sched.Deploy(api.DeploymentSpec{Name: name, Instances: 100, CPUPercent: 1, RAMMB: 16,
			Command: []string{"sleep", "1000"}}); err != nil {
			b.Fatal(err)
		}
		obs := ns[i%5]
		testutil.WaitForEvery(b, 60*time.Second, time.Millisecond, name+" running", func() (bool, string) {
			if c := total(placement(ns, name)); c != 100 {
				return false, fmt.Sprint(c, " running")
			}
			st, err := obs.sched.DeploymentStatus(name)
			if err != nil {
				return false, err.Error()
			}
			return st.Running == 100, fmt.Sprint(st.Running, " reported running")
		})
		elapsed += time.Since(start)
		b.StopTimer()
		if err := ns[0].sched.Undeploy(name); err != nil {
			b.Fatal(err)
		}
		testutil.WaitForEvery(b, 60*time.Second, time.Millisecond, name+" gone", func() (bool, string) {
			c := total(placement(ns, name))
			return c == 0, fmt.Sprint(c)
		})
		b.StartTimer()
	}
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/deploy")
}

// BenchmarkNodeKillReplace: time from killing a node (crash, no leave) that owns a
// 20-instance deployment and runs some of it, to all 20 running on the other 4 nodes.
// Reports detect_s (until every survivor judges it dead) and replace_s (until the
// instances run elsewhere), per kill.
func BenchmarkNodeKillReplace(b *testing.B) {
	var detect, replace time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := startSchedCluster(b, 5, nil)
		if _, _, err := ns[0].sched.Deploy(api.DeploymentSpec{Name: "svc", Instances: 20, CPUPercent: 1, RAMMB: 16,
			Command: []string{"sleep", "1000"}}); err != nil {
			b.Fatal(err)
		}
		testutil.WaitForEvery(b, 30*time.Second, time.Millisecond, "svc running", func() (bool, string) {
			c := total(placement(ns, "svc"))
			return c == 20, fmt.Sprint(c)
		})
		owner := mustStatus(b, ns[0], "svc").Owner
		var victim *schedNode
		var rest []*schedNode
		for _, n := range ns {
			if n.cfg.Node == owner {
				victim = n
			} else {
				rest = append(rest, n)
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := victim.Kill(); err != nil {
			b.Fatal(err)
		}
		detected := false
		testutil.WaitForEvery(b, 60*time.Second, time.Millisecond, "replicas elsewhere", func() (bool, string) {
			if !detected {
				dead := true
				for _, o := range rest {
					if memberStatus(o.Node, victim.ID().String()) != api.StatusDead {
						dead = false
					}
				}
				if dead {
					detected = true
					detect += time.Since(start)
				}
			}
			c := total(placement(rest, "svc"))
			return c == 20, fmt.Sprint(c)
		})
		replace += time.Since(start)
		b.StopTimer()
		for _, n := range ns {
			_ = n.Kill()
		}
		b.StartTimer()
	}
	b.ReportMetric(detect.Seconds()/float64(b.N), "detect_s")
	b.ReportMetric(replace.Seconds()/float64(b.N), "replace_s")
}
