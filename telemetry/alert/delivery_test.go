package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// newOne is a single node (no querier needed for channel tests).
func newOne(t *testing.T) *Service {
	t.Helper()
	c := newCluster(t, 1)
	return newTestNodes(t, c, newMembers("n1"), newClock(time.Now()), nil, "n1")[0].svc
}

// TestChannelRetries: a webhook that fails twice with 503 gets the message on the third
// attempt; a 400 is not retried; every attempt is in the history.
func TestChannelRetries(t *testing.T) {
	s := newOne(t)
	hk := newHook(t)
	if _, err := s.AddChannel(api.ChannelSpec{Name: "ops", Type: "alertmanager", URL: hk.srv.URL}); err != nil {
		t.Fatal(err)
	}
	hk.fails.Store(2)
	res, err := s.TestChannel(context.Background(), "ops")
	if err != nil || !res.OK || res.Attempts != 3 {
		t.Fatalf("test with 2 failures: %+v %v", res, err)
	}
	if got := hk.messages(); len(got) != 1 || got[0]["version"] != "4" {
		t.Fatalf("received %v", got)
	}
	h := s.History("ops")
	if len(h) != 3 || !h[0].OK || h[1].OK || h[2].OK || !strings.Contains(h[2].Error, "503") || h[2].Attempt != 1 {
		t.Fatalf("history %+v", h)
	}
	// A 4xx is permanent: one attempt.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "invalid routing key", http.StatusBadRequest)
	}))
	defer bad.Close()
	if _, err := s.AddChannel(api.ChannelSpec{Name: "pd", Type: "pagerduty", URL: bad.URL + "/v2/enqueue", RoutingKey: "x"}); err != nil {
		t.Fatal(err)
	}
	res, _ = s.TestChannel(context.Background(), "pd")
	if res.OK || res.Attempts != 1 || !strings.Contains(res.Error, "400") || !strings.Contains(res.Error, "invalid routing key") ||
		strings.Contains(res.Error, "/v2/enqueue") {
		t.Fatalf("permanent failure: %+v", res)
	}
	// The notification path (not a test) retries the same way and records the rule.
	hk.fails.Store(1)
	done := make(chan error, 1)
	s.jobs <- job{channel: "ops", msg: message{Node: "n1", Rule: "R", Status: api.AlertFiring, Alert: AlertRecord{Labels: map[string]string{"alertname": "R"}}}, done: done}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h := s.History("ops"); len(h) != 5 || h[0].Rule != "R" || !h[0].OK || h[1].OK {
		t.Fatalf("history %+v", h)
	}
}

