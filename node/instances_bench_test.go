package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkInstanceCreate measures POST /v1/instances until the instance runs (the answer
// comes once the program is exec'd in its namespaces and cgroups), on the receiving node
// (local) and forwarded to another node (remote). Each instance is removed before the
// next create, outside the timer. Run with -benchtime=100x for the 100 runs.
// `constellation bench instances` measures the same from the CLI.
func BenchmarkInstanceCreate(b *testing.B) {
	instRequireRoot(b)
	// Each node's instances are torn down after the node is killed and before its data dir
	// is removed (cleanups run last-in first-out).
	ns := startCluster(b, 2, func(i int, c *Config) {
		dir := c.DataDir
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := instances.Teardown(ctx, dir); err != nil {
				b.Errorf("teardown %s: %v", dir, err)
			}
		})
	})
	a, rb := ns[0], ns[1]
	testutil.WaitFor(b, 10*time.Second, "both alive", func() (bool, string) {
		return memberStatus(a.Node, rb.ID().String()) == api.StatusAlive, ""
	})
	cl := api.NewClient(a.cfg.DataDir, "", "")
	ctx := context.Background()
	for _, target := range []struct{ name, node string }{{"local", ""}, {"remote", rb.cfg.Node}} {
		b.Run("target="+target.name, func(b *testing.B) {
			create := func(name string) time.Duration {
				t0 := time.Now()
				rec, err := cl.CreateInstance(ctx, api.CreateRequest{Name: name, Node: target.node,
					Command: []string{"sleep", "1000"}, RAMMB: 64, CPUPercent: 50, PIDs: 64})
				d := time.Since(t0)
				if err != nil || rec.Status != api.InstanceRunning {
					b.Fatalf("create %s: %+v, %v", name, rec, err)
				}
				return d
			}
			rm := func(name string) {
				if err := cl.RemoveInstanceGrace(ctx, name, 0); err != nil {
					b.Fatalf("rm %s: %v", name, err)
				}
			}
			create("warmup-" + target.name) // opens the target's runtime
			rm("warmup-" + target.name)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("bench-%s-%d", target.name, i)
				d := create(name)
				b.StopTimer()
				lat = append(lat, d)
				rm(name)
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				i := min(len(lat)-1, max(0, int(p*float64(len(lat))+0.5)-1))
				return float64(lat[i].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
