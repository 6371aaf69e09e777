package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/sandbox"
	"github.com/rads-lang/constellation/security"
)

// TestEveryRouteHasAPermission walks every route the node registers: each must have its
// line in security.RoutePerms (a route another branch adds fails here until declared), and
// the table names no route the node does not register.
func TestEveryRouteHasAPermission(t *testing.T) {
	n := startTestNode(t, nodeConfig(t, "routes"))
	routes := n.api.Routes()
	for _, p := range routes {
		if _, ok := security.RoutePerms[p]; !ok {
			t.Errorf("route %q has no permission in security.RoutePerms: add its resource:verb line", p)
		}
	}
	for p := range security.RoutePerms {
		if !slices.Contains(routes, p) {
			t.Errorf("security.RoutePerms names %q, which the node does not register", p)
		}
	}
}

// roleMatrix says, route by route, which callers may call it: A admin, O operator,
// V viewer, N operator bound to namespace team-a, C the custom role "deployer"
// (deployments:write, instances:read, nodes:read; write implies read). Everyone else gets 403 naming the permission.
var roleMatrix = map[string]string{
	"DELETE /v1/monitor/channels/{name}":          "AO",
	"DELETE /v1/monitor/checks/{name}":            "AO",
	"DELETE /v1/monitor/rules/{name}":             "AO",
	"DELETE /v1/monitor/silences/{id}":            "AO",
	"GET /api/v1/label/{name}/values":             "AOV",
	"GET /api/v1/labels":                          "AOV",
	"GET /api/v1/query":                           "AOV",
	"GET /api/v1/query_range":                     "AOV",
	"GET /api/v1/series":                          "AOV",
	"GET /api/v1/status/buildinfo":                "AOV",
	"GET /metrics":                                "AOV",
	"GET /v1/debug/pprof/{node}":                  "A",
	"GET /v1/monitor/alerts":                      "AOV",
	"GET /v1/monitor/channels":                    "AOV",
	"GET /v1/monitor/channels/{name}/history":     "AOV",
	"GET /v1/monitor/checks":                      "AOV",
	"GET /v1/monitor/dashboard":                   "AOV",
	"GET /v1/monitor/rules":                       "AOV",
	"GET /v1/monitor/rules/{name}":                "AOV",
	"GET /v1/monitor/silences":                    "AOV",
	"POST /api/v1/labels":                         "AOV",
	"POST /api/v1/query":                          "AOV",
	"POST /api/v1/query_range":                    "AOV",
	"POST /api/v1/series":                         "AOV",
	"POST /v1/monitor/channels":                   "AO",
	"POST /v1/monitor/channels/{name}/test":       "AO",
	"POST /v1/monitor/checks":                     "AO",
	"POST /v1/monitor/metrics":                    "AO",
	"POST /v1/monitor/query":                      "AOV",
	"POST /v1/monitor/rules":                      "AO",
	"POST /v1/monitor/silences":                   "AO",
	"PUT /v1/fs/files":                            "AO",
	"GET /v1/fs/files":                            "AOV",
	"DELETE /v1/fs/files":                         "AO",
	"GET /v1/fs/stat":                             "AOV",
	"GET /v1/fs/list":                             "AOV",
	"POST /v1/fs/move":                            "AO",
	"GET /v1/fs/trees":                            "AOV",
	"POST /v1/fs/trees":                           "AO",
	"GET /v1/fs/versions":                         "AOV",
	"POST /v1/fs/revert":                          "AO",
	"GET /v1/fs/watch":                            "AOV",
	"GET /v1/fs/snapshots":                        "AOV",
	"POST /v1/fs/snapshots":                       "AO",
	"DELETE /v1/fs/snapshots/{snapshot}":          "AO",
	"POST /v1/fs/restore":                         "AO",
	"GET /v1/fs/du":                               "AOV",
	"GET /v1/fs/export":                           "AOV",
	"PUT /v1/fs/import":                           "AO",
	"GET /ipfs/{rest...}":                         "AOV",
	"GET /v1/mesh/services":                       "AOV",
	"GET /v1/mesh/services/{name}":                "AOVN",
	"GET /v1/mesh/intentions":                     "AOV",
	"GET /v1/mesh/metrics/{name}":                 "AOVN",
	"POST /v1/mesh/spans":                         "AO",
	"POST /v1/mesh/services":                      "AON",
	"POST /v1/mesh/deregister":                    "AON",
	"POST /v1/mesh/services/{name}/config":        "AON",
	"POST /v1/mesh/intentions":                    "AON",
	"POST /v1/mesh/mtls":                          "A",
	"POST /v1/mesh/call":                          "AON",
	"GET /v1/monitor/logs":                        "AOV",
	"POST /v1/monitor/logs":                       "AO",
	"GET /v1/monitor/traces":                      "AOV",
	"GET /v1/monitor/traces/{trace}":              "AOV",
	"POST /v1/monitor/spans":                      "AO",
	"GET /v1/status":                              "AOVNC",
	"GET /v1/nodes":                               "AOVNC",
	"GET /v1/resources":                           "AOVNC",
	"GET /v1/events":                              "AOV",
	"POST /v1/send":                               "A",
	"POST /v1/broadcast":                          "A",
	"POST /v1/instances":                          "AON",
	"GET /v1/instances":                           "AOVNC",
	"GET /v1/instances/{name}":                    "AOVNC",
	"DELETE /v1/instances/{name}":                 "AON",
	"GET /v1/instances/{name}/stats":              "AOVNC",
	"GET /v1/instances/{name}/logs":               "AOVNC",
	"POST /v1/instances/{name}/start":             "AON",
	"POST /v1/instances/{name}/stop":              "AON",
	"POST /v1/instances/{name}/restart":           "AON",
	"POST /v1/instances/{name}/set-limits":        "AON",
	"POST /v1/instances/{name}/wait":              "AOVNC",
	"POST /v1/instances/{name}/snapshot":          "AON",
	"POST /v1/instances/{name}/restore":           "AON",
	"GET /v1/instances/{name}/snapshots":          "AOVNC",
	"DELETE /v1/instances/{name}/snapshots/{tag}": "AON",
	"POST /v1/deployments":                        "AONC",
	"GET /v1/deployments":                         "AOVC",
	"GET /v1/deployments/{name}":                  "AOVNC",
	"POST /v1/deployments/{name}/scale":           "AONC",
	"DELETE /v1/deployments/{name}":               "AONC",
	"POST /v1/nodes/{node}/drain":                 "A",
	"POST /v1/drain":                              "A",
	"POST /v1/reservations":                       "A",
	"GET /v1/reservations":                        "AOV",
	"DELETE /v1/reservations/{id}":                "A",
	"PUT /v1/quotas/{ns}":                         "A",
	"GET /v1/quotas/{ns}":                         "AOV",
	"GET /v1/quotas":                              "AOV",
	"PATCH /v1/quotas/{ns}":                       "A",
	"DELETE /v1/quotas/{ns}":                      "A",
	"POST /v1/acl/tokens":                         "A",
	"GET /v1/acl/tokens":                          "A",
	"GET /v1/acl/tokens/{id}":                     "A",
	"DELETE /v1/acl/tokens/{id}":                  "A",
	"GET /v1/acl/whoami":                          "AOVNC",
	"POST /ui/login":                              "AOVNC",
	"GET /ui/session":                             "AOVNC",
	"POST /ui/logout":                             "AOVNC",
	"GET /v1/cluster/overview":                    "AOVNC",
	"POST /v1/acl/roles":                          "A",
	"GET /v1/acl/roles":                           "A",
	"GET /v1/acl/roles/{name}":                    "A",
	"DELETE /v1/acl/roles/{name}":                 "A",
	"GET /v1/audit":                               "A",
	"GET /v1/audit/verify":                        "A",
	"GET /v1/secrets":                             "AOVN",
	"PUT /v1/secrets/{ns}/{name}":                 "A",
	"GET /v1/secrets/{ns}/{name}":                 "AOV",
	"DELETE /v1/secrets/{ns}/{name}":              "A",
	"POST /v1/secrets/{ns}/{name}/reveal":         "A",
	"POST /v1/secrets/rotate-key":                 "A",
	"POST /v1/namespaces":                         "A",
	"GET /v1/namespaces":                          "AOV",
	"GET /v1/namespaces/{ns}":                     "AOV",
	"DELETE /v1/namespaces/{ns}":                  "A",
}