// TestChannelTestUnreachable: `channel test` reports an SMTP host that does not answer,
// and one that does not offer STARTTLS when it is required.
func TestChannelTestUnreachable(t *testing.T) {
	s := newOne(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	if _, err := s.AddChannel(api.ChannelSpec{Name: "mail", Type: "email", SMTPHost: addr, From: "a@example.com", To: []string{"b@example.com"}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.TestChannel(context.Background(), "mail")
	if err != nil || res.OK || res.Attempts != 3 || !strings.Contains(res.Error, "smtp server "+addr+" does not answer") {
		t.Fatalf("unreachable SMTP: %+v %v", res, err)
	}
	// A server without STARTTLS: refused once (permanent) while starttls is required.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		c, err := plain.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 plain\r\n"))
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("250 plain\r\n"))
		_, _ = c.Read(buf)
	}()
	if _, err := s.AddChannel(api.ChannelSpec{Name: "mail2", Type: "email", SMTPHost: plain.Addr().String(), From: "a@example.com", To: []string{"b@example.com"}}); err != nil {
		t.Fatal(err)
	}
	res, _ = s.TestChannel(context.Background(), "mail2")
	if res.OK || res.Attempts != 1 || !strings.Contains(res.Error, "does not offer STARTTLS") {
		t.Fatalf("no STARTTLS: %+v", res)
	}
	if _, err := s.TestChannel(context.Background(), "nope"); err != ErrChannelNotFound {
		t.Fatalf("unknown channel: %v", err)
	}
}

// TestAPI drives the routes through the local API server: bad input is a 400 naming what
// is wrong and stores nothing; reads mask secrets.
func TestAPI(t *testing.T) {
	c := newCluster(t, 1)
	srv := httpapi.New(quietLog(), context.Background)
	s := New(context.Background(), Config{Name: "n1", Tick: time.Hour}, c.stores[0], newMembers("n1"), nil, srv, quietLog())
	defer s.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewBufferString(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	code, body := call("POST", "/v1/monitor/rules", `{"name":"HighCPU","expr":"avg(cpu_percent > 90"}`)
	if code != 400 || !strings.Contains(body, "1:21: parse error") {
		t.Fatalf("bad expr: %d %s", code, body)
	}
	code, body = call("POST", "/v1/monitor/rules", `{"name":"HighCPU","expr":"avg(cpu_percent) > 90","for":"5m","severity":"critical","channels":["ops"],"message":"CPU {{value}}%"}`)
	if code != 200 || !strings.Contains(body, `"owner": "n1"`) {
		t.Fatalf("add rule: %d %s", code, body)
	}
	code, body = call("GET", "/v1/monitor/rules", "")
	var rules []api.AlertRuleInfo
	if code != 200 || json.Unmarshal([]byte(body), &rules) != nil || len(rules) != 1 || rules[0].For != "5m0s" {
		t.Fatalf("rules: %d %s", code, body)
	}
	code, body = call("POST", "/v1/monitor/channels", `{"name":"ops","type":"webhook","url":"file:///etc/passwd"}`)
	if code != 400 || !strings.Contains(body, "http or https") {
		t.Fatalf("bad channel: %d %s", code, body)
	}
	code, _ = call("POST", "/v1/monitor/channels", `{"name":"pd","type":"pagerduty","routing_key":"SECRETKEY"}`)
	code2, body := call("GET", "/v1/monitor/channels", "")
	if code != 200 || code2 != 200 || strings.Contains(body, "SECRETKEY") || !strings.Contains(body, "events.pagerduty.com") {
		t.Fatalf("channels: %d %d %s", code, code2, body)
	}
	code, body = call("POST", "/v1/monitor/silences", `{"matchers":["alertname=HighCPU"],"duration":"2h","comment":"maintenance"}`)
	var sil api.SilenceInfo
	if code != 200 || json.Unmarshal([]byte(body), &sil) != nil || !sil.Active || sil.EndsAt.Sub(sil.StartsAt) != 2*time.Hour {
		t.Fatalf("silence: %d %s", code, body)
	}
	if code, body = call("DELETE", "/v1/monitor/silences/"+sil.ID, ""); code != 204 {
		t.Fatalf("rm silence: %d %s", code, body)
	}
	if code, body = call("DELETE", "/v1/monitor/silences/"+sil.ID, ""); code != 404 {
		t.Fatalf("rm silence twice: %d %s", code, body)
	}
	if code, body = call("DELETE", "/v1/monitor/rules/HighCPU", ""); code != 204 {
		t.Fatalf("rm rule: %d %s", code, body)
	}
	if code, body = call("GET", "/v1/monitor/rules/HighCPU", ""); code != 404 || !strings.Contains(body, "not_found") {
		t.Fatalf("removed rule: %d %s", code, body)
	}
	if code, body = call("GET", "/v1/monitor/alerts", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("alerts: %d %s", code, body)
	}
	if code, body = call("POST", "/v1/monitor/rules", `{"name":"x","expr":"up","bogus":1}`); code != 400 || !strings.Contains(body, "bogus") {
		t.Fatalf("unknown field: %d %s", code, body)
	}
}

// TestPagerDutyTestAndRemoval: `channel test` on PagerDuty triggers and resolves the same
// dedup key; removing a rule whose alert fired sends its resolution once.
func TestPagerDutyTestAndRemoval(t *testing.T) {
	db := newTestDB(t)
	t0 := time.Now().Truncate(time.Minute)
	db.fill(t, labels.FromStrings("__name__", "up", "instance", "db-1"), t0.Add(-time.Minute), t0.Add(time.Minute), 15*time.Second,
		func(time.Time) float64 { return 0 })
	c := newCluster(t, 1)
	s := newTestNodes(t, c, newMembers("n1"), newClock(t0), db.q, "n1")[0].svc
	pd := newHook(t)
	if _, err := s.AddChannel(api.ChannelSpec{Name: "page", Type: "pagerduty", URL: pd.srv.URL + "/v2/enqueue", RoutingKey: "rk"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.TestChannel(context.Background(), "page")
	if err != nil || !res.OK || res.Attempts != 2 {
		t.Fatalf("test: %+v %v", res, err)
	}
	got := pd.messages()
	if len(got) != 2 || got[0]["event_action"] != "trigger" || got[1]["event_action"] != "resolve" || got[0]["dedup_key"] != got[1]["dedup_key"] {
		t.Fatalf("test events %v", got)
	}
	if _, err := s.AddRule(api.AlertRuleSpec{Name: "Down", Expr: "up == 0", Severity: "critical", Channels: []string{"page"}}); err != nil {
		t.Fatal(err)
	}
	s.Tick()
	waitFor(t, "the trigger", 5*time.Second, func() bool { return len(pd.messages()) == 3 })
	if err := s.RemoveRule("Down"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolution", 5*time.Second, func() bool { return len(pd.messages()) == 4 })
	got = pd.messages()
	if got[2]["event_action"] != "trigger" || got[3]["event_action"] != "resolve" || got[2]["dedup_key"] != got[3]["dedup_key"] {
		t.Fatalf("rule events %v", got[2:])
	}
	s.Tick()
	time.Sleep(30 * time.Millisecond)
	if n := len(pd.messages()); n != 4 {
		t.Fatalf("%d events after the removal, want 4", n)
	}
	if err := s.RemoveRule("Down"); err != ErrRuleNotFound {
		t.Fatalf("second removal: %v", err)
	}
}
