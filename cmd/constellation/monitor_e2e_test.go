package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// TestCLIMonitor drives the monitoring commands through the binary on two nodes: a
// cluster-wide PromQL query, a range query, bad PromQL, the dashboard, a forwarded
// profile, the unauthenticated --metrics-listen and bad monitoring flags.
func TestCLIMonitor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	portA, portB, mport := testutil.FreePort(t, nil), testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	startPeer(t, dirA, "--node", "alpha", "--cluster", "mon", "--bind", fmt.Sprintf("127.0.0.1:%d", portA),
		"--metrics-interval", "1s", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mport))
	startPeer(t, dirB, "--node", "beta", "--cluster", "mon", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA), "--metrics-interval", "1s")

	// Asked on alpha, the query sees beta's series too.
	waitJSON(t, 30*time.Second, "both nodes' series in one query", func(r result) bool {
		var res struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		}
		if json.Unmarshal([]byte(r.stdout), &res) != nil || len(res.Result) != 2 {
			return false
		}
		return res.Result[0].Metric["node"] != res.Result[1].Metric["node"]
	}, "--data-dir", dirA, "monitor", "query", "count by (node) (constellation_node_cpus)", "--json")

	r := run(t, "--data-dir", dirB, "monitor", "query", "avg by (node) (constellation_node_memory_used_percent)", "--range", "5m", "--step", "5s")
	if r.code != 0 || !strings.Contains(r.stdout, `node="alpha"`) || !strings.Contains(r.stdout, `node="beta"`) || !strings.Contains(r.stdout, "POINTS") {
		t.Fatalf("range query on beta: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "--data-dir", dirA, "monitor", "query", "--metric", "constellation_node_cpu_seconds_total", "--aggregation", "sum", "--group-by", "node", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"promql": "sum by (node) (rate(constellation_node_cpu_seconds_total[1m]))"`) {
		t.Fatalf("structured query: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Bad input.
	r = run(t, "--data-dir", dirA, "monitor", "query", "sum(rate(x[5m])")
	if r.code == 0 || !strings.Contains(r.stderr, "1:") || !strings.Contains(r.stderr, "parse error") {
		t.Fatalf("bad PromQL: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, "--data-dir", dirA, "monitor", "query", "up", "--range", "400d")
	if r.code == 0 || !strings.Contains(r.stderr, "retention") {
		t.Fatalf("range beyond retention: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, "peer", "--data-dir", t.TempDir(), "--metrics-retention", "5x")
	if r.code == 0 || !strings.Contains(r.stderr, "--metrics-retention") {
		t.Fatalf("bad --metrics-retention: exit %d\n%s", r.code, r.stderr)
	}

	// Dashboard: every field, both nodes healthy.
	r = waitJSON(t, 20*time.Second, "dashboard with 2 healthy nodes", func(r result) bool {
		return strings.Contains(r.stdout, `"nodes_total": 2`) && strings.Contains(r.stdout, `"nodes_healthy": 2`)
	}, "--data-dir", dirB, "monitor", "dashboard", "--json")
	for _, f := range []string{"health", "instances_total", "cpu_percent", "ram_percent", "network_in_mbps", "network_out_mbps"} {
		if !strings.Contains(r.stdout, `"`+f+`"`) {
			t.Errorf("dashboard lacks %s: %s", f, r.stdout)
		}
	}
	if r = run(t, "--data-dir", dirB, "monitor", "dashboard"); r.code != 0 || !strings.Contains(r.stdout, "nodes_healthy") {
		t.Fatalf("dashboard table: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// A heap profile of beta, asked on alpha.
	out := filepath.Join(t.TempDir(), "heap.pb.gz")
	r = run(t, "--data-dir", dirA, "debug", "pprof", "beta", "--profile", "heap", "--output", out)
	b, _ := os.ReadFile(out)
	if r.code != 0 || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("pprof of beta: exit %d, %d bytes\n%s", r.code, len(b), r.stderr)
	}

	// --metrics-listen: plain HTTP, no token.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `constellation_node_cpus{node="alpha"}`) {
		t.Fatalf("--metrics-listen: %d\n%.500s", resp.StatusCode, body)
	}
}
