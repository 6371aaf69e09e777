package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The cluster benchmarks run the measurements of `constellation bench cluster`; each sets
// up its own cluster, so one iteration is the whole measurement (b.N is not scaled):
//
//	go test -run '^$' -bench 'Cluster' -benchtime 1x ./cmd/constellation/

func benchOpts(b *testing.B) *benchOptions {
	return &benchOptions{workDir: b.TempDir()}
}

func report(b *testing.B, res []benchResult, err error, units map[string]string) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if u, ok := units[r.Name]; ok {
			b.ReportMetric(r.Value, u)
		}
	}
}

// BenchmarkClusterLatency: a state change on one node until visible on every node.
func BenchmarkClusterLatency(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				res, err := benchLatency(context.Background(), benchOpts(b), n, 50)
				report(b, res, err, map[string]string{
					"change visible on every node p50": "p50-ms",
					"change visible on every node p99": "p99-ms",
				})
			}
		})
	}
}

// BenchmarkClusterJoin: nodes started at once until all list all alive (memberlist: 0.20 s / 0.61 s).
func BenchmarkClusterJoin(b *testing.B) {
	for _, n := range []int{5, 20} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				res, err := benchJoin(context.Background(), benchOpts(b), n, 3)
				report(b, res, err, map[string]string{"join convergence (median)": "converge-s"})
			}
		})
	}
}

// BenchmarkClusterSync100k: a new node syncing a 100,000-entry state.
func BenchmarkClusterSync100k(b *testing.B) {
	for range b.N {
		res, err := benchSync(context.Background(), benchOpts(b), 100000)
		report(b, res, err, map[string]string{"new node syncs 100000 entries": "sync-s"})
	}
}

// BenchmarkClusterDetect: a killed node until dead on every node (memberlist: 6.0 s / 7.0 s).
func BenchmarkClusterDetect(b *testing.B) {
	for _, n := range []int{5, 20} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			for range b.N {
				res, err := benchDetect(context.Background(), benchOpts(b), n, 3)
				report(b, res, err, map[string]string{"killed node dead everywhere (median)": "detect-s"})
			}
		})
	}
}

// BenchmarkClusterIdle: bytes sent per node per second by 20 idle nodes.
func BenchmarkClusterIdle(b *testing.B) {
	for range b.N {
		res, err := benchIdle(context.Background(), benchOpts(b), 20, 15*time.Second, 30*time.Second)
		report(b, res, err, map[string]string{"idle traffic sent per node": "B/s/node"})
	}
}

// BenchmarkPeerRSS: resident memory of an idle `constellation peer` process after 30 s.
func BenchmarkPeerRSS(b *testing.B) {
	bin := binary(b)
	for range b.N {
		res, err := benchRSS(context.Background(), benchOpts(b), bin, 30*time.Second)
		report(b, res, err, map[string]string{"RSS of an idle peer process": "MB"})
	}
}
