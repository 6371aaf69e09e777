package node

import (
	"fmt"
	"io"
	"net/http"
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
