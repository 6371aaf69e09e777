package node

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestMonitorInstancePush: an instance pushes custom metrics through its loopback API;
// they are exposed with its instance and namespace labels; it cannot push as another
// instance; past its series limit it gets 429 naming the limit.
func TestMonitorInstancePush(t *testing.T) {
	ns := startSchedCluster(t, 1, nil)
	n := ns[0]
	ctx := t.Context()
	for _, name := range []string{"app", "other"} {
		if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: name, Command: []string{"true"}}); err != nil {
			t.Fatal(err)
		}
	}
	c := newInstClient(t, n, "app")
	code, body := c.call("POST", "/v1/monitor/metrics", `{"metrics":[{"name":"active_users","value":1234},{"name":"api_requests","kind":"counter","value":2,"tags":{"route":"/login"}}]}`)
	if code != 200 || !strings.Contains(body, `"series": 2`) {
		t.Fatalf("push: %d %s", code, body)
	}
	if code, body = c.call("POST", "/v1/monitor/metrics", `{"instance":"other","metrics":[{"name":"x","value":1}]}`); code != 403 {
		t.Fatalf("push as another instance: %d %s, want 403", code, body)
	}
	if code, body = c.call("POST", "/v1/monitor/metrics", `{"metrics":[{"name":"constellation_fake","value":1}]}`); code != 400 || !strings.Contains(body, "reserved") {
		t.Fatalf("reserved name: %d %s, want 400", code, body)
	}
	// Past the limit (1000 series): one push of 1000 new tag values.
	var b strings.Builder
	b.WriteString(`{"metrics":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"per_user","value":1,"tags":{"user":"%d"}}`, i)
	}
	b.WriteString(`]}`)
	if code, body = c.call("POST", "/v1/monitor/metrics", b.String()); code != 429 || !strings.Contains(body, "instance app has 2 custom series and this push would add more: the limit is 1000") {
		t.Fatalf("past the limit: %d %s, want 429 naming the limit", code, body)
	}
	resp, err := unixHTTP(n.Node).Get("http://unix/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`active_users{instance="app",namespace="default",node="n0"} 1234`,
		`api_requests_total{instance="app",namespace="default",node="n0",route="/login"} 2`,
		`constellation_instance_up{deployment="",instance="app",namespace="default",node="n0"}`,
		`constellation_instances{node="n0"} 2`,
		`constellation_sandbox_start_seconds_count{node="n0",phase="create"} 2`,
	} {
		if !strings.Contains(string(exp), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(exp), "per_user") {
		t.Error("the refused push recorded series")
	}
}

// TestMonitorPprofForwarded: a profile of another node, asked on this one, arrives as a
// gzipped protobuf; an unknown profile is a 400 naming the known ones.
func TestMonitorPprofForwarded(t *testing.T) {
	ns := startCluster(t, 2, nil)
	testutil.WaitFor(t, 20*time.Second, "both nodes alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	cl := unixHTTP(ns[0].Node)
	resp := get(t, cl, "http://unix/v1/debug/pprof/n1?profile=goroutine&seconds=1")
	if resp.code != 200 || len(resp.body) < 2 || resp.body[0] != 0x1f || resp.body[1] != 0x8b {
		t.Fatalf("goroutine profile of n1: %d %q", resp.code, resp.body[:min(len(resp.body), 200)])
	}
	if r := get(t, cl, "http://unix/v1/debug/pprof/n1?profile=nope"); r.code != 400 || !strings.Contains(string(r.body), "cpu, heap, goroutine, mutex") {
		t.Fatalf("unknown profile: %d %s", r.code, r.body)
	}
}

type httpResp struct {
	code int
	body []byte
}

func get(t *testing.T, cl interface {
	Get(string) (*http.Response, error)
}, url string) *httpResp {
	t.Helper()
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &httpResp{resp.StatusCode, b}
}

// TestMonitorScrapesInstance: an instance created with metrics_port has its own /metrics
// scraped into the store at each sample, with its instance label; bad ports are refused.
func TestMonitorScrapesInstance(t *testing.T) {
	ns := startSchedCluster(t, 1, nil)
	n := ns[0]
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "# TYPE app_requests_total counter\napp_requests_total{route=\"/a\"} 7\n")
	}))
	defer exporter.Close()
	_, portS, _ := net.SplitHostPort(strings.TrimPrefix(exporter.URL, "http://"))
	port, _ := strconv.Atoi(portS)
	ctx := t.Context()
	if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: "exporter", Command: []string{"true"}, Network: "host", MetricsPort: port}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []api.CreateRequest{
		{Name: "bad1", Command: []string{"true"}, MetricsPort: 70000},
		{Name: "bad2", Command: []string{"true"}, Network: "none", MetricsPort: 9100},
	} {
		if _, err := n.instances.Create(ctx, &bad); err == nil || !strings.Contains(err.Error(), "metrics_port") {
			t.Errorf("%s: %v, want an error naming metrics_port", bad.Name, err)
		}
	}
	t0 := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	if err := n.Telemetry().SampleNow(t0); err != nil && !strings.Contains(err.Error(), "instance") {
		t.Fatal(err)
	}
	res, err := n.Telemetry().Instant(ctx, `app_requests_total{instance="exporter"}`, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 1 || res.Series[0].Value.V != 7 || res.Series[0].Metric["route"] != "/a" || res.Series[0].Metric["node"] != "n0" {
		t.Fatalf("scraped series: %+v", res.Series)
	}
	r := get(t, unixHTTP(n.Node), "http://unix/metrics")
	if !strings.Contains(string(r.body), `constellation_instance_scrape_up{instance="exporter",namespace="default",node="n0"} 1`) {
		t.Fatalf("/metrics lacks the scrape status")
	}
}
