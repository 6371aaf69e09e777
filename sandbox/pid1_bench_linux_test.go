package sandbox

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkStartStop measures, per program, Start (create excluded; returns once the
// program is exec'd under the init) and Stop with a 10 s grace of a program without a
// SIGTERM handler (the init forwards SIGTERM; before it, such a stop took the whole
// grace and ended in SIGKILL).
//
//	go test -run '^$' -bench StartStop -benchtime 20x ./sandbox/
func BenchmarkStartStop(b *testing.B) {
	for _, prog := range []struct {
		name string
		cmd  []string
	}{
		{"sleep", []string{"sleep", "1000"}},
		{"python", []string{"python3", "-c", "import time; time.sleep(1000)"}},
	} {
		b.Run("program="+prog.name, func(b *testing.B) {
			e := newTestRuntime(b, nil)
			if _, err := resolveExecFor(e, prog.cmd); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var start, stop []time.Duration
			for i := 0; i < b.N; i++ {
				name := prog.name + "-" + strconv.Itoa(i)
				if _, err := e.rt.Create(Spec{Name: name, Command: prog.cmd}); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if _, err := e.rt.Start(name); err != nil {
					b.Fatal(err)
				}
				start = append(start, time.Since(t0))
				time.Sleep(150 * time.Millisecond) // python is up and sleeping
				t1 := time.Now()
				if err := e.rt.Stop(ctx, name, 10*time.Second); err != nil {
					b.Fatal(err)
				}
				stop = append(stop, time.Since(t1))
				if err := e.rt.Destroy(ctx, name, false); err != nil {
					b.Fatal(err)
				}
			}
			ms := func(d time.Duration) float64 { return d.Seconds() * 1000 }
			b.ReportMetric(ms(percentile(start, 50)), "start-p50-ms")
			b.ReportMetric(ms(percentile(stop, 50)), "stop-p50-ms")
			b.ReportMetric(ms(percentile(stop, 99)), "stop-p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func resolveExecFor(e *testEnv, cmd []string) (string, error) {
	p, _, err := resolveExec(&Spec{Command: cmd}, e.rt.cfg.SystemDirs)
	return p, err
}
