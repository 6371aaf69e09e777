package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

func pctMs(lat []time.Duration, p float64) float64 {
	slices.Sort(lat)
	i := min(len(lat)-1, max(0, int(p*float64(len(lat))+0.5)-1))
	return float64(lat[i].Microseconds()) / 1000
}

// BenchmarkRevocationPropagation: a token revoked on one of 10 in-process nodes; the time
// until each other node refuses it (p50/p99 over nodes and rounds). Run with
// -benchtime=20x.
func BenchmarkRevocationPropagation(b *testing.B) {
	ns := startSchedCluster(b, 10, nil)
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		_, sec, err := ns[0].security.CreateToken(api.TokenCreateRequest{Name: fmt.Sprintf("t%d", i), Role: "viewer"}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		testutil.WaitFor(b, 20*time.Second, "every node knows the token", func() (bool, string) {
			for _, n := range ns {
				if _, _, err := n.security.Authenticate(sec); err != nil {
					return false, n.cfg.Node + ": " + err.Error()
				}
			}
			return true, ""
		})
		b.StartTimer()
		t0 := time.Now()
		if _, err := ns[0].security.RevokeToken(fmt.Sprintf("t%d", i), "bench"); err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range ns[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					if _, _, err := n.security.Authenticate(sec); err != nil {
						mu.Lock()
						lat = append(lat, time.Since(t0))
						mu.Unlock()
						return
					}
					time.Sleep(200 * time.Microsecond)
				}
				b.Errorf("%s still accepts the token 20 s after its revocation", n.cfg.Node)
			}()
		}
		wg.Wait()
	}
	if len(lat) > 0 {
		b.ReportMetric(pctMs(lat, 0.5), "p50-ms")
		b.ReportMetric(pctMs(lat, 0.99), "p99-ms")
	}
}

// BenchmarkCreateAudit: POST /v1/instances over the node's socket (fake runtime), with the
// audit log on and off: the audit's cost on create latency.
func BenchmarkCreateAudit(b *testing.B) {
	n := startSchedCluster(b, 1, nil)[0]
	cl := api.NewClient(n.cfg.DataDir, "", "")
	ctx := context.Background()
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("audit=%v", on), func(b *testing.B) {
			if !on {
				n.api.SetObserver(nil)
			}
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				name := fmt.Sprintf("b-%v-%d", on, i)
				t0 := time.Now()
				if _, err := cl.CreateInstance(ctx, api.CreateRequest{Name: name, Command: []string{"true"}}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				b.StopTimer()
				if err := cl.RemoveInstanceGrace(ctx, name, 0); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(pctMs(lat, 0.5), "p50-ms")
		})
	}
}

// BenchmarkTokenRequest: GET /v1/status over the TCP API with the bootstrap token (no
// lookup, no guard) and with an API token (lookup, SHA-256, role and table check): the
// difference is what the permission check costs a request.
func BenchmarkTokenRequest(b *testing.B) {
	n := startSchedClusterCfg(b, 1, func(i int, c *Config) { c.APIListen = "127.0.0.1:0" })[0]
	_, sec, err := n.security.CreateToken(api.TokenCreateRequest{Name: "bench", Role: "viewer"}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	cl := pinnedHTTPClient(b, n.APIFingerprint)
	for _, tc := range []struct{ name, tok string }{{"bootstrap", n.api.Token()}, {"token", sec}} {
		b.Run("auth="+tc.name, func(b *testing.B) {
			for b.Loop() {
				if st, out := httpCall(b, cl, tc.tok, "GET", "https://"+n.APIAddr+"/v1/status", ""); st != 200 {
					b.Fatalf("%d %s", st, out)
				}
			}
		})
	}
}
