package telemetry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestStructured: the seed's structured query form becomes the PromQL documented in
// docs/monitor.md; bad fields name what is wrong.
func TestStructured(t *testing.T) {
	for _, tc := range []struct {
		metric, agg string
		by          []string
		want        string
	}{
		{"constellation_node_cpu_percent", "avg", []string{"node"}, "avg by (node) (constellation_node_cpu_percent)"},
		{"constellation_node_cpu_percent", "", nil, "constellation_node_cpu_percent"},
		{"api_requests_total", "sum", []string{"instance", "route"}, "sum by (instance, route) (rate(api_requests_total[1m]))"},
		{"request_duration", "p95", nil, "quantile (0.95, request_duration)"},
		{"x", "max", nil, "max (x)"},
	} {
		got, err := Structured(tc.metric, tc.agg, tc.by, time.Minute)
		if err != nil || got != tc.want {
			t.Errorf("%s %s %v: %q %v, want %q", tc.metric, tc.agg, tc.by, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		metric, agg string
		by          []string
		want        string
	}{
		{"x{a=\"b\"}", "avg", nil, "metric name"},
		{"x", "median", nil, "want one of avg"},
		{"x", "", []string{"node"}, "needs an aggregation"},
		{"x", "sum", []string{"a-b"}, "group_by label"},
	} {
		_, err := Structured(tc.metric, tc.agg, tc.by, time.Minute)
		if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s %v: %v, want %q", tc.metric, tc.agg, tc.by, err, tc.want)
		}
	}
}

func TestParseDurationTime(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "1h30m": 90 * time.Minute, "15": 15 * time.Second, "0.5": 500 * time.Millisecond} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1h", "5x", "0"} {
		if _, err := ParseDuration(bad); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%q accepted", bad)
		}
	}
	if ts, err := ParseTime("1700000000.5", time.Time{}); err != nil || ts.UnixMilli() != 1700000000500 {
		t.Errorf("unix seconds: %v %v", ts, err)
	}
	if _, err := ParseTime("yesterday", time.Time{}); !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("bad time: %v", err)
	}
}
