package logs

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	st := openTest(t, Config{})
	st.Append(Entry{Message: "a"}, Entry{Message: "b"})
	reg := prometheus.NewRegistry()
	s := &Service{store: st}
	if err := s.registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	s.m.searches.WithLabelValues("cluster").Inc()
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %+v", err, probs)
	}
	want := `
# HELP constellation_logs_entries_total Entries appended to this node's log store since it started.
# TYPE constellation_logs_entries_total counter
constellation_logs_entries_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "constellation_logs_entries_total"); err != nil {
		t.Fatal(err)
	}
}
