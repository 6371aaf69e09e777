package node

import (
	"context"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkMonitorQuery1h3Nodes: a PromQL range query over 1 hour (step 1m) evaluated on
// n0 over the stores of 3 in-process nodes (two reached over the cluster protocol), each
// holding 1 hour of its registry sampled every 10 s.
func BenchmarkMonitorQuery1h3Nodes(b *testing.B) {
	ns := startCluster(b, 3, nil)
	testutil.WaitFor(b, 20*time.Second, "all alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	t0 := time.Now().Add(time.Minute).Truncate(time.Second) // after the samplers' "now"
	for _, n := range ns {
		for i := range 361 {
			if err := n.Telemetry().SampleNow(t0.Add(time.Duration(i) * 10 * time.Second)); err != nil {
				b.Fatal(err)
			}
		}
	}
	end := t0.Add(time.Hour)
	ctx := context.Background()
	for _, q := range []struct{ name, promql string }{
		{"avg-cpu-rate", `avg by (node) (rate(constellation_node_cpu_seconds_total[1m]))`},
		{"all-go-series", `sum by (node) ({__name__=~"go_.*"})`},
	} {
		b.Run(q.name, func(b *testing.B) {
			var series int
			for i := 0; i < b.N; i++ {
				res, err := ns[0].Telemetry().Range(ctx, q.promql, t0, end, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Warnings) > 0 || len(res.Series) != 3 {
					b.Fatalf("%d series, warnings %v", len(res.Series), res.Warnings)
				}
				series = len(res.Series)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64(series), "series")
		})
	}
}
