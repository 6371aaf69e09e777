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

// A member's answer is validated like API input: an oversized message or a bad field key
// is refused.
func TestFromWireRefusesBadEntries(t *testing.T) {
	if _, err := fromWire(wireEntry{T: 1, Message: strings.Repeat("x", MaxMessageBytes+1)}); err == nil {
		t.Fatal("oversized message accepted")
	}
	if _, err := fromWire(wireEntry{T: 1, Message: "x", Fields: map[string]string{"bad key": "v"}}); err == nil {
		t.Fatal("bad field key accepted")
	}
	if e, err := fromWire(toWire(Entry{Message: "ok", Fields: map[string]string{"k": "v"}})); err != nil || e.Fields["k"] != "v" {
		t.Fatalf("round trip: %+v %v", e, err)
	}
}
