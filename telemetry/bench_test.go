package telemetry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/telemetry/metrics"
	"github.com/rads-lang/constellation/telemetry/tsdb"
)

// fakeInstances varies its values at every read, as real use does (constant series
// would compress unrealistically well).
type fakeInstances struct {
	ss   []metrics.InstanceSample
	tick int
}

func (f *fakeInstances) InstanceSamples() []metrics.InstanceSample {
	f.tick++
	for i := range f.ss {
		f.ss[i].CPUSeconds += float64((f.tick*7+i*13)%100) / 100
		f.ss[i].RAMBytes = float64(64<<20 + ((f.tick*31+i*17)%4096)*4096)
	}
	return f.ss
}

// simRegistry is a node's registry with 100 simulated instances, each with 10 custom series.
func simRegistry(b testing.TB, instances int) *metrics.Registry {
	reg := metrics.NewRegistry("n1")
	fi := &fakeInstances{}
	custom := metrics.NewCustom()
	for i := range instances {
		name := fmt.Sprintf("app-%d", i)
		fi.ss = append(fi.ss, metrics.InstanceSample{Name: name, Namespace: "default", Running: true, CPUSeconds: float64(i), RAMBytes: 64 << 20, PIDs: 4})
		var ss []metrics.Sample
		for j := range 9 {
			ss = append(ss, metrics.Sample{Name: "requests", Kind: metrics.KindCounter, Value: 1, Tags: map[string]string{"route": strconv.Itoa(j)}})
		}
		ss = append(ss, metrics.Sample{Name: "active_users", Kind: metrics.KindGauge, Value: float64(i)})
		if err := custom.Push(name, "default", ss); err != nil {
			b.Fatal(err)
		}
	}
	reg.MustRegister(metrics.NewNodeCollector(b.TempDir()), metrics.NewInstanceCollector(fi), custom)
	return reg
}

func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func vmRSS() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkSample100Instances: one sampling tick (gather + append) of a node running 100
// instances (simulated collectors: 8 instance series and 10 custom series each). Reports
// the CPU share of sampling every 10 s, the series per tick, the heap the store holds
// after 3 simulated hours, and the compacted bytes per sample on disk.
func BenchmarkSample100Instances(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			reg := simRegistry(b, n)
			dir := b.TempDir()
			st, err := tsdb.Open(tsdb.Options{Dir: dir, Node: "n1", Retention: 30 * 24 * time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			t0 := time.UnixMilli(1_800_000_000_000)
			// Warm the head with 3 hours of ticks so compaction has a full block.
			const ticks = 3 * 360
			var ms0 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			for i := range ticks {
				if err := st.Sample(ctx, t0.Add(time.Duration(i)*10*time.Second), reg.Gatherer()); err != nil {
					b.Fatal(err)
				}
			}
			perTick := time.Since(start) / ticks
			series := float64(st.Appended()) / ticks
			runtime.GC()
			var ms1 runtime.MemStats
			runtime.ReadMemStats(&ms1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := st.Sample(ctx, t0.Add(time.Duration(ticks+i)*10*time.Second), reg.Gatherer()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			appended := st.Appended()
			if err := st.Compact(b.Context()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(series, "series/tick")
			b.ReportMetric(float64(perTick.Microseconds())/1000, "ms/tick(warm-up)")
			b.ReportMetric(float64(perTick)/float64(10*time.Second)*100, "cpu%@10s")
			b.ReportMetric(float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/(1<<20), "heapMB(3h)")
			b.ReportMetric(float64(st.BlockBytes())/float64(max(1, st.BlockSamples())), "disk-B/sample(block)")
			b.ReportMetric(float64(dirBytes(dir))/float64(appended), "disk-B/sample(all)")
			b.ReportMetric(vmRSS(), "procRSS-MB")
		})
	}
}
