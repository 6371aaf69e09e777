package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// The waterfall indents children under their parent and scales bars to the trace.
func TestWaterfall(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sp := func(id, parent, svc, name string, off, d time.Duration, node string) api.Span {
		return api.Span{TraceID: "t", SpanID: id, ParentID: parent, Service: svc, Name: name, Start: t0.Add(off),
			End: t0.Add(off + d), DurationMs: float64(d.Milliseconds()), Node: node}
	}
	tr := api.Trace{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Nodes: []string{"n0", "n1"}, Spans: []api.Span{
		sp("c", "b", "bank", "authorize", 500*time.Millisecond, 500*time.Millisecond, "n0"),
		sp("a", "", "web", "POST /checkout", 0, 2*time.Second, "n0"),
		sp("b", "a", "checkout", "charge card", 0, time.Second, "n1"),
	}}
	tr.Spans[2].Status = "error"
	var out bytes.Buffer
	if err := printWaterfall(&out, tr, 20); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "2s  3 spans") {
		t.Fatalf("waterfall:\n%s", out.String())
	}
	want := []struct{ prefix, bar string }{
		{"web: POST /checkout", "|" + strings.Repeat("█", 20) + "|"},
		{"  checkout: charge card !", "|" + strings.Repeat("█", 10) + strings.Repeat(" ", 10) + "|"},
		{"    bank: authorize", "|" + strings.Repeat(" ", 5) + strings.Repeat("█", 5) + strings.Repeat(" ", 10) + "|"},
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i+1], w.prefix) || !strings.Contains(lines[i+1], w.bar) {
			t.Errorf("line %d = %q; want prefix %q and bar %q", i+1, lines[i+1], w.prefix, w.bar)
		}
	}
}

func TestParseSinceFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"15m": 15 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour} {
		if d, err := parseSinceFlag(in); err != nil || d != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	for _, bad := range []string{"", "-1h", "7x", "d", "1.5d"} {
		if _, err := parseSinceFlag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
