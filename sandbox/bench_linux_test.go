package sandbox

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// BenchmarkSandbox measures cold start (p50/p99 over 200 create+start until the
// program's first write to a pipe, full isolation), the same static program under
// `runc run` and the ratio, wall time to start 100 instances, and memory per idle
// instance with 500 idle instances. SANDBOX_BENCH_STARTS and SANDBOX_BENCH_IDLE
// override the counts.
//
//	go test -run '^$' -bench Sandbox -benchtime 1x ./sandbox/
func BenchmarkSandbox(b *testing.B) {
	requireRoot(b)
	probe, kind := benchProbe(b)
	b.Logf("probe program: %s", kind)
	starts, idle := envInt("SANDBOX_BENCH_STARTS", 200), envInt("SANDBOX_BENCH_IDLE", 500)
	for i := 0; i < b.N; i++ {
		res, err := Bench(context.Background(), BenchConfig{
			Program: probe, Starts: starts, Idle: idle, DiskMB: 64,
			NoRunc: os.Getenv("SANDBOX_BENCH_RUNC") == "0",
			Logf:   b.Logf,
		})
		if err != nil {
			b.Fatal(err)
		}
		ms := func(d interface{ Seconds() float64 }) float64 { return d.Seconds() * 1000 }
		b.ReportMetric(ms(res.ColdP50), "cold-p50-ms")
		b.ReportMetric(ms(res.ColdP99), "cold-p99-ms")
		if res.ColdNetP50 > 0 {
			b.ReportMetric(ms(res.ColdNetP50), "cold-net-p50-ms")
			b.ReportMetric(ms(res.ColdNetP99), "cold-net-p99-ms")
		}
		if res.ColdDiskP50 > 0 {
			b.ReportMetric(ms(res.ColdDiskP50), "cold-disk-p50-ms")
		}
		if res.RuncP50 > 0 {
			b.ReportMetric(ms(res.RuncP50), "runc-p50-ms")
			b.ReportMetric(ms(res.RuncP99), "runc-p99-ms")
			b.ReportMetric(res.RuncRatio, "runc/sandbox")
			if res.RuncRatioNet > 0 {
				b.ReportMetric(res.RuncRatioNet, "runc/sandbox-net")
			}
		}
		b.ReportMetric(ms(res.StartManyWall), "start-100-ms")
		if res.Idle > 0 {
			b.ReportMetric(float64(res.IdleSupervisorRSS)/1024, "idle-rss-KiB/inst")
			b.ReportMetric(float64(res.IdleCgroupKernel)/1024, "idle-kmem-KiB/inst")
			b.ReportMetric(float64(res.IdleInstanceMemory)/1024, "idle-mem-KiB/inst")
			b.ReportMetric(float64(res.IdleInitRSS)/1024, "init-rss-KiB/inst")
			b.ReportMetric(float64(res.IdleInitPSS)/1024, "init-pss-KiB/inst")
		}
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

// benchProbe returns the static probe program: a C program when a C compiler with a
// static libc is available (it starts in well under a millisecond, so the numbers show
// the launch itself), else the static Go test helper.
func benchProbe(b *testing.B) (string, string) {
	bin, kind, err := BuildProbe(b.TempDir())
	if err != nil {
		b.Logf("%v; using the Go helper", err)
	}
	if bin != "" {
		return bin, kind
	}
	return helperBinary(b), "static Go helper"
}
