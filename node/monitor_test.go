package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// promGet calls the Prometheus-compatible API of n and decodes the envelope.
func promGet(t *testing.T, n *Node, path string, q url.Values) (int, api.PromResponse) {
	t.Helper()
	resp, err := unixHTTP(n).Get("http://unix" + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pr api.PromResponse
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, pr
}

func vectorOf(t *testing.T, pr api.PromResponse) map[string]float64 {
	t.Helper()
	var d api.PromQueryData
	if err := json.Unmarshal(pr.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.ResultType != "vector" {
		t.Fatalf("result type %s, want vector", d.ResultType)
	}
	var ss []api.PromSeries
	if err := json.Unmarshal(d.Result, &ss); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, s := range ss {
		out[s.Metric["node"]] = s.Value.V
	}
	return out
}

// TestMonitorClusterQuery: a PromQL query on any of 3 nodes sees every node's series,
// merged, and all three answer the same; a node whose store does not answer is a
// warning, not an error; bad PromQL names the position; a range beyond the retention
// says so.
func TestMonitorClusterQuery(t *testing.T) {
	ns := startCluster(t, 3, nil)
	testutil.WaitFor(t, 20*time.Second, "all nodes alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	// In the future: the sampler already appended "now" (a store takes no older samples).
	t0 := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	for _, n := range ns {
		for i := 6; i >= 0; i-- {
			if err := n.Telemetry().SampleNow(t0.Add(-time.Duration(i) * 10 * time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	q := url.Values{"query": {`count by (node) (constellation_node_cpus)`}, "time": {fmt.Sprint(t0.Unix())}}
	var first map[string]float64
	for _, n := range ns {
		code, pr := promGet(t, n.Node, "/api/v1/query", q)
		if code != 200 || pr.Status != "success" {
			t.Fatalf("%s: %d %+v", n.cfg.Node, code, pr)
		}
		got := vectorOf(t, pr)
		if len(got) != 3 || got["n0"] != 1 || got["n1"] != 1 || got["n2"] != 1 {
			t.Fatalf("%s answers %v, want one series of each of n0, n1, n2", n.cfg.Node, got)
		}
		if first != nil && !mapsEqual(first, got) {
			t.Fatalf("%s answers %v, another node %v", n.cfg.Node, got, first)
		}
		first = got
	}
	// A range query over the samples: 7 points per node.
	code, pr := promGet(t, ns[1].Node, "/api/v1/query_range", url.Values{"query": {`constellation_node_cpus`},
		"start": {fmt.Sprint(t0.Add(-time.Minute).Unix())}, "end": {fmt.Sprint(t0.Unix())}, "step": {"10s"}})
	if code != 200 {
		t.Fatalf("query_range: %d %+v", code, pr)
	}
	var d api.PromQueryData
	_ = json.Unmarshal(pr.Data, &d)
	var ss []api.PromSeries
	_ = json.Unmarshal(d.Result, &ss)
	if d.ResultType != "matrix" || len(ss) != 3 {
		t.Fatalf("query_range: %s with %d series, want a matrix of 3", d.ResultType, len(ss))
	}
	for _, s := range ss {
		if len(s.Values) != 7 {
			t.Errorf("series of %s has %d points, want 7", s.Metric["node"], len(s.Values))
		}
	}
	// Label values across the cluster.
	code, pr = promGet(t, ns[2].Node, "/api/v1/label/node/values", url.Values{"start": {fmt.Sprint(t0.Add(-time.Minute).Unix())}, "end": {fmt.Sprint(t0.Unix())}})
	var vals []string
	_ = json.Unmarshal(pr.Data, &vals)
	if code != 200 || !slices.Equal(vals, []string{"n0", "n1", "n2"}) {
		t.Fatalf("label values: %d %v (warnings %q)", code, vals, pr.Warnings)
	}

	// Bad PromQL: 400 naming the position.
	code, pr = promGet(t, ns[0].Node, "/api/v1/query", url.Values{"query": {`avg by (node) (constellation_node_cpus`}})
	if code != 400 || pr.ErrorType != "bad_data" || !strings.Contains(pr.Error, "1:") {
		t.Fatalf("bad PromQL: %d %+v, want 400 bad_data naming line:column", code, pr)
	}
	// Beyond the retention (30 days by default).
	code, pr = promGet(t, ns[0].Node, "/api/v1/query_range", url.Values{"query": {`up`},
		"start": {fmt.Sprint(t0.Add(-40 * 24 * time.Hour).Unix())}, "end": {fmt.Sprint(t0.Unix())}, "step": {"1h"}})
	if code != 400 || !strings.Contains(pr.Error, "retention") {
		t.Fatalf("range beyond retention: %d %+v", code, pr)
	}

	// n2's store stops answering (its telemetry closes; the node stays alive): n0's
	// answer has n0 and n1, and a warning naming n2.
	ns[2].Telemetry().Close()
	code, pr = promGet(t, ns[0].Node, "/api/v1/query", q)
	if code != 200 {
		t.Fatalf("with n2 silent: %d %+v", code, pr)
	}
	got := vectorOf(t, pr)
	if len(got) != 2 || got["n0"] != 1 || got["n1"] != 1 {
		t.Fatalf("with n2 silent: %v, want n0 and n1", got)
	}
	if len(pr.Warnings) == 0 || !strings.Contains(strings.Join(pr.Warnings, " "), "n2") {
		t.Fatalf("with n2 silent: warnings %q, want one naming n2", pr.Warnings)
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMonitorMetricsPromtool: GET /metrics of a running node passes `promtool check
// metrics` (Prometheus' own linter), and the key series are there with sane values.
func TestMonitorMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus); .ci/run does")
	}
	n := startTestNode(t, nodeConfig(t, "p0"))
	// A custom metric of the node itself, as an admin pushes it.
	body := `{"metrics":[{"name":"active_users","value":1234},{"name":"api_requests","kind":"counter","value":3,"tags":{"route":"/x"}},{"name":"request_duration_seconds","kind":"histogram","value":0.2}]}`
	resp, err := unixHTTP(n.Node).Post("http://unix/v1/monitor/metrics", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("push: %d %s", resp.StatusCode, b)
	}
	resp, err = unixHTTP(n.Node).Get("http://unix/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	file := filepath.Join(t.TempDir(), "metrics.txt")
	if err := os.WriteFile(file, exp, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(exp))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	text := string(exp)
	for _, want := range []string{
		`constellation_node_cpus{node="p0"}`, `constellation_node_memory_total_bytes{node="p0"}`,
		`constellation_node_disk_total_bytes{node="p0"}`, `constellation_node_load1{node="p0"}`,
		`constellation_node_network_receive_bytes_total{node="p0"}`, `constellation_p2p_admitted_peers{node="p0"}`,
		`constellation_state_keys{collection="nodes",node="p0"} 1`, `constellation_state_delta_bytes_count{node="p0"}`, `constellation_instances{node="p0"} 0`,
		`go_goroutines{node="p0"}`, `process_resident_memory_bytes{node="p0"}`, `libp2p_rcmgr_limit{node="p0",resource="memory",scope="system"}`,
		`active_users{instance="",namespace="",node="p0"} 1234`, `api_requests_total{instance="",namespace="",node="p0",route="/x"} 3`,
		`request_duration_seconds_count{instance="",namespace="",node="p0"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", text)
	}
}

// TestMonitorSurvivesRestart: samples written before a restart are queried after it.
func TestMonitorSurvivesRestart(t *testing.T) {
	cfg := nodeConfig(t, "r0")
	n := startTestNode(t, cfg)
	t0 := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	for i := range 3 {
		if err := n.Telemetry().SampleNow(t0.Add(time.Duration(i) * 10 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := startTestNode(t, cfg)
	code, pr := promGet(t, n2.Node, "/api/v1/query_range", url.Values{"query": {`constellation_node_cpus`},
		"start": {fmt.Sprint(t0.Unix())}, "end": {fmt.Sprint(t0.Add(20 * time.Second).Unix())}, "step": {"10s"}})
	var d api.PromQueryData
	_ = json.Unmarshal(pr.Data, &d)
	var ss []api.PromSeries
	_ = json.Unmarshal(d.Result, &ss)
	if code != 200 || len(ss) != 1 || len(ss[0].Values) != 3 {
		t.Fatalf("after restart: %d %s", code, pr.Data)
	}
}