// tcpCaller calls a node's TCP API with a bearer token.
type tcpCaller struct {
	t    *testing.T
	cl   *http.Client
	base string
}

func newTCPCaller(t *testing.T, n *Node) *tcpCaller {
	return &tcpCaller{t: t, cl: pinnedHTTPClient(t, n.APIFingerprint), base: "https://" + n.APIAddr}
}

func (c *tcpCaller) call(tok, method, path, body string) (int, string) {
	c.t.Helper()
	return httpCall(c.t, c.cl, tok, method, c.base+path, body)
}

// httpCall sends one request with a bearer token (none when tok is "") and returns the
// status and body (none for an event stream).
func httpCall(t testing.TB, cl *http.Client, tok, method, url, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func mustToken(t *testing.T, n *Node, name, role, ns string) string {
	t.Helper()
	_, sec, err := n.security.CreateToken(api.TokenCreateRequest{Name: name, Role: role, Namespace: ns}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// mustNamespace creates a namespace on n (creates in a namespace never created are
// refused) and waits until every node in others has it.
func mustNamespace(t testing.TB, n *Node, name string, others ...*Node) {
	t.Helper()
	if _, err := n.security.CreateNamespace(api.NamespaceRequest{Name: name}, "test"); err != nil {
		t.Fatal(err)
	}
	waitNamespace(t, name, others...)
}

// waitNamespace waits until every node accepts creates in the namespace.
func waitNamespace(t testing.TB, name string, nodes ...*Node) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "namespace "+name+" replicated", func() (bool, string) {
		for _, n := range nodes {
			if err := n.security.CheckNamespace(name); err != nil {
				return false, n.cfg.Node + ": " + err.Error()
			}
		}
		return true, ""
	})
}

// TestRoleMatrix calls every route over TCP with a token of each built-in role, a
// namespace-bound operator and a custom role, and checks each is allowed (reaches the
// handler: anything but 401/403) or refused with 403 naming the permission, as roleMatrix
// says.
func TestRoleMatrix(t *testing.T) {
	n := startSchedClusterCfg(t, 1, func(i int, c *Config) { c.APIListen = "127.0.0.1:0" })[0]
	routes := n.api.Routes()
	for _, p := range routes {
		if _, ok := roleMatrix[p]; !ok {
			t.Errorf("route %q has no entry in roleMatrix", p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if _, err := n.security.CreateRole(api.RoleRequest{Name: "deployer", Rules: []string{"deployments:write", "instances:read", "nodes:read"}}, "test"); err != nil {
		t.Fatal(err)
	}
	mustNamespace(t, n.Node, "team-a")
	callers := []struct {
		letter string
		tok    string
	}{
		{"V", mustToken(t, n.Node, "v", "viewer", "")},
		{"C", mustToken(t, n.Node, "c", "deployer", "")},
		{"N", mustToken(t, n.Node, "nsop", "operator", "team-a")},
		{"O", mustToken(t, n.Node, "o", "operator", "")},
		{"A", mustToken(t, n.Node, "a", "admin", "")},
	}
	sort.Strings(routes)
	c := newTCPCaller(t, n.Node)
	seq := 0
	for _, cl := range callers {
		for _, pattern := range routes {
			seq++
			method, path, body := matrixRequest(pattern, "no-such-instance", seq)
			if pattern == "POST /v1/acl/tokens" {
				body = fmt.Sprintf(`{"name":"made-%d","role":"viewer"}`, seq)
			}
			if pattern == "POST /v1/acl/roles" {
				body = `{"name":"made","rules":["instances:read"]}`
			}
			want := strings.Contains(roleMatrix[pattern], cl.letter)
			st, out := c.call(cl.tok, method, path, body)
			perm := string(security.RoutePerms[pattern])
			switch {
			case st == http.StatusUnauthorized:
				t.Errorf("%s %s %s = 401 %s", cl.letter, method, path, out)
			case want && st == http.StatusForbidden:
				t.Errorf("%s %s %s = 403 %s; want allowed", cl.letter, method, path, out)
			case !want && (st != http.StatusForbidden || !strings.Contains(out, `"forbidden"`)):
				t.Errorf("%s %s %s = %d %s; want 403", cl.letter, method, path, st, out)
			case !want && cl.letter != "N" && !strings.Contains(out, perm):
				t.Errorf("%s %s %s = 403 %s; want the permission %s named", cl.letter, method, path, out, perm)
			}
		}
	}
}

// TestTokenLifecycle: a token works over TCP, is refused with the reason once revoked or
// expired, bad roles and rules are 400s, and the namespace binding holds on records.
func TestTokenLifecycle(t *testing.T) {
	n := startSchedClusterCfg(t, 1, func(i int, c *Config) { c.APIListen = "127.0.0.1:0" })[0]
	c := newTCPCaller(t, n.Node)
	boot, _ := os.ReadFile(filepath.Join(n.cfg.DataDir, "api.token"))
	admin := strings.TrimSpace(string(boot))
	for _, tc := range []struct{ body, want string }{
		{`{"name":"x","role":"root"}`, `unknown role \"root\"`},
		{`{"name":"bad name!","role":"viewer"}`, `invalid field \"name\"`},
		{`{"name":"x","role":"viewer","ttl":"soon"}`, `invalid field \"ttl\"`},
		{`{"name":"x","role":"viewer","namespace":"Team_A"}`, `invalid field \"namespace\"`},
	} {
		if st, out := c.call(admin, "POST", "/v1/acl/tokens", tc.body); st != 400 || !strings.Contains(out, tc.want) {
			t.Errorf("create %s = %d %s; want 400 %s", tc.body, st, out, tc.want)
		}
	}
	for _, tc := range []struct{ body, want string }{
		{`{"name":"r","rules":["instances:delete"]}`, `unknown verb \"delete\"`},
		{`{"name":"r","rules":["widgets:read"]}`, `unknown resource \"widgets\"`},
		{`{"name":"admin","rules":["instances:read"]}`, `built in`},
	} {
		if st, out := c.call(admin, "POST", "/v1/acl/roles", tc.body); st != 400 || !strings.Contains(out, tc.want) {
			t.Errorf("role %s = %d %s; want 400 %s", tc.body, st, out, tc.want)
		}
	}
	st, out := c.call(admin, "POST", "/v1/acl/tokens", `{"name":"ci","role":"operator"}`)
	if st != 201 || !strings.Contains(out, `"secret": "cst_`) {
		t.Fatalf("create = %d %s", st, out)
	}
	sec := out[strings.Index(out, "cst_"):]
	sec = sec[:strings.IndexByte(sec, '"')]
	if st, out := c.call(sec, "GET", "/v1/acl/whoami", ""); st != 200 || !strings.Contains(out, `"name": "ci"`) {
		t.Fatalf("whoami = %d %s", st, out)
	}
	wrong := sec[:len(sec)-1] + map[bool]string{true: "1", false: "0"}[sec[len(sec)-1] == '0']
	if st, _ := c.call(wrong, "GET", "/v1/status", ""); st != 401 {
		t.Errorf("a wrong secret = %d; want 401", st)
	}
	// The list never holds the secret nor its hash.
	if _, out := c.call(admin, "GET", "/v1/acl/tokens", ""); strings.Contains(out, sec[len(sec)-64:]) || strings.Contains(out, "hash") {
		t.Errorf("token list shows the secret: %s", out)
	}
	if st, out := c.call(admin, "DELETE", "/v1/acl/tokens/ci", ""); st != 200 || !strings.Contains(out, `"revoked"`) {
		t.Fatalf("revoke = %d %s", st, out)
	}
	if st, out := c.call(sec, "GET", "/v1/status", ""); st != 401 || !strings.Contains(out, "token revoked") {
		t.Errorf("revoked token = %d %s; want 401 token revoked", st, out)
	}
	// Expiry.
	_, exp, err := n.security.CreateToken(api.TokenCreateRequest{Name: "short", Role: "viewer", TTL: "1ms"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if st, out := c.call(exp, "GET", "/v1/status", ""); st != 401 || !strings.Contains(out, "token expired") {
		t.Errorf("expired token = %d %s; want 401 token expired", st, out)
	}
	// Namespace binding: an operator of team-a creates in team-a, not in default, and
	// does not touch default's instances.
	mustNamespace(t, n.Node, "team-a")
	nsTok := mustToken(t, n.Node, "team", "operator", "team-a")
	if st, out := c.call(nsTok, "POST", "/v1/instances", `{"name":"mine","command":["true"],"start":false}`); st != 201 || !strings.Contains(out, `"namespace": "team-a"`) {
		t.Errorf("bound create = %d %s; want 201 in team-a", st, out)
	}
	if st, out := c.call(nsTok, "POST", "/v1/instances", `{"name":"theirs","namespace":"default","command":["true"],"start":false}`); st != 403 || !strings.Contains(out, "namespace default") {
		t.Errorf("bound create in default = %d %s; want 403", st, out)
	}
	if _, err := n.instances.Create(t.Context(), &api.CreateRequest{Name: "other", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if st, out := c.call(nsTok, "GET", "/v1/instances/other", ""); st != 403 || !strings.Contains(out, "in namespace default") {
		t.Errorf("bound show of default's instance = %d %s; want 403", st, out)
	}
	if st, out := c.call(nsTok, "GET", "/v1/instances", ""); st != 200 || strings.Contains(out, `"other"`) || !strings.Contains(out, `"mine"`) {
		t.Errorf("bound list = %d %s; want only team-a's", st, out)
	}
}

// TestRevocationEndsStream: a token's open event stream ends when the token is revoked on
// another node.
func TestRevocationEndsStream(t *testing.T) {
	ns := startSchedClusterCfg(t, 2, func(i int, c *Config) { c.APIListen = "127.0.0.1:0" })
	sec := mustToken(t, ns[0].Node, "watcher", "viewer", "")
	testutil.WaitFor(t, 10*time.Second, "n1 knows the token", func() (bool, string) {
		_, _, err := ns[1].security.Authenticate(sec)
		return err == nil, fmt.Sprint(err)
	})
	c := newTCPCaller(t, ns[1].Node)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", c.base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+sec)
	resp, err := c.cl.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, resp.Body); ended <- err }()
	if _, err := ns[0].security.RevokeToken("watcher", "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream is still open 10 s after the revocation")
	}
	if st, out := c.call(sec, "GET", "/v1/status", ""); st != 401 || !strings.Contains(out, "revoked") {
		t.Errorf("after revocation on n0, n1 answers %d %s; want 401 revoked", st, out)
	}
}

// TestSecretsRecordsAndDeployments: secrets are refused without a cluster key; with one,
// creates and deployments naming a missing secret are refused with nothing made, the
// records carry the names and no value, and the replicated record holds no plaintext.
func TestSecretsRecordsAndDeployments(t *testing.T) {
	plain := startSchedCluster(t, 1, nil)[0]
	if _, err := plain.security.SetSecret("", "pw", []byte("x"), "test"); err == nil || !strings.Contains(err.Error(), "cluster key") {
		t.Errorf("a secret without a cluster key: %v", err)
	}
	n := startSchedClusterCfg(t, 1, func(i int, c *Config) { c.ClusterKey = "k" })[0]
	ctx := t.Context()
	value := "value-" + fmt.Sprint(time.Now().UnixNano())
	mustNamespace(t, n.Node, "team-a")
	if _, err := n.security.SetSecret("team-a", "db_password", []byte(value), "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: "x", Command: []string{"true"}, Secrets: []string{"db_password"}}); err == nil || !strings.Contains(err.Error(), "does not exist in namespace default") {
		t.Errorf("create with a secret of another namespace: %v", err)
	}
	if _, ok := n.instances.Lookup("x"); ok {
		t.Error("the refused create left an instance")
	}
	rec, err := n.instances.Create(ctx, &api.CreateRequest{Name: "y", Namespace: "team-a", Command: []string{"true"}, Secrets: []string{"db_password"}})
	if err != nil || !slices.Equal(rec.Secrets, []string{"db_password"}) {
		t.Fatalf("create with the secret: %+v %v", rec, err)
	}
	if _, _, err := n.sched.Deploy(api.DeploymentSpec{Name: "web", Instances: 1, Command: []string{"true"}, Namespace: "team-a", Secrets: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `secret "nope"`) {
		t.Errorf("deploy with a missing secret: %v", err)
	}
	if _, _, err := n.sched.Deploy(api.DeploymentSpec{Name: "web", Instances: 1, Command: []string{"true"}, Namespace: "team-a", Secrets: []string{"db_password"}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "web-0 runs with the secret's name", func() (bool, string) {
		r, ok := n.instances.Lookup("web-0")
		return ok && slices.Equal(r.Secrets, []string{"db_password"}), fmt.Sprintf("%+v", r)
	})
	for _, coll := range []string{security.CollSecrets, "instances", "deployments"} {
		var all []byte
		var keys []string
		n.st.View(func(v *state.View) { keys = v.Keys(coll) })
		for _, k := range keys {
			b, _ := n.GetState(coll, k)
			all = append(all, b...)
		}
		if strings.Contains(string(all), value) {
			t.Errorf("collection %s holds the plaintext", coll)
		}
	}
	if v, _, err := n.security.Reveal("team-a", "db_password", 0); err != nil || string(v) != value {
		t.Errorf("reveal = %q, %v", v, err)
	}
}

// TestNamespaceExpiryNodeDown: a namespace with instances on 3 nodes, a secret, a bound
// token and a quota expires while n2 is down: n0 and n1 remove their instances, the
// secret, the token and the quota at once; n2 removes its instance when it comes back
// (its instance of another namespace stays); creates in the deleted namespace are refused
// with nothing made.
func TestNamespaceExpiryNodeDown(t *testing.T) {
	ns := startSchedClusterCfg(t, 3, func(i int, c *Config) { c.ClusterKey = "k" })
	n0, n2 := ns[0], ns[2]
	ctx := t.Context()
	if _, err := n0.security.CreateNamespace(api.NamespaceRequest{Name: "alice", AutoDeleteAfter: "3s",
		Quota: api.QuotaSpec{MaxCPUCores: 8, MaxRAMGB: 16, MaxInstances: 10}}, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := n0.security.SetSecret("alice", "pw", []byte("x"), "test"); err != nil {
		t.Fatal(err)
	}
	tok := mustToken(t, n0.Node, "alice-ci", "operator", "alice")
	waitNamespace(t, "alice", ns[0].Node, ns[1].Node, ns[2].Node)
	for i, n := range ns {
		if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: fmt.Sprintf("a%d", i), Namespace: "alice", Command: []string{"true"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n2.instances.Create(ctx, &api.CreateRequest{Name: "keep", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "n0 sees every instance", func() (bool, string) {
		for _, x := range []string{"a0", "a1", "a2", "keep"} {
			if _, ok := n0.instances.Lookup(x); !ok {
				return false, x
			}
		}
		return true, ""
	})
	// n2 goes down (its runtime keeps its instances, as a real node's would).
	fr := n2.fake()
	cfg2 := n2.cfg
	if err := n2.Kill(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "alice expires and n0, n1 clean up", func() (bool, string) {
		info := n0.security.Namespaces()
		_, a0 := n0.instances.Lookup("a0")
		_, a1 := ns[1].instances.Lookup("a1")
		_, q := n0.sched.Quota("alice")
		secs := n0.security.Secrets("alice")
		_, _, tokErr := ns[1].security.Authenticate(tok)
		done := len(info) == 1 && info[0].Status == "deleted" && !a0 && !a1 && !q && len(secs) == 0 && tokErr != nil
		return done, fmt.Sprintf("ns %+v a0 %v a1 %v quota %v secrets %d token %v", info, a0, a1, q, len(secs), tokErr)
	})
	if _, err := n0.instances.Create(ctx, &api.CreateRequest{Name: "late", Namespace: "alice", Command: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "namespace alice was deleted") {
		t.Errorf("create in the deleted namespace: %v", err)
	}
	if _, ok := n0.instances.Lookup("late"); ok {
		t.Error("the refused create left an instance")
	}
	if _, _, err := n0.sched.Deploy(api.DeploymentSpec{Name: "late", Instances: 1, Command: []string{"true"}, Namespace: "alice"}); err == nil {
		t.Error("a deployment in the deleted namespace was accepted")
	}
	// n2 comes back with its runtime: it removes a2 and keeps keep.
	tn, err := newTestNode(t, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	tn.instances.OpenRuntime = func(c sandbox.Config) (instances.Runtime, error) {
		fr.mu.Lock()
		fr.cfg, fr.closed = c, false
		fr.mu.Unlock()
		return fr, nil
	}
	if err := tn.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A real runtime is re-adopted at Start from its state dir; the fake keeps none there.
	if _, err := tn.instances.Runtime(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "n2 removes its instance of alice", func() (bool, string) {
		names := map[string]bool{}
		for _, in := range fr.List() {
			names[in.Name] = true
		}
		_, seen := n0.instances.Lookup("a2")
		return !names["a2"] && names["keep"] && !seen, fmt.Sprintf("n2 runs %v; n0 sees a2: %v", names, seen)
	})
}

// TestAuditCallers: the audit log names each kind of caller of a mutating call: the
// node's socket, an instance through its own socket, and a call forwarded to the node
// that runs the target (recorded on both nodes with the same request ID); the
// cluster-wide query merges both nodes' entries.
func TestAuditCallers(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	n0, n1 := ns[0], ns[1]
	ctx := t.Context()
	if _, err := n0.instances.Create(ctx, &api.CreateRequest{Name: "parent", Command: []string{"true"}, Grants: []string{"instances:create"}}); err != nil {
		t.Fatal(err)
	}
	ic := newInstClient(t, n0, "parent")
	if st, out := ic.call("POST", "/v1/instances", `{"name":"kid","command":["true"],"start":false}`); st != 201 {
		t.Fatalf("create through the instance: %d %s", st, out)
	}
	cl := api.NewClient(n0.cfg.DataDir, "", "")
	if _, err := cl.CreateInstance(ctx, api.CreateRequest{Name: "far", Node: "n1", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	var res api.AuditResult
	testutil.WaitFor(t, 10*time.Second, "both nodes' entries", func() (bool, string) {
		var err error
		res, err = api.NewClient(n1.cfg.DataDir, "", "").Audit(ctx, nil)
		return err == nil && len(res.Entries) >= 3, fmt.Sprintf("%+v %v", res, err)
	})
	var kid, far, fwd *api.AuditEntry
	for i, e := range res.Entries {
		switch {
		case e.Node == "n0" && e.Target == "/v1/instances" && e.Kind == "instance":
			kid = &res.Entries[i]
		case e.Node == "n0" && e.Kind == "socket" && e.Route == "POST /v1/instances":
			far = &res.Entries[i]
		case e.Node == "n1" && e.Kind == "forwarded":
			fwd = &res.Entries[i]
		}
	}
	if kid == nil || kid.Caller != "parent" || kid.Status != 201 {
		t.Errorf("the instance's create: %+v in %+v", kid, res.Entries)
	}
	if far == nil || fwd == nil || far.RequestID == "" || far.RequestID != fwd.RequestID || fwd.Caller != "node n0" || fwd.Status != 201 {
		t.Errorf("the forwarded create: origin %+v, target %+v", far, fwd)
	}
}

// TestNamespaceMustExist: creates of every kind in a namespace never created are refused
// with a 404 naming it and how to create it, and nothing is made; default always exists;
// a namespace with a quota (set before namespaces were records) counts as existing.
func TestNamespaceMustExist(t *testing.T) {
	n := startSchedClusterCfg(t, 1, func(i int, c *Config) { c.ClusterKey = "k" })[0]
	ctx := t.Context()
	want := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "namespace ghost does not exist") ||
			!strings.Contains(err.Error(), "constellation namespace create ghost") {
			t.Errorf("%s in a namespace never created: %v; want namespace ghost does not exist + how to create it", what, err)
		}
	}
	_, err := n.instances.Create(ctx, &api.CreateRequest{Name: "x", Namespace: "ghost", Command: []string{"true"}})
	want("instance create", err)
	_, _, err = n.sched.Deploy(api.DeploymentSpec{Name: "web", Instances: 1, Command: []string{"true"}, Namespace: "ghost"})
	want("deploy", err)
	_, err = n.security.SetSecret("ghost", "pw", []byte("v"), "test")
	want("secret set", err)
	_, _, err = n.security.CreateToken(api.TokenCreateRequest{Name: "t", Role: "operator", Namespace: "ghost"}, "test")
	want("token create", err)
	if code, _, b := apiReq(t, n.Node, "POST", "/v1/instances", `{"name":"y","command":["true"],"namespace":"ghost","start":false}`, nil); code != 404 || !strings.Contains(string(b), "namespace_not_found") {
		t.Errorf("POST /v1/instances in ghost = %d %s; want 404 namespace_not_found", code, b)
	}
	if len(n.instances.Local()) != 0 || len(n.sched.Deployments()) != 0 || len(n.security.Secrets("ghost")) != 0 {
		t.Errorf("a refused create left something: %d instances, %d deployments", len(n.instances.Local()), len(n.sched.Deployments()))
	}
	for _, t2 := range n.security.Tokens() {
		if t2.Namespace == "ghost" {
			t.Errorf("a refused token create left token %s", t2.Name)
		}
	}
	if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: "d", Namespace: "default", Command: []string{"true"}}); err != nil {
		t.Errorf("create in default: %v", err)
	}
	if _, err := n.sched.SetQuota("legacy", api.QuotaSpec{MaxInstances: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: "l", Namespace: "legacy", Command: []string{"true"}}); err != nil {
		t.Errorf("create in a namespace with a quota: %v", err)
	}
}

// TestSecretRefs: "NAME:file" references go to SecretFiles and not to the environment,
// plain ones the other way; a reference with another suffix is a bad name naming the form.
func TestSecretRefs(t *testing.T) {
	n := startSchedClusterCfg(t, 1, func(i int, c *Config) { c.ClusterKey = "k" })[0]
	if _, err := n.security.SetSecret("", "a", []byte("va"), "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.security.SetSecret("", "b", []byte("vb"), "test"); err != nil {
		t.Fatal(err)
	}
	refs := []string{"a", "b:file"}
	if err := n.security.CheckSecrets("", refs); err != nil {
		t.Fatal(err)
	}
	env, err := n.security.SecretEnv("", refs)
	if err != nil || len(env) != 1 || env["a"] != "va" {
		t.Errorf("SecretEnv = %v %v; want only a", env, err)
	}
	files, err := n.security.SecretFiles("", refs)
	if err != nil || len(files) != 1 || string(files["b"]) != "vb" {
		t.Errorf("SecretFiles = %v %v; want only b", files, err)
	}
	if err := n.security.CheckSecrets("", []string{"a:dir"}); err == nil || !strings.Contains(err.Error(), `":file"`) {
		t.Errorf("a reference a:dir: %v; want a bad name naming the :file form", err)
	}
	if err := n.security.CheckSecrets("", []string{"c:file"}); err == nil || !strings.Contains(err.Error(), `secret "c" does not exist`) {
		t.Errorf("a missing file secret: %v", err)
	}
}
