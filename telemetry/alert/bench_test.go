package alert

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// BenchmarkEvalToNotify measures one alert from the start of its rule's evaluation
// (a PromQL query over a local TSDB, the state step, the replicated state write) to its
// webhook notification received by an HTTP server on loopback.
func BenchmarkEvalToNotify(b *testing.B) {
	db := newTestDB(b)
	t0 := time.Now().Truncate(time.Minute)
	db.fill(b, labels.FromStrings("__name__", "cpu_percent", "instance", "web-1"), t0.Add(-10*time.Minute), t0.Add(time.Hour), 15*time.Second,
		func(time.Time) float64 { return 95 })
	c := newCluster(b, 1)
	clk := newClock(t0)
	s := New(b.Context(), Config{Name: "n1", Interval: time.Second, Tick: time.Hour, Now: clk.now,
		Retry: Retry{Attempts: 1, Base: time.Millisecond}}, c.stores[0], newMembers("n1"), db.q, nil, quietLog())
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	hk := newHook(b)
	if _, err := s.AddChannel(api.ChannelSpec{Name: "ops", Type: "webhook", URL: hk.srv.URL}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.AddRule(api.AlertRuleSpec{Name: "HighCPU", Expr: "cpu_percent > 90", Channels: []string{"ops"}, Message: "CPU {{ $value }} on {{instance}}"}); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		// forget the alert so this evaluation fires and notifies it again
		_ = c.stores[0].Update(func(tx *state.Tx) error { return tx.Remove(CollState, "HighCPU") })
		clk.set(t0.Add(time.Duration(i+1) * 2 * time.Second))
		start := time.Now()
		s.Tick()
		for len(hk.messages()) < i+1 {
			time.Sleep(20 * time.Microsecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/notification")
}

// BenchmarkWebhookPost is the reference for BenchmarkEvalToNotify: the same webhook
// payload posted to the same kind of receiver, with no evaluation, state or queue.
func BenchmarkWebhookPost(b *testing.B) {
	hk := newHook(b)
	rc := ChannelRecord{Name: "ops", Type: "webhook", URL: hk.srv.URL}
	m := message{Node: "n1", Rule: "HighCPU", Status: api.AlertFiring, Alert: AlertRecord{Fingerprint: "f",
		Labels: map[string]string{"alertname": "HighCPU", "instance": "web-1"}, Annotations: map[string]string{"message": "CPU 95 on web-1"}, Value: 95}}
	cl := &http.Client{Timeout: 10 * time.Second}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := deliver(b.Context(), cl, rc, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/notification")
}
