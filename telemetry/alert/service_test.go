package alert

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

type testNode struct {
	name string
	svc  *Service
	st   *state.Store
}

// newTestNodes starts one alerting service per store of c, sharing members, clock and
// querier. Their loops tick hourly: the test drives Tick itself.
func newTestNodes(t *testing.T, c *cluster, m *fakeMembers, clk *clock, q Querier, names ...string) []*testNode {
	t.Helper()
	var out []*testNode
	for i, n := range names {
		s := New(context.Background(), Config{Name: n, Interval: time.Second, Tick: time.Hour,
			Retry: Retry{Attempts: 4, Base: time.Millisecond, Max: 10 * time.Millisecond}, Now: clk.now},
			c.stores[i], m, q, nil, quietLog())
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		out = append(out, &testNode{name: n, svc: s, st: c.stores[i]})
	}
	return out
}

func stateOf(st *state.Store, rule string) StateRecord {
	r, _ := readOne[StateRecord](st, CollState, rule)
	return r
}

// TestFireHandoverResolve plays the alert test: a rule fires after its for
// duration and notifies a webhook and an SMTP sink (STARTTLS + AUTH) exactly once; its
// evaluating node dies, the next rendezvous owner takes over from the replicated firing
// state without notifying again; the alert resolves and the resolution is sent once.
func TestFireHandoverResolve(t *testing.T) {
	db := newTestDB(t)
	t0 := time.Now().Truncate(time.Minute)
	cpu := labels.FromStrings("__name__", "cpu_percent", "instance", "web-1")
	db.fill(t, cpu, t0.Add(-time.Minute), t0.Add(5*time.Minute), 15*time.Second, func(time.Time) float64 { return 95 })
	db.fill(t, cpu, t0.Add(5*time.Minute+15*time.Second), t0.Add(20*time.Minute), 15*time.Second, func(time.Time) float64 { return 10 })

	c := newCluster(t, 2)
	m := newMembers("n1", "n2")
	clk := newClock(t0)
	nodes := newTestNodes(t, c, m, clk, db.q, "n1", "n2")
	hk := newHook(t)
	sink := newSMTPSink(t)
	api0 := nodes[0].svc
	if _, err := api0.AddChannel(api.ChannelSpec{Name: "ops", Type: "webhook", URL: hk.srv.URL + "/alerts"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api0.AddChannel(api.ChannelSpec{Name: "mail", Type: "email", SMTPHost: sink.addr(), From: "alerts@example.com",
		To: []string{"ops@example.com"}, Username: "alerts", Password: "s3cret", InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := api0.AddRule(api.AlertRuleSpec{Name: "HighCPU", Expr: "cpu_percent > 90", For: "1m", Severity: "critical",
		Channels: []string{"ops", "mail"}, Message: "CPU at {{ $value }}% on {{instance}}"}); err != nil {
		t.Fatal(err)
	}
	owner := Owner("HighCPU", []string{"n1", "n2"})
	var own, other *testNode
	for _, n := range nodes {
		if n.name == owner {
			own = n
		} else {
			other = n
		}
	}
	waitFor(t, "the rule and channels on every node", 5*time.Second, func() bool {
		for _, n := range nodes {
			_, ok1 := readOne[RuleRecord](n.st, CollRules, "HighCPU")
			_, ok2 := readOne[ChannelRecord](n.st, CollChannels, "mail")
			if !ok1 || !ok2 {
				return false
			}
		}
		return true
	})
	tick := func(at time.Duration) {
		clk.set(t0.Add(at))
		for _, n := range nodes {
			if n.svc != nil {
				n.svc.Tick()
			}
		}
	}
	tick(0)
	if s := stateOf(own.st, "HighCPU"); len(s.Alerts) != 1 || s.Alerts[0].State != api.AlertPending || s.Owner != owner {
		t.Fatalf("after the first evaluation: %+v, want one pending alert written by %s", s, owner)
	}
	tick(30 * time.Second)
	if s := stateOf(own.st, "HighCPU"); s.Alerts[0].State != api.AlertPending {
		t.Fatalf("fired before its for duration: %+v", s.Alerts[0])
	}
	tick(61 * time.Second)
	waitFor(t, "the firing notification on both channels", 5*time.Second, func() bool {
		return len(hk.messages()) == 1 && len(sink.received()) == 1
	})
	msg := hk.messages()[0]
	if msg["status"] != "firing" || msg["message"] != "CPU at 95% on web-1" || msg["rule"] != "HighCPU" {
		t.Fatalf("webhook payload %v", msg)
	}
	mails := sink.received()
	if !mails[0].TLS || mails[0].User != "alerts" || !strings.Contains(mails[0].Data, "CPU at 95% on web-1") ||
		!strings.Contains(mails[0].Data, "Subject: [FIRING] HighCPU (critical)") {
		t.Fatalf("mail %+v", mails[0])
	}
	// The firing state (with its notification mark) reaches the other node.
	waitFor(t, "the firing state on the other node", 5*time.Second, func() bool {
		s := stateOf(other.st, "HighCPU")
		return len(s.Alerts) == 1 && s.Alerts[0].State == api.AlertFiring && !s.Alerts[0].NotifiedAt.IsZero()
	})

	// The owner dies: the other node takes over.
	own.svc.Close()
	own.svc = nil
	m.set(own.name, api.StatusDead)
	tick(90 * time.Second)
	tick(3 * time.Minute)
	if s := stateOf(other.st, "HighCPU"); s.Owner != other.name || s.Alerts[0].State != api.AlertFiring {
		t.Fatalf("after the handover: %+v, want firing written by %s", s, other.name)
	}
	time.Sleep(50 * time.Millisecond) // a duplicate would have been sent by now
	if n, k := len(hk.messages()), len(sink.received()); n != 1 || k != 1 {
		t.Fatalf("after the handover: %d webhook messages and %d mails, want 1 and 1 (no duplicate)", n, k)
	}

	// The value drops: resolved, notified once.
	tick(6 * time.Minute)
	waitFor(t, "the resolved notification", 5*time.Second, func() bool {
		return len(hk.messages()) == 2 && len(sink.received()) == 2
	})
	tick(7 * time.Minute)
	tick(8 * time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n, k := len(hk.messages()), len(sink.received()); n != 2 || k != 2 {
		t.Fatalf("%d webhook messages and %d mails, want 2 and 2", n, k)
	}
	if st := hk.messages()[1]["status"]; st != "resolved" {
		t.Fatalf("second webhook message is %v, want resolved", st)
	}
	if !strings.Contains(sink.received()[1].Data, "[RESOLVED]") {
		t.Fatalf("second mail %q", sink.received()[1].Data)
	}
	if got := other.svc.Alerts(false); len(got) != 0 {
		t.Fatalf("active alerts after the resolution: %+v", got)
	}
	if got := other.svc.Alerts(true); len(got) != 1 || got[0].State != api.AlertResolved {
		t.Fatalf("alerts with resolved ones: %+v", got)
	}
	// Every attempt is in the replicated history.
	h := other.svc.History("ops")
	if len(h) != 2 || !h[0].OK || h[0].Node != other.name || h[1].Node != owner {
		t.Fatalf("history of ops: %+v", h)
	}
}
