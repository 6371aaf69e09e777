package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkShareLag4KiB: a 4 KiB file written into n0's shared directory until n1's
// shared directory holds the same bytes (realtime, writable, two nodes in one process over
// loopback: debounce, scan, put with both holders' ack, gossip, n1's round, download and
// rename), p50 and p99; and in the same run the reference: a DFS put of 4 KiB on n0 until
// n1 read it (the DFS path alone), with the ratio of the p50s.
func BenchmarkShareLag4KiB(b *testing.B) {
	ns := startCluster(b, 2, func(i int, c *Config) { c.Liveness = "local" })
	testutil.WaitFor(b, 20*time.Second, "2 alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	ctx := context.Background()
	dirs := make([]string, 2)
	for i, n := range ns {
		d, _ := filepath.EvalSymlinks(b.TempDir())
		dirs[i] = d
		if _, err := n.Shares().Create(api.FSShareRequest{LocalDir: d, Path: "/bench", Sync: "realtime", Writable: true}); err != nil {
			b.Fatal(err)
		}
	}
	a, c := ns[0].DFS(), ns[1].DFS()
	testutil.WaitFor(b, 20*time.Second, "a put with 2 holders", func() (bool, string) {
		e, err := a.Put(ctx, "/warm", bytes.NewReader([]byte("x")), dfs.PutOptions{Replication: 2})
		return err == nil && len(e.Holders) == 2, fmt.Sprint(err)
	})
	data := make([]byte, 4096)
	var lag, ref []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(data, fmt.Sprintf("%08d", i))
		name := fmt.Sprintf("f%d", i)
		start := time.Now()
		if err := os.WriteFile(filepath.Join(dirs[0], name), data, 0o644); err != nil {
			b.Fatal(err)
		}
		for {
			if got, err := os.ReadFile(filepath.Join(dirs[1], name)); err == nil && bytes.Equal(got, data) {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s did not reach n1's directory in 30 s", name)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lag = append(lag, time.Since(start))

		path := fmt.Sprintf("/ref/f%d", i)
		start = time.Now()
		if _, err := a.Put(ctx, path, bytes.NewReader(data), dfs.PutOptions{Replication: 2}); err != nil {
			b.Fatal(err)
		}
		for {
			if f, _, err := c.Open(ctx, path, 0); err == nil {
				f.Close()
				break
			}
			time.Sleep(time.Millisecond)
		}
		ref = append(ref, time.Since(start))
	}
	b.StopTimer()
	p := func(xs []time.Duration, q int) float64 {
		sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
		return float64(xs[len(xs)*q/100].Microseconds()) / 1000
	}
	b.ReportMetric(p(lag, 50), "share-p50-ms")
	b.ReportMetric(p(lag, 99), "share-p99-ms")
	b.ReportMetric(p(ref, 50), "dfs-p50-ms")
	b.ReportMetric(p(lag, 50)/p(ref, 50), "ratio-p50")
}
