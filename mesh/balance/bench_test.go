package balance

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPick measures one Pick plus Ticket.Done per policy and endpoint
// count (endpoints spread over 3 regions; the caller's region holds a third).
func BenchmarkPick(b *testing.B) {
	for _, p := range Policies {
		for _, n := range []int{3, 30, 300} {
			b.Run(fmt.Sprintf("%s/n=%d", p, n), func(b *testing.B) {
				bal, _ := newTest(b, Config{Policy: p, Clock: SystemClock()})
				eps := endpoints(n)
				for i := range eps {
					eps[i].Region = fmt.Sprintf("r%d", i%3)
					eps[i].RTT = time.Duration(1+i%7) * time.Millisecond
				}
				req := Request{Region: "r0", Key: "10.1.2.3"}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, tk, err := bal.Pick(req, eps)
					if err != nil {
						b.Fatal(err)
					}
					tk.Done(time.Millisecond, OK)
				}
			})
		}
	}
}

// BenchmarkDo measures Do's overhead around an attempt that answers at once,
// against calling the attempt function directly.
func BenchmarkDo(b *testing.B) {
	attempt := func(ctx context.Context, ep Endpoint) (Result, error) { return Result{Status: 200}, nil }
	for _, n := range []int{3, 30} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			bal, _ := newTest(b, Config{Policy: P2CEWMA, Clock: SystemClock()})
			defer bal.Close()
			eps := endpoints(n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := bal.Do(ctx, CallInfo{Method: "GET"}, eps, attempt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) {
		ctx := context.Background()
		eps := endpoints(3)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := attempt(ctx, eps[i%3]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPickParallel measures Pick under contention (one Balancer, every
// CPU picking).
func BenchmarkPickParallel(b *testing.B) {
	bal, _ := newTest(b, Config{Policy: P2CEWMA, Clock: SystemClock()})
	eps := endpoints(30)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, tk, err := bal.Pick(Request{}, eps)
			if err != nil {
				b.Error(err)
				return
			}
			tk.Done(time.Millisecond, OK)
		}
	})
}

// BenchmarkOutageAmplification replays a total outage at 1000 requests/s for
// 60 s of virtual time, each request allowed 3 attempts, and reports the
// attempts per request with the default budget and, as the reference, with a
// budget too large to bind (ratio 10, 1000/s).
func BenchmarkOutageAmplification(b *testing.B) {
	for _, c := range []struct {
		name string
		bc   BudgetConfig
	}{{"budget=default", BudgetConfig{}}, {"budget=unbounded", BudgetConfig{Ratio: 10, MinPerSecond: 1000}}} {
		b.Run(c.name, func(b *testing.B) {
			var ratio float64
			for i := 0; i < b.N; i++ {
				bal, clk := newTest(b, Config{Budget: c.bc})
				requests, attempts := 0, 0
				for ms := 0; ms < 60000; ms++ {
					clk.Advance(time.Millisecond)
					bal.RecordRequest()
					requests++
					attempts++
					for a := 1; a < 3 && bal.TryRetry(); a++ {
						attempts++
					}
				}
				ratio = float64(attempts) / float64(requests)
			}
			b.ReportMetric(ratio, "attempts/request")
		})
	}
}
