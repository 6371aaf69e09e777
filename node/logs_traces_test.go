package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/telemetry/logs"
	"github.com/rads-lang/constellation/telemetry/traces"
)

// A line written on one node is found by a search on another within seconds; the
// node's own log is searchable; the limit applies after the merge; a bad query names
// the position; a dead node is a warning, not a failure.
func TestLogSearchAcrossNodes(t *testing.T) {
	ns := startCluster(t, 3, nil)
	testutil.WaitFor(t, 20*time.Second, "members converge", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	ctx := context.Background()
	c0 := api.NewClient(ns[0].cfg.DataDir, "", "")
	c2 := api.NewClient(ns[2].cfg.DataDir, "", "")

	if _, err := c2.SubmitLogs(ctx, api.LogSubmit{Level: "error", Message: "payment declined for order 77",
		Fields: map[string]json.RawMessage{"service": json.RawMessage(`"payment"`), "user_id": json.RawMessage(`123`)}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var res api.LogSearchResult
	testutil.WaitFor(t, 5*time.Second, "n0 finds the line written on n2", func() (bool, string) {
		var err error
		res, err = c0.SearchLogs(ctx, api.LogSearch{Query: "declined AND service=payment AND user_id:123", Since: time.Hour})
		if err != nil {
			return false, err.Error()
		}
		return len(res.Entries) == 1, fmt.Sprintf("%d entries, nodes %v, warnings %v", len(res.Entries), res.Nodes, res.Warnings)
	})
	t.Logf("found after %v", time.Since(t0))
	e := res.Entries[0]
	if e.Node != "n2" || e.Level != "error" || e.Fields["user_id"] != "123" || e.Stream != "api" || len(res.Nodes) != 3 {
		t.Fatalf("entry %+v, nodes %v", e, res.Nodes)
	}

	// The nodes' own logs ("node started" of each) merged, newest first, limit after merge.
	res, err := c0.SearchLogs(ctx, api.LogSearch{Query: `stream=node AND "node started"`, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 2 || res.Entries[0].Time.Before(res.Entries[1].Time) || res.Entries[0].Node != "n2" {
		t.Fatalf("limit 2 over 3 nodes: %+v", res.Entries)
	}

	// A bad query names the position.
	_, err = c0.SearchLogs(ctx, api.LogSearch{Query: `error AND "unclosed`})
	var re *api.RemoteError
	if !errors.As(err, &re) || re.Status != 400 || !strings.Contains(re.APIError.Error, "position 11") {
		t.Fatalf("bad query: %v", err)
	}

	// Follow on n0 sees a line written later on n1.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan api.LogEntry, 1)
	go c0.FollowLogs(fctx, api.LogSearch{Query: "level=warn AND tailme"}, func(e api.LogEntry) error {
		got <- e
		return errors.New("done")
	}, nil)
	c1 := api.NewClient(ns[1].cfg.DataDir, "", "")
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case e := <-got:
			if e.Node != "n1" || e.Message != "tailme please" {
				t.Fatalf("followed %+v", e)
			}
			break wait
		case <-tick.C:
			// the follow streams may still be opening: write until one arrives
			c1.SubmitLogs(ctx, api.LogSubmit{Level: "warn", Message: "tailme please"})
		case <-deadline:
			t.Fatal("follow saw nothing from n1")
		}
	}
	cancel()

	// A member that does not answer (its log protocol gone, the node still alive) is a
	// warning naming it; the others' entries still come.
	ns[1].lt.logs.Close()
	res, err = c0.SearchLogs(ctx, api.LogSearch{Query: "declined"})
	if err != nil || len(res.Entries) != 1 || slices.Contains(res.Nodes, "n1") || len(res.Warnings) != 1 ||
		!strings.Contains(res.Warnings[0], "node n1 did not answer") {
		t.Fatalf("search with a silent member: %v %+v", err, res)
	}
	// Kill n1; n0 still sees it alive for a moment or not at all: either way the search
	// answers.
	ns[1].Kill()
	res, err = c0.SearchLogs(ctx, api.LogSearch{Query: "declined"})
	if err != nil || len(res.Entries) != 1 || slices.Contains(res.Nodes, "n1") {
		t.Fatalf("search with a dead node: %v %+v", err, res)
	}
	t.Logf("with n1 killed: nodes %v, warnings %q", res.Nodes, res.Warnings)
}

// A 2-hop trace: a root span on n0 and its child on n1 (context passed across, as the
// mesh does), found from n2 by duration and shown whole.
func TestTraceTwoHopsFoundByDuration(t *testing.T) {
	ns := startCluster(t, 3, nil)
	testutil.WaitFor(t, 20*time.Second, "members converge", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	ctx := context.Background()
	start := time.Now().Add(-3 * time.Second)
	root, rootSpan := ns[0].TracerProvider().Tracer("test").Start(ctx, "POST /checkout",
		trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer))
	// n1 continues the trace from the propagated span context.
	remote := trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(root))
	_, child := ns[1].TracerProvider().Tracer("test").Start(remote, "charge card", trace.WithTimestamp(start.Add(100*time.Millisecond)),
		trace.WithSpanKind(trace.SpanKindClient))
	child.SetStatus(codes.Error, "card declined")
	child.End(trace.WithTimestamp(start.Add(1100 * time.Millisecond)))
	rootSpan.End(trace.WithTimestamp(start.Add(1300 * time.Millisecond)))
	// A short trace that must not match.
	_, short := ns[0].TracerProvider().Tracer("test").Start(ctx, "GET /health")
	short.End()

	c2 := api.NewClient(ns[2].cfg.DataDir, "", "")
	list, err := c2.Traces(ctx, api.TraceSearch{MinDuration: time.Second, Since: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Traces) != 1 {
		t.Fatalf("traces %+v", list)
	}
	tr := list.Traces[0]
	if tr.Spans != 2 || tr.Operation != "POST /checkout" || tr.Status != "error" || strings.Join(tr.Nodes, ",") != "n0,n1" ||
		tr.DurationMs < 1299 || tr.DurationMs > 1301 {
		t.Fatalf("summary %+v", tr)
	}
	full, err := c2.Trace(ctx, tr.TraceID)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Spans) != 2 || full.Spans[1].ParentID != full.Spans[0].SpanID || full.Spans[1].Node != "n1" {
		t.Fatalf("trace %+v", full)
	}

	// An instance-less admin submits a span through the API; bad spans are refused.
	c0 := api.NewClient(ns[0].cfg.DataDir, "", "")
	_, err = c0.SubmitSpans(ctx, api.Span{TraceID: tr.TraceID, SpanID: "00f067aa0ba902b7", ParentID: full.Spans[1].SpanID,
		Service: "bank", Name: "authorize", Start: start.Add(200 * time.Millisecond), DurationMs: 500})
	if err != nil {
		t.Fatal(err)
	}
	if full, _ = c2.Trace(ctx, tr.TraceID); len(full.Spans) != 3 {
		t.Fatalf("after submit: %d spans", len(full.Spans))
	}
	for _, bad := range []api.Span{
		{TraceID: "xyz", SpanID: "00f067aa0ba902b7", Name: "a", Start: start},
		{TraceID: tr.TraceID, SpanID: "0000000000000000", Name: "a", Start: start},
		{TraceID: tr.TraceID, SpanID: "00f067aa0ba902b8", Name: "", Start: start},
		{TraceID: tr.TraceID, SpanID: "00f067aa0ba902b8", Name: "a", Start: start, End: start.Add(-time.Second)},
	} {
		var re *api.RemoteError
		if _, err := c0.SubmitSpans(ctx, bad); !errors.As(err, &re) || re.Status != 400 {
			t.Fatalf("bad span %+v: %v", bad, err)
		}
	}
}

// An instance submits log entries and spans through its own API socket: they carry its
// name (whatever the body claims), and searching stays an admin's.
func TestInstanceSubmitsLogsAndSpans(t *testing.T) {
	ns := startSchedCluster(t, 1, nil)
	n0 := ns[0]
	ctx := t.Context()
	mustNamespace(t, n0.Node, "retail")
	if _, err := n0.instances.Create(ctx, &api.CreateRequest{Name: "shop", Command: []string{"true"}, Namespace: "retail"}); err != nil {
		t.Fatal(err)
	}
	c := newInstClient(t, n0, "shop")
	st, out := c.call("POST", "/v1/monitor/logs", `{"level":"info","message":"User logged in","fields":{"user_id":123,"vip":true,"name":"Ann"},"instance":"someone-else"}`)
	if st != 200 || !strings.Contains(out, `"accepted": 1`) {
		t.Fatalf("submit: %d %s", st, out)
	}
	st, out = c.call("POST", "/v1/monitor/spans", `{"spans":[{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","name":"GET /","start":"2026-01-01T00:00:00Z","duration_ms":1500}]}`)
	if st != 200 {
		t.Fatalf("spans: %d %s", st, out)
	}
	if st, _ := c.call("GET", "/v1/monitor/logs?q=logged", ""); st != 403 {
		t.Fatalf("an instance searched the logs: %d", st)
	}
	// Bad bodies name what is wrong.
	for body, want := range map[string]string{
		`{"message":""}`:                              "no entry",
		`{"level":"loud","message":"x"}`:              `invalid \"level\"`,
		`{"message":"x","fields":{"a b":1}}`:          "field key",
		`{"entries":[{"message":"x"}],"message":"y"}`: "not both",
	} {
		if st, out := c.call("POST", "/v1/monitor/logs", body); st != 400 || !strings.Contains(out, want) {
			t.Errorf("%s: %d %s; want 400 naming %q", body, st, out, want)
		}
	}
	r, err := n0.LogStore().Search(ctx, logsRequest(t, "user_id=123 AND vip=true AND name:ann"))
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("search: %v %+v", err, r)
	}
	if e := r.Entries[0]; e.Instance != "shop" || e.Namespace != "retail" || e.Stream != "api" || e.Node != "n0" {
		t.Fatalf("entry %+v: want it stamped with the calling instance", e)
	}
	spans := n0.SpanStore().Find(traces.Query{MinDuration: time.Second})
	if len(spans) != 1 || spans[0].Instance != "shop" || spans[0].Service != "shop" {
		t.Fatalf("spans %+v", spans)
	}
}

func logsRequest(t *testing.T, q string) logs.Request {
	t.Helper()
	query, err := logs.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	return logs.Request{Query: query, Limit: 10}
}

// A follow started before a node joins sees that node's lines once it is alive.
func TestLogFollowPicksUpJoiningNode(t *testing.T) {
	n0 := startTestNode(t, nodeConfig(t, "n0"))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := make(chan api.LogEntry, 1)
	c0 := api.NewClient(n0.cfg.DataDir, "", "")
	go c0.FollowLogs(ctx, api.LogSearch{Query: "latecomer"}, func(e api.LogEntry) error {
		select {
		case got <- e:
		default:
		}
		return nil
	}, nil)
	cfg := nodeConfig(t, "n1")
	cfg.Join = []string{joinAddr(t, n0.Node)}
	n1 := startTestNode(t, cfg)
	c1 := api.NewClient(n1.cfg.DataDir, "", "")
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e := <-got:
			if e.Node != "n1" {
				t.Fatalf("followed %+v", e)
			}
			return
		case <-tick.C:
			c1.SubmitLogs(ctx, api.LogSubmit{Message: "latecomer here"})
		case <-ctx.Done():
			t.Fatal("the follow never saw the node that joined")
		}
	}
}
