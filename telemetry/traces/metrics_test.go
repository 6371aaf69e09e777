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
