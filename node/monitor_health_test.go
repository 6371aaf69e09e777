package node

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

func post(t *testing.T, n *Node, path, body string) (int, string) {
	t.Helper()
	resp, err := unixHTTP(n).Post("http://unix"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMonitorHealthChecks: a check runs on the node it names (a tcp check of a live
// listener passes, an http check of a closed port fails), every node's dashboard shows
// both and turns degraded naming the failing one, the probing node exposes
// constellation_health_check_up, removing the failing check makes the cluster healthy
// again (unless the machine itself is loaded), and bad definitions are refused.
func TestMonitorHealthChecks(t *testing.T) {
	ns := startCluster(t, 2, nil)
	testutil.WaitFor(t, 20*time.Second, "all alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := closed.Addr().String()
	closed.Close()

	if code, body := post(t, ns[0].Node, "/v1/monitor/checks", `{"name":"db","kind":"tcp","target":"`+ln.Addr().String()+`","node":"n1","interval":"1s","timeout":"1s"}`); code != 200 {
		t.Fatalf("add db: %d %s", code, body)
	}
	if code, body := post(t, ns[0].Node, "/v1/monitor/checks", `{"name":"web","kind":"http","target":"http://`+deadAddr+`/health","interval":"1s","timeout":"1s"}`); code != 200 {
		t.Fatalf("add web: %d %s", code, body)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"name":"x","kind":"ftp","target":"a"}`, "want http, tcp or exec"},
		{`{"name":"x","kind":"http","target":"file:///etc/passwd"}`, "http(s) URL"},
		{`{"name":"x","kind":"tcp","target":"nohost"}`, "HOST:PORT"},
		{`{"name":"x","kind":"exec","target":"true","instance":"app"}`, "not in an instance"},
		{`{"name":"x","kind":"tcp","target":"a:1","node":"nosuch"}`, "nosuch"},
		{`{"name":"bad name","kind":"tcp","target":"a:1"}`, "name"},
	} {
		if code, body := post(t, ns[0].Node, "/v1/monitor/checks", bad.body); code/100 != 4 || !strings.Contains(body, bad.want) {
			t.Errorf("%s: %d %s, want a 4xx naming %q", bad.body, code, body, bad.want)
		}
	}
	var d api.Dashboard
	testutil.WaitFor(t, 20*time.Second, "n1's dashboard shows db passing (probed by n1) and web failing (by n0)", func() (bool, string) {
		d = api.Dashboard{} // absent fields (reasons) must not keep old values
		getJSON(t, unixHTTP(ns[1].Node), "/v1/monitor/dashboard", &d)
		st := map[string]string{}
		for _, c := range d.Checks {
			st[c.Name] = c.Status + "@" + c.Node
		}
		return st["db"] == "passing@n1" && st["web"] == "failing@n0", func() string { b, _ := json.Marshal(d); return string(b) }()
	})
	if d.Health == api.HealthHealthy || !strings.Contains(strings.Join(d.Reasons, ";"), "health check web failing on n0") {
		t.Fatalf("dashboard with a failing check: %s %v", d.Health, d.Reasons)
	}
	resp, err := unixHTTP(ns[1].Node).Get("http://unix/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(exp), `constellation_health_check_up{check="db",instance="",node="n1"} 1`) {
		t.Fatalf("n1's /metrics lacks the db check")
	}
	req, _ := http.NewRequest("DELETE", "http://unix/v1/monitor/checks/web", nil)
	resp, err = unixHTTP(ns[0].Node).Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("rm web: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	testutil.WaitFor(t, 10*time.Second, "web gone from n1's dashboard", func() (bool, string) {
		d = api.Dashboard{} // absent fields (reasons) must not keep old values
		getJSON(t, unixHTTP(ns[1].Node), "/v1/monitor/dashboard", &d)
		return len(d.Checks) == 1 && !strings.Contains(strings.Join(d.Reasons, ";"), "health check"), strings.Join(d.Reasons, ";")
	})
}
