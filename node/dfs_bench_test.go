package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/internal/testutil"
)

// BenchmarkDFSWrite4KiB: a 4 KiB put on n0 (R=2: both nodes pin and fsync, both ack)
// until n1 has seen the entry and read the bytes, p50 and p99; two nodes in one process
// over loopback with their real block stores.
func BenchmarkDFSWrite4KiB(b *testing.B) {
	ns := startCluster(b, 2, nil)
	testutil.WaitFor(b, 20*time.Second, "2 alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	a, c := ns[0].dfs.svc, ns[1].dfs.svc
	ctx := context.Background()
	testutil.WaitFor(b, 20*time.Second, "a put with 2 holders", func() (bool, string) {
		e, err := a.Put(ctx, "/warm", bytes.NewReader([]byte("x")), dfs.PutOptions{Replication: 2})
		return err == nil && len(e.Holders) == 2, fmt.Sprint(err)
	})
	ch, _, cancel, err := c.Watch("/lat")
	if err != nil {
		b.Fatal(err)
	}
	defer cancel()
	data := make([]byte, 4096)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(data, fmt.Sprintf("%08d", i))
		path := fmt.Sprintf("/lat/f%d", i)
		start := time.Now()
		if _, err := a.Put(ctx, path, bytes.NewReader(data), dfs.PutOptions{Replication: 2}); err != nil {
			b.Fatal(err)
		}
		for e := range ch {
			if e.Path == path {
				break
			}
		}
		f, _, err := c.Open(ctx, path, 0)
		if err != nil {
			b.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, data) {
			b.Fatal("n1 read other bytes")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
