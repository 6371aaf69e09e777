package dfs

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// BenchmarkNamespaceMemory measures the heap one node needs per 100,000 files in the
// namespace (the replicated document's records and the service's index), written in
// batches of 1,000 paths per delta.
func BenchmarkNamespaceMemory(b *testing.B) {
	const files = 100_000
	for i := 0; i < b.N; i++ {
		t := &testing.T{}
		n := newNet(t, []string{"a"}, tcfg{capacity: 1 << 40})
		a := n.nodes["a"]
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for k := 0; k < files; k += 1000 {
			paths := make([]string, 1000)
			for j := range paths {
				paths[j] = fmt.Sprintf("/data/set-%03d/part-%06d.csv", (k+j)/1000, k+j)
			}
			_, err := a.svc.commitMany(paths, func(p string, es []EntryRecord, tree TreeRecord) (*EntryRecord, error) {
				r := a.svc.newRecord(p, es, tree, Version{CID: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Size: 4096, Mode: 0o644, MTime: 1, Replication: 3, Holders: []string{"12D3KooWA", "12D3KooWB", "12D3KooWC"}})
				return &r, nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		el := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if ls, _ := a.svc.List("/data/set-042", false); len(ls) != 1000 {
			b.Fatalf("listed %d files", len(ls))
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/100k-files")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/files, "B/file")
		b.ReportMetric(float64(files)/el.Seconds(), "files/s")
		runtime.KeepAlive(n)
		for _, nd := range n.nodes {
			nd.svc.Close()
			nd.cancel()
			close(nd.done)
			nd.wg.Wait()
			nd.st.Close(true)
		}
	}
}

// BenchmarkWrite4KiBReadableOnB: a 4 KiB put on a (R=2: pinned on both, acked by both)
// until b lists and reads it, p50 and p99. Both nodes are in one process and the content
// store is in memory: this measures the namespace (holders' acks, the entry's delta,
// b's index), not the network or the disk.
func BenchmarkWrite4KiBReadableOnB(b *testing.B) {
	t := &testing.T{}
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 40})
	defer func() {
		for _, nd := range n.nodes {
			nd.svc.Close()
			nd.cancel()
			close(nd.done)
			nd.wg.Wait()
			nd.st.Close(true)
		}
	}()
	a, bn := n.nodes["a"], n.nodes["b"]
	ch, _, cancel, _ := bn.svc.Watch("/lat")
	defer cancel()
	data := make([]byte, 4096)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(data, fmt.Sprintf("%08d", i))
		path := fmt.Sprintf("/lat/f%d", i)
		start := time.Now()
		if _, err := a.svc.Put(context.Background(), path, bytes.NewReader(data), PutOptions{Replication: 2}); err != nil {
			b.Fatal(err)
		}
		for e := range ch {
			if e.Path == path {
				break
			}
		}
		f, _, err := bn.svc.Open(context.Background(), path, 0)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkStrongVsEventualWrite4KiB: 4 KiB puts on a (R=2) alternately into an eventual
// and a strong tree, in the same run; p50 and p99 of each until the put returned. The lock
// service is the in-process fake (no Raft, no disk): this measures the strong path's own
// cost (the read before, the fenced pins, the compare-and-set and the entry after).
func BenchmarkStrongVsEventualWrite4KiB(b *testing.B) {
	t := &testing.T{}
	n := newNet(t, []string{"a", "b"}, tcfg{capacity: 1 << 40, consensus: newFakeConsensus()})
	defer func() {
		for _, nd := range n.nodes {
			nd.svc.Close()
			nd.cancel()
			close(nd.done)
			nd.wg.Wait()
			nd.st.Close(true)
		}
	}()
	a := n.nodes["a"]
	if _, err := a.svc.Init(api.FSTree{Prefix: "/s", Consistency: Strong, Replication: 2}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	var ev, st []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, tree := range []string{"/e", "/s"} {
			copy(data, fmt.Sprintf("%s%08d", tree, i))
			start := time.Now()
			if _, err := a.svc.Put(context.Background(), fmt.Sprintf("%s/f%d", tree, i%64), bytes.NewReader(data), PutOptions{Replication: 2}); err != nil {
				b.Fatal(err)
			}
			if tree == "/e" {
				ev = append(ev, time.Since(start))
			} else {
				st = append(st, time.Since(start))
			}
		}
	}
	b.StopTimer()
	reportLatency(b, "eventual", ev)
	reportLatency(b, "strong", st)
}

// reportLatency reports the p50 and p99 of lat in ms as NAME-p50-ms, NAME-p99-ms.
func reportLatency(b *testing.B, name string, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, name+"-p99-ms")
}
