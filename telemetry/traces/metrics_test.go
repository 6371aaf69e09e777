package traces

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	st := NewStore(Config{MaxSpans: 2})
	for i := range 3 {
		st.Add(span(i, time.Now(), time.Millisecond))
	}
	reg := prometheus.NewRegistry()
	s := &Service{store: st}
	if err := s.registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %+v", err, probs)
	}
	want := `
# HELP constellation_traces_spans Spans held in this node's span store.
# TYPE constellation_traces_spans gauge
constellation_traces_spans 2
# HELP constellation_traces_spans_evicted_total Spans dropped from the span store to keep its bound (oldest first).
# TYPE constellation_traces_spans_evicted_total counter
constellation_traces_spans_evicted_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// A member's answer is validated like API input.
func TestFromWireRefusesBadSpans(t *testing.T) {
	good := toWire(span(1, time.Unix(100, 0), time.Second))
	if _, err := fromWire(good); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.End = bad.Start - 1
	if _, err := fromWire(bad); err == nil {
		t.Fatal("end before start accepted")
	}
	bad = good
	bad.TraceID = "nothex"
	if _, err := fromWire(bad); err == nil {
		t.Fatal("bad trace ID accepted")
	}
}
