package node

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestDashboardSessionIsTheToken: a browser session is judged as the token it logged in
// with. The test plays a viewer forging mutating requests, and a revoked token whose
// browser keeps its cookie.
func TestDashboardSessionIsTheToken(t *testing.T) {
	ns := startSchedClusterCfg(t, 2, func(i int, c *Config) {
		if i == 0 {
			c.APIListen = "127.0.0.1:0"
		}
	})
	n := ns[0]
	viewer := mustToken(t, n.Node, "browser", "viewer", "")
	cl := pinnedHTTPClient(t, n.APIFingerprint)
	cl.Jar, _ = cookiejar.New(nil)
	base := "https://" + n.APIAddr
	do := func(method, path, body string, hdr map[string]string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b), resp.Header
	}
	if st, body, _ := do("POST", "/ui/login", `{"token":"cst_nope_nope"}`, nil); st != http.StatusUnauthorized {
		t.Errorf("login with a wrong token = %d %s; want 401", st, body)
	}
	st, body, _ := do("POST", "/ui/login", `{"token":"`+viewer+`"}`, nil)
	var sess api.UISession
	if st != 200 || json.Unmarshal([]byte(body), &sess) != nil || sess.Role != "viewer" || sess.CSRFToken == "" || strings.Contains(body, viewer) {
		t.Fatalf("login = %d %s", st, body)
	}
	u, _ := url.Parse(base)
	for _, c := range cl.Jar.Cookies(u) {
		if strings.Contains(c.Value, viewer[4:]) {
			t.Errorf("cookie %s holds the token", c.Name)
		}
	}
	for _, p := range sess.Permissions {
		if strings.HasSuffix(p, ":write") {
			t.Errorf("a viewer session lists %s", p)
		}
	}
	// Reads work with the cookie alone, the overview included (a blocking read too).
	st, body, hdr := do("GET", "/v1/cluster/overview", "", nil)
	var ov api.ClusterOverview
	if st != 200 || json.Unmarshal([]byte(body), &ov) != nil || ov.NodesTotal != 2 || hdr.Get(api.IndexHeader) == "" {
		t.Fatalf("overview = %d %s", st, body)
	}
	if st, _, _ := do("GET", "/v1/cluster/overview?index="+hdr.Get(api.IndexHeader)+"&wait=50ms", "", nil); st != 200 {
		t.Errorf("blocking overview = %d", st)
	}
	// The viewer forges: without the CSRF token the front refuses; with it the permission
	// table does, naming the permission.
	forged := `{"name":"forged","command":["true"]}`
	if st, body, _ := do("POST", "/v1/instances", forged, nil); st != http.StatusForbidden || !strings.Contains(body, `"csrf"`) {
		t.Errorf("forged POST without CSRF = %d %s", st, body)
	}
	if st, body, _ := do("POST", "/v1/instances", forged, map[string]string{"X-CSRF-Token": sess.CSRFToken}); st != http.StatusForbidden || !strings.Contains(body, "instances:write") {
		t.Errorf("forged POST with CSRF = %d %s; want 403 naming instances:write", st, body)
	}
	if _, ok := n.instances.Lookup("forged"); ok {
		t.Fatal("the forged instance exists")
	}
	// Revoking the token ends what its browser may do, cookie or not.
	if _, err := n.security.RevokeToken("browser", "test"); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := do("GET", "/v1/nodes", "", nil); st != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("after revoke = %d %s; want 401 revoked", st, body)
	}
	if len(cl.Jar.Cookies(u)) != 0 { // the session ended with its token: the browser is told
		t.Errorf("cookies kept after the session ended: %v", cl.Jar.Cookies(u))
	}
}

// TestClusterOverviewCountsAndLinks: nodes, instances, a link with its RTT and this node's
// connection type, a dead node.
func TestClusterOverviewCountsAndLinks(t *testing.T) {
	ns := startSchedCluster(t, 3, nil)
	n := ns[0]
	var ov api.ClusterOverview
	testutil.WaitFor(t, 30*time.Second, "overview with 3 nodes and 3 links", func() (bool, string) {
		ov = n.computeOverview(n.readOverviewMetrics(t.Context()), time.Now())
		b, _ := json.Marshal(ov)
		return ov.NodesAlive == 3 && ov.NodesTotal == 3 && len(ov.Nodes) == 3 && len(ov.Links) == 3, string(b)
	})
	for _, l := range ov.Links {
		if l.RTTMs <= 0 || l.From >= l.To {
			t.Errorf("link %+v", l)
		}
		mine := l.From == "n0" || l.To == "n0"
		if mine && (l.Connection != "direct" || l.Observer != "n0") {
			t.Errorf("n0's link %+v: want direct, observed by n0", l)
		}
		if !mine && l.Connection != "unknown" {
			t.Errorf("another pair's link %+v: want unknown", l)
		}
	}
	if ov.Health != api.HealthHealthy {
		t.Errorf("health %s %v", ov.Health, ov.Reasons)
	}
	// The Go client's blocking read over the socket answers the same overview.
	cl := api.NewClient(n.cfg.DataDir, "", "")
	got, meta, err := cl.ClusterOverview(t.Context(), nil)
	if err != nil || got.NodesTotal != 3 || meta.LastIndex == 0 {
		t.Fatalf("client overview = %+v %+v %v", got, meta, err)
	}
	if who, err := cl.UISession(t.Context()); err != nil || who.Kind != "socket" || len(who.Permissions) == 0 {
		t.Errorf("socket session = %+v %v", who, err)
	}
	if err := ns[2].Kill(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "n2 dead on the overview", func() (bool, string) {
		ov = n.ClusterOverview(t.Context())
		b, _ := json.Marshal(ov)
		for _, x := range ov.Nodes {
			if x.Name == "n2" && x.Status == api.StatusDead {
				return ov.NodesAlive == 2 && ov.Health != api.HealthHealthy, string(b)
			}
		}
		return false, string(b)
	})
}
