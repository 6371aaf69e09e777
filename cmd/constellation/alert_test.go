package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/telemetry/alert"
)

type oneMember struct{}

func (oneMember) Nodes() []api.NodeInfo {
	return []api.NodeInfo{{Name: "n1", Status: api.StatusAlive, Self: true}}
}
func (oneMember) Settled() bool { return true }

type nopPublisher struct{}

func (nopPublisher) Publish([]byte) {}

// TestMonitorAlertCLI drives the monitor commands against the alerting service behind a
// TLS API: bad input is refused with what is wrong, a rule fires over a TSDB, notifies a
// webhook, shows in `monitor alerts`, secrets stay hidden, channel test reports an SMTP
// host that does not answer.
func TestMonitorAlertCLI(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.Open(state.Options{Path: filepath.Join(t.TempDir(), "state.db"), Cluster: "c", Fresh: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load([]byte("n1"), nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	st.Start()
	defer st.Close(true)
	db, err := tsdb.Open(t.TempDir(), log, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	app := db.Appender(context.Background())
	for ts := now.Add(-5 * time.Minute); ts.Before(now.Add(time.Minute)); ts = ts.Add(15 * time.Second) {
		if _, err := app.Append(0, labels.FromStrings("__name__", "cpu_percent", "instance", "web-1"), ts.UnixMilli(), 97); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	q := alert.EngineQuerier{Engine: promql.NewEngine(promql.EngineOpts{Logger: log, MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute}), Queryable: db}
	srv := httpapi.New(log, context.Background)
	svc := alert.New(context.Background(), alert.Config{Name: "n1", Tick: time.Hour, Retry: alert.Retry{Attempts: 2, Base: time.Millisecond}}, st, oneMember{}, q, srv, log)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ts := httptest.NewTLSServer(srv.Handler())
	defer ts.Close()
	t.Setenv("CONSTELLATION_API_FINGERPRINT", api.Fingerprint(ts.Certificate().Raw))
	addr := strings.TrimPrefix(ts.URL, "https://")
	var hooked atomic.Int32
	var lastBody atomic.Value
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		lastBody.Store(m)
		hooked.Add(1)
	}))
	defer hook.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadSMTP := ln.Addr().String()
	ln.Close()

	cli := func(args ...string) (string, error) { return runCLI(t, append(args, "--api", addr)...) }
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"monitor", "alert", "add", "HighCPU", "--expr", "avg(cpu_percent > 90"}, "1:21: parse error"},
		{[]string{"monitor", "alert", "add", "HighCPU", "--expr", "x", "--for", "soon"}, "want a duration such as 90s"},
		{[]string{"monitor", "alert", "add", "HighCPU", "--expr", "x", "--threshold", "3"}, "need --kind anomaly"},
		{[]string{"monitor", "alert", "add", "HighCPU", "--expr", "x", "--label", "oops"}, "KEY=VALUE"},
		{[]string{"monitor", "channel", "add", "ops", "--type", "webhook", "--url", "gopher://example.com"}, "http or https"},
		{[]string{"monitor", "silence", "add", "--match", "alertname", "--for", "2h"}, "want name=value"},
		{[]string{"monitor", "alert", "rm", "nope"}, "not found"},
	} {
		if out, err := cli(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v (%s), want an error containing %q", c.args, err, out, c.want)
		}
	}
	if out, err := cli("monitor", "alert", "list"); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("bad input stored something: %v\n%s", err, out)
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	mustCLI("monitor", "channel", "add", "ops", "--type", "webhook", "--url", hook.URL+"/hook")
	mustCLI("monitor", "channel", "add", "pd", "--type", "pagerduty", "--routing-key", "TOPSECRETKEY")
	mustCLI("monitor", "channel", "add", "mail", "--type", "email", "--smtp-host", deadSMTP, "--from", "a@example.com", "--to", "b@example.com",
		"--username", "u", "--password", "HUNTER2")
	if out := mustCLI("monitor", "channel", "list", "--json"); strings.Contains(out, "TOPSECRETKEY") || strings.Contains(out, "HUNTER2") {
		t.Fatalf("channel list shows a secret:\n%s", out)
	}
	if out := mustCLI("monitor", "channel", "test", "ops"); !strings.Contains(out, "delivered over ops") || hooked.Load() != 1 {
		t.Fatalf("channel test ops: %s (hook got %d)", out, hooked.Load())
	}
	if _, err := cli("monitor", "channel", "test", "mail"); err == nil || !strings.Contains(err.Error(), "smtp server "+deadSMTP+" does not answer") {
		t.Fatalf("channel test mail: %v", err)
	}
	if out := mustCLI("monitor", "channel", "history", "mail"); strings.Count(out, "does not answer") != 2 {
		t.Fatalf("history of mail:\n%s", out)
	}
	mustCLI("monitor", "alert", "add", "HighCPU", "--expr", "cpu_percent > 90", "--severity", "critical", "--channel", "ops",
		"--message", "CPU {{value}}% on {{instance}}")
	svc.Tick()
	out := mustCLI("monitor", "alerts")
	if !strings.Contains(out, "HighCPU") || !strings.Contains(out, "firing") || !strings.Contains(out, "CPU 97% on web-1") {
		t.Fatalf("monitor alerts:\n%s", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for hooked.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if m, _ := lastBody.Load().(map[string]any); hooked.Load() != 2 || m["status"] != "firing" || m["message"] != "CPU 97% on web-1" {
		t.Fatalf("webhook got %d messages, last %v", hooked.Load(), lastBody.Load())
	}
	if out := mustCLI("monitor", "alert", "list"); !strings.Contains(out, "HighCPU") || !strings.Contains(out, "n1") {
		t.Fatalf("alert list:\n%s", out)
	}
	id := strings.TrimSpace(strings.Split(mustCLI("monitor", "silence", "add", "--match", "alertname=HighCPU", "--for", "2h", "--comment", "maintenance"), "\n")[0])
	if out := mustCLI("monitor", "silence", "list"); !strings.Contains(out, id) || !strings.Contains(out, "maintenance") {
		t.Fatalf("silence list:\n%s", out)
	}
	mustCLI("monitor", "silence", "rm", id)
	mustCLI("monitor", "alert", "rm", "HighCPU")
	if out := mustCLI("monitor", "alerts", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("alerts after rm:\n%s", out)
	}
}
