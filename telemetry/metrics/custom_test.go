package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCustomCardinality: an instance that invents a new tag value per push (a user ID)
// is stopped at its series limit with a clear error, loses nothing it had, and other
// instances are not affected.
func TestCustomCardinality(t *testing.T) {
	c := NewCustom()
	c.MaxSeries = 10
	for i := range 10 {
		if err := c.Push("web", "default", []Sample{{Name: "hits", Kind: KindCounter, Value: 1, Tags: map[string]string{"user": fmt.Sprint(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Push("web", "default", []Sample{{Name: "hits", Kind: KindCounter, Value: 1, Tags: map[string]string{"user": "10"}}})
	if !errors.Is(err, ErrTooManySeries) || !strings.Contains(err.Error(), "instance web has 10 custom series and this push would add more: the limit is 10") {
		t.Fatalf("11th series: %v", err)
	}
	// An existing series still takes values; a batch with one new series records nothing.
	if err := c.Push("web", "default", []Sample{{Name: "hits", Kind: KindCounter, Value: 2, Tags: map[string]string{"user": "3"}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Push("web", "default", []Sample{{Name: "hits", Kind: KindCounter, Value: 5, Tags: map[string]string{"user": "4"}},
		{Name: "other", Kind: KindGauge, Value: 1}}); !errors.Is(err, ErrTooManySeries) {
		t.Fatalf("batch past the limit: %v", err)
	}
	if err := c.Push("api", "prod", []Sample{{Name: "active_users", Value: 1234}}); err != nil {
		t.Fatalf("another instance: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if n, err := testutil.GatherAndCount(reg, "hits_total"); err != nil || n != 10 {
		t.Fatalf("hits_total series: %d %v", n, err)
	}
	want := `
# HELP active_users Custom metric pushed by instances (POST /v1/monitor/metrics).
# TYPE active_users gauge
active_users{instance="api",namespace="prod"} 1234
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "active_users"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP hits_total Custom metric pushed by instances (POST /v1/monitor/metrics).
# TYPE hits_total counter
hits_total{instance="web",namespace="default",user="3"} 3
`), "hits_total"); err == nil {
		t.Fatal("compare with one series should differ") // sanity: the compare can fail
	}
	// A removed instance's series go at the next scrape.
	c.Alive = func(name string) bool { return name != "web" }
	if n, _ := testutil.GatherAndCount(reg, "hits_total"); n != 0 {
		t.Fatalf("series of a removed instance: %d", n)
	}
}

// TestCustomBadInput: every malformed sample is refused with a message naming it.
func TestCustomBadInput(t *testing.T) {
	c := NewCustom()
	for _, tc := range []struct {
		s    Sample
		want string
	}{
		{Sample{Name: "1abc", Kind: KindGauge}, "letters, digits"},
		{Sample{Name: "constellation_x", Kind: KindGauge}, "reserved"},
		{Sample{Name: "go_x", Kind: KindGauge}, "reserved"},
		{Sample{Name: "x", Kind: "summary"}, "want gauge, counter or histogram"},
		{Sample{Name: "x", Kind: KindCounter, Value: -1}, "only goes up"},
		{Sample{Name: "x", Kind: KindGauge, Tags: map[string]string{"node": "a"}}, "set by the node"},
		{Sample{Name: "x", Kind: KindGauge, Tags: map[string]string{"a-b": "a"}}, "tag"},
		{Sample{Name: "x", Kind: KindGauge, Tags: map[string]string{"a": strings.Repeat("v", 300)}}, "longer than"},
	} {
		err := c.Push("i", "", []Sample{tc.s})
		if !errors.Is(err, ErrBadMetric) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	if err := c.Push("i", "", []Sample{{Name: "x", Kind: KindGauge, Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Push("j", "", []Sample{{Name: "x", Kind: KindHistogram, Value: 1}}); !errors.Is(err, ErrBadMetric) || !strings.Contains(err.Error(), "is a gauge") {
		t.Fatalf("kind conflict: %v", err)
	}
}

type fakeInstances []InstanceSample

func (f fakeInstances) InstanceSamples() []InstanceSample { return f }

// TestInstanceCollector: the collector reports each instance's series with its labels.
func TestInstanceCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewInstanceCollector(fakeInstances{
		{Name: "web-1", Namespace: "prod", Deployment: "web", Running: true, CPUSeconds: 12.5, RAMBytes: 1 << 20, PIDs: 3, Restarts: 2, OOMKills: 1, ExitCode: 137, HasExit: true},
		{Name: "batch", Namespace: "default"},
	}))
	want := `
# HELP constellation_instance_cpu_seconds_total CPU time used by the instance.
# TYPE constellation_instance_cpu_seconds_total counter
constellation_instance_cpu_seconds_total{deployment="",instance="batch",namespace="default"} 0
constellation_instance_cpu_seconds_total{deployment="web",instance="web-1",namespace="prod"} 12.5
# HELP constellation_instance_last_exit_code Exit status of the instance's last run (signal number when killed).
# TYPE constellation_instance_last_exit_code gauge
constellation_instance_last_exit_code{deployment="web",instance="web-1",namespace="prod"} 137
# HELP constellation_instance_oom_kills_total Runs of the instance ended by the OOM killer, seen by this node since it started.
# TYPE constellation_instance_oom_kills_total counter
constellation_instance_oom_kills_total{deployment="",instance="batch",namespace="default"} 0
constellation_instance_oom_kills_total{deployment="web",instance="web-1",namespace="prod"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "constellation_instance_cpu_seconds_total",
		"constellation_instance_last_exit_code", "constellation_instance_oom_kills_total"); err != nil {
		t.Fatal(err)
	}
}

// TestNodeCollectorProc: the node collector reads a fake /proc; CPU percent is the busy
// share between two scrapes.
func TestNodeCollectorProc(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := writeFile(dir+"/"+name, s); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n")
	write("meminfo", "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n")
	write("loadavg", "0.50 0.25 0.10 1/100 1234\n")
	write("net/dev", "Inter-|   Receive\n face |bytes packets\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n")
	c := NewNodeCollector(dir)
	c.Proc = dir
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	write("stat", "cpu  200 0 200 1400 0 0 0 0 0 0\n") // +200 busy of +800
	want := `
# HELP constellation_node_cpu_percent CPU busy over the last scrape interval, percent of all cores (0-100).
# TYPE constellation_node_cpu_percent gauge
constellation_node_cpu_percent 25
# HELP constellation_node_memory_used_percent Memory in use, percent of total (100 - available/total*100).
# TYPE constellation_node_memory_used_percent gauge
constellation_node_memory_used_percent 75
# HELP constellation_node_network_receive_bytes_total Bytes received on every interface but loopback.
# TYPE constellation_node_network_receive_bytes_total counter
constellation_node_network_receive_bytes_total 1000
# HELP constellation_node_load1 Load average over 1 minute.
# TYPE constellation_node_load1 gauge
constellation_node_load1 0.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "constellation_node_cpu_percent",
		"constellation_node_memory_used_percent", "constellation_node_network_receive_bytes_total", "constellation_node_load1"); err != nil {
		t.Fatal(err)
	}
}
