package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
)

// instClient calls a node's API through an instance's socket, as the instance would.
type instClient struct {
	t     testing.TB
	path  string
	token string
	http  *http.Client
}

func newInstClient(t testing.TB, n *schedNode, name string) *instClient {
	t.Helper()
	path, tok, ok := n.instances.InstanceSocket(name)
	if !ok {
		t.Fatalf("%s: instance %s has no API socket", n.cfg.Node, name)
	}
	return unixClient(t, path, tok)
}

// unixClient calls the API on the Unix socket at path with bearer token tok ("": none).
func unixClient(t testing.TB, path, tok string) *instClient {
	return &instClient{t: t, path: path, token: tok, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// call sends one request with token tok and returns the status and the body (or, for an
// event stream, only the status: the stream is closed once the head arrived).
func (c *instClient) callTok(tok, method, target, body string) (int, string) {
	c.t.Helper()
	return httpCall(c.t, c.http, tok, method, "http://instance"+target, body)
}

func (c *instClient) call(method, target, body string) (int, string) {
	c.t.Helper()
	return c.callTok(c.token, method, target, body)
}

// TestInstanceSocket: each instance gets its own API socket and a token file in its run
// directory, the environment names them and holds no token, and the socket takes only
// its own instance's token.
func TestInstanceSocket(t *testing.T) {
	n := startSchedCluster(t, 1, nil)[0]
	ctx := t.Context()
	for _, name := range []string{"caller", "other"} {
		if _, err := n.instances.Create(ctx, &api.CreateRequest{Name: name, Command: []string{"true"},
			Grants: []string{instances.GrantInstancesCreate}}); err != nil {
			t.Fatal(err)
		}
	}
	c := newInstClient(t, n, "caller")
	other := newInstClient(t, n, "other")
	dir, err := n.rt(t).RunDir("caller")
	if err != nil {
		t.Fatal(err)
	}
	if c.path != filepath.Join(dir, "api.sock") {
		t.Errorf("socket at %s; want api.sock in the run dir %s", c.path, dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil || string(b) != c.token || !strings.HasPrefix(c.token, "ci1.caller.") {
		t.Errorf("token file = %q, %v; want %q", b, err, c.token)
	}
	for file, mode := range map[string]os.FileMode{"token": 0o400, "api.sock": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v; want %v", file, fi.Mode().Perm(), mode)
		}
		if os.Geteuid() == 0 {
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
				t.Errorf("%s owned by uid %d; want the program's uid 65534", file, uid)
			}
		}
	}
	for _, x := range []struct{ name, tok string }{
		{"no token", ""}, {"another instance's token", other.token}, {"forged", "ci1.caller.00000000000000000000000000000000"},
		{"admin-shaped", "0123456789abcdef"},
	} {
		if st, body := c.callTok(x.tok, "GET", "/v1/instances/caller", ""); st != 401 || !strings.Contains(body, "/run/constellation/token") {
			t.Errorf("%s: %d %s; want 401 naming the token file", x.name, st, body)
		}
	}
	if st, body := c.call("GET", "/v1/instances/caller", ""); st != 200 || !strings.Contains(body, `"caller"`) {
		t.Errorf("show self: %d %s", st, body)
	}
	// A child: no uid, at most the creator's grants, recorded with its creator.
	for _, x := range []struct{ body, want string }{
		{`{"name":"x","command":["true"],"uid":0}`, `may not set "uid"`},
		{`{"name":"x","command":["true"],"grants":["nodes:read"]}`, `may not give the grant "nodes:read"`},
		{`{"name":"x","command":["true"],"grants":["root"]}`, `unknown grant "root"`},
	} {
		if st, body := c.call("POST", "/v1/instances", x.body); st/100 != 4 || !strings.Contains(apiError(body), x.want) {
			t.Errorf("create %s: %d %s; want a refusal containing %q", x.body, st, body, x.want)
		}
	}
	st, body := c.call("POST", "/v1/instances", `{"name":"child","command":["true"],"grants":["instances:create"]}`)
	var child api.Instance
	if st != 201 || json.Unmarshal([]byte(body), &child) != nil || child.CreatedBy != "caller" || !slices.Equal(child.Grants, []string{"instances:create"}) {
		t.Fatalf("create child: %d %s; want 201 created_by caller with grants [instances:create]", st, body)
	}
	// The environment says where the API and the token are, never the token.
	in, err := n.rt(t).Get("child")
	if err != nil {
		t.Fatal(err)
	}
	if _, has := in.Spec.Env["CONSTELLATION_API_TOKEN"]; has || in.Spec.Env["CONSTELLATION_INSTANCE"] != "child" {
		t.Errorf("child's env %v: want CONSTELLATION_INSTANCE and no token", in.Spec.Env)
	}
	env := n.rt(t).cfg.Env
	if env["CONSTELLATION_API"] != "unix:/run/constellation/api.sock" || env["CONSTELLATION_API_TOKEN_FILE"] != "/run/constellation/token" ||
		env["CONSTELLATION_NODE"] != n.cfg.Node {
		t.Errorf("runtime env = %v", env)
	}
	for k, v := range env {
		if strings.Contains(v, "ci1.") {
			t.Errorf("runtime env %s carries a token: %q", k, v)
		}
	}
	// Removing an instance closes its socket.
	if err := n.instances.Remove(ctx, "other", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other.path); !os.IsNotExist(err) {
		t.Errorf("socket of a removed instance: %v; want it gone", err)
	}
	if _, _, ok := n.instances.InstanceSocket("other"); ok {
		t.Error("InstanceSocket of a removed instance still answers")
	}
}

// TestInstanceSocketClosedWithNode: a node that closes stops serving its instances'
// sockets and removes the files (the next start opens them again for the instances it
// re-adopts: TestInstancesEndToEnd restarts a node with a running instance).
func TestInstanceSocketClosedWithNode(t *testing.T) {
	n := startSchedCluster(t, 1, nil)[0]
	if _, err := n.instances.Create(t.Context(), &api.CreateRequest{Name: "keep", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	c := newInstClient(t, n, "keep")
	if st, out := c.call("GET", "/v1/instances/keep/stats", ""); st != 200 {
		t.Fatalf("stats: %d %s", st, out)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.path); !os.IsNotExist(err) {
		t.Errorf("socket file after the node closed: %v; want it removed", err)
	}
	if conn, err := net.Dial("unix", c.path); err == nil {
		conn.Close()
		t.Error("the socket still answers after the node closed")
	}
}

// has reports whether grants include g, with the implications the docs give (manage
// implies read, write implies read).
func hasGrant(grants []string, g string) bool {
	switch {
	case slices.Contains(grants, g):
		return true
	case g == "instances:read":
		return slices.Contains(grants, "instances:manage")
	case g == "deployments:read":
		return slices.Contains(grants, "deployments:write")
	}
	return false
}

// tokenMatrix is what an instance token needs for every route of the node's API: a grant,
// "admin" (never), "any" (every instance; the answer is narrowed), or for routes on one
// instance "op:read", "op:manage", "op:rm" (manage, never itself) or "op:limits" (only
// its creator). Instance operations are always allowed on the caller itself (except rm
// and limits) and on its children. A route the API registers that is missing here fails
// TestInstanceTokenMatrix.
var tokenMatrix = map[string]string{
	"GET /v1/status":                              "nodes:read",
	"GET /v1/nodes":                               "nodes:read",
	"GET /v1/events":                              "events:read",
	"POST /v1/send":                               "messages:send",
	"POST /v1/broadcast":                          "messages:send",
	"POST /v1/instances":                          "instances:create",
	"GET /v1/instances":                           "any",
	"GET /v1/instances/{name}":                    "op:read",
	"DELETE /v1/instances/{name}":                 "op:rm",
	"GET /v1/instances/{name}/stats":              "op:read",
	"GET /v1/instances/{name}/logs":               "op:read",
	"POST /v1/instances/{name}/start":             "op:manage",
	"POST /v1/instances/{name}/stop":              "op:manage",
	"POST /v1/instances/{name}/restart":           "op:manage",
	"POST /v1/instances/{name}/set-limits":        "op:limits",
	"POST /v1/instances/{name}/wait":              "op:read",
	"POST /v1/instances/{name}/snapshot":          "op:manage",
	"POST /v1/instances/{name}/restore":           "op:manage",
	"GET /v1/instances/{name}/snapshots":          "op:read",
	"DELETE /v1/instances/{name}/snapshots/{tag}": "op:manage",
	"GET /v1/resources":                           "nodes:read",
	"POST /v1/deployments":                        "deployments:write",
	"GET /v1/deployments":                         "deployments:read",
	"GET /v1/deployments/{name}":                  "deployments:read",
	"POST /v1/deployments/{name}/scale":           "deployments:write",
	"DELETE /v1/deployments/{name}":               "deployments:write",
	"POST /v1/nodes/{node}/drain":                 "admin",
	"POST /v1/drain":                              "admin",
	"POST /v1/reservations":                       "admin",
	"GET /v1/reservations":                        "admin",
	"DELETE /v1/reservations/{id}":                "admin",
	"PUT /v1/quotas/{ns}":                         "admin",
	"GET /v1/quotas/{ns}":                         "admin",
	"GET /v1/quotas":                              "admin",
	"PATCH /v1/quotas/{ns}":                       "admin",
	"DELETE /v1/quotas/{ns}":                      "admin",
	"GET /v1/monitor/rules":                       "admin",
	"POST /v1/monitor/rules":                      "admin",
	"GET /v1/monitor/rules/{name}":                "admin",
	"DELETE /v1/monitor/rules/{name}":             "admin",
	"GET /v1/monitor/alerts":                      "admin",
	"GET /v1/monitor/silences":                    "admin",
	"POST /v1/monitor/silences":                   "admin",
	"DELETE /v1/monitor/silences/{id}":            "admin",
	"GET /v1/monitor/channels":                    "admin",
	"POST /v1/monitor/channels":                   "admin",
	"DELETE /v1/monitor/channels/{name}":          "admin",
	"POST /v1/monitor/channels/{name}/test":       "admin",
	"GET /v1/monitor/channels/{name}/history":     "admin",
	"POST /v1/monitor/logs":                       "any",
	"POST /v1/monitor/spans":                      "any",
	"GET /v1/monitor/logs":                        "admin",
	"GET /v1/monitor/traces":                      "admin",
	"GET /v1/monitor/traces/{trace}":              "admin",
	"POST /v1/acl/tokens":                         "admin",
	"GET /v1/acl/tokens":                          "admin",
	"GET /v1/acl/tokens/{id}":                     "admin",
	"DELETE /v1/acl/tokens/{id}":                  "admin",
	"GET /v1/acl/whoami":                          "any",
	"POST /ui/login":                              "admin",
	"GET /ui/session":                             "admin",
	"POST /ui/logout":                             "admin",
	"GET /v1/cluster/overview":                    "nodes:read",
	"POST /v1/acl/roles":                          "admin",
	"GET /v1/acl/roles":                           "admin",
	"GET /v1/acl/roles/{name}":                    "admin",
	"DELETE /v1/acl/roles/{name}":                 "admin",
	"GET /v1/audit":                               "admin",
	"GET /v1/audit/verify":                        "admin",
	"GET /v1/secrets":                             "admin",
	"PUT /v1/secrets/{ns}/{name}":                 "admin",
	"GET /v1/secrets/{ns}/{name}":                 "admin",
	"DELETE /v1/secrets/{ns}/{name}":              "admin",
	"POST /v1/secrets/{ns}/{name}/reveal":         "admin",
	"POST /v1/secrets/rotate-key":                 "admin",
	"POST /v1/namespaces":                         "admin",
	"GET /v1/namespaces":                          "admin",
	"GET /v1/namespaces/{ns}":                     "admin",
	"DELETE /v1/namespaces/{ns}":                  "admin",
	"GET /v1/mesh/services":                       "nodes:read",
	"GET /v1/mesh/services/{name}":                "nodes:read",
	"GET /v1/mesh/intentions":                     "nodes:read",
	"GET /v1/mesh/metrics/{name}":                 "nodes:read",
	"POST /v1/mesh/spans":                         "any",
	"POST /v1/mesh/services":                      "admin",
	"POST /v1/mesh/deregister":                    "admin",
	"POST /v1/mesh/services/{name}/config":        "admin",
	"POST /v1/mesh/intentions":                    "admin",
	"POST /v1/mesh/mtls":                          "admin",
	"POST /v1/mesh/call":                          "admin",
	// the DFS: refused to instance tokens until fs grants exist (the security branch)
	"PUT /v1/fs/files":                   "admin",
	"GET /v1/fs/files":                   "admin",
	"DELETE /v1/fs/files":                "admin",
	"GET /v1/fs/stat":                    "admin",
	"GET /v1/fs/list":                    "admin",
	"POST /v1/fs/move":                   "admin",
	"GET /v1/fs/trees":                   "admin",
	"POST /v1/fs/trees":                  "admin",
	"GET /v1/fs/versions":                "admin",
	"POST /v1/fs/revert":                 "admin",
	"GET /v1/fs/watch":                   "admin",
	"GET /v1/fs/snapshots":               "admin",
	"POST /v1/fs/snapshots":              "admin",
	"DELETE /v1/fs/snapshots/{snapshot}": "admin",
	"POST /v1/fs/restore":                "admin",
	"GET /v1/fs/du":                      "admin",
	"GET /v1/fs/export":                  "admin",
	"PUT /v1/fs/import":                  "admin",
	"GET /ipfs/{rest...}":                "admin",
	"GET /metrics":                       "nodes:read",
	"GET /api/v1/query":                  "nodes:read",
	"POST /api/v1/query":                 "nodes:read",
	"GET /api/v1/query_range":            "nodes:read",
	"POST /api/v1/query_range":           "nodes:read",
	"GET /api/v1/series":                 "nodes:read",
	"POST /api/v1/series":                "nodes:read",
	"GET /api/v1/labels":                 "nodes:read",
	"POST /api/v1/labels":                "nodes:read",
	"GET /api/v1/label/{name}/values":    "nodes:read",
	"GET /api/v1/status/buildinfo":       "nodes:read",
	"POST /v1/monitor/query":             "nodes:read",
	"GET /v1/monitor/dashboard":          "nodes:read",
	"POST /v1/monitor/metrics":           "any",
	"GET /v1/debug/pprof/{node}":         "admin",
	"POST /v1/monitor/checks":            "admin",
	"GET /v1/monitor/checks":             "nodes:read",
	"DELETE /v1/monitor/checks/{name}":   "admin",
}

// matrixRequest is the request a matrix case sends for a route on target (an instance
// name for instance routes): valid bodies, and queries that keep streams and waits short
// and deployments a dry run.
func matrixRequest(pattern, target string, seq int) (method, path, body string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.NewReplacer("{node}", "n1", "{id}", "no-such-reservation", "{ns}", "default", "{tag}", "t1").Replace(path)
	if strings.HasPrefix(path, "/v1/deployments/") {
		path = strings.Replace(path, "{name}", "no-such-deployment", 1)
	}
	if strings.HasPrefix(path, "/v1/secrets/") {
		path = strings.Replace(path, "{name}", "no_such_secret", 1)
	}
	if strings.HasPrefix(path, "/v1/acl/roles/") {
		path = strings.Replace(path, "{name}", "no-such-role", 1)
	}
	if strings.HasPrefix(path, "/v1/mesh/") {
		path = strings.Replace(path, "{name}", "no-such-service", 1)
	}
	if strings.HasPrefix(path, "/api/v1/label/") {
		path = strings.Replace(path, "{name}", "node", 1)
	}
	if strings.HasPrefix(path, "/v1/monitor/rules/") || strings.HasPrefix(path, "/v1/monitor/channels/") {
		path = strings.Replace(path, "{name}", "no-such-alert", 1)
	}
	path = strings.Replace(path, "{id}", "no-such-id", 1)
	if strings.HasPrefix(path, "/v1/monitor/checks/") {
		path = strings.Replace(path, "{name}", "no-such-check", 1)
	}
	path = strings.Replace(path, "{name}", target, 1)
	switch {
	case pattern == "POST /v1/instances":
		body = fmt.Sprintf(`{"name":"made-%d","command":["true"],"start":false}`, seq)
	case pattern == "POST /v1/send":
		body = `{"node":"n1","type":"matrix","data":1}`
	case pattern == "POST /v1/broadcast":
		body = `{"type":"matrix","data":1}`
	case pattern == "POST /v1/deployments":
		path += "?dry_run=1"
		body = `{"name":"dep","instances":1,"command":["true"]}`
	case pattern == "POST /v1/deployments/{name}/scale":
		body = `{"instances":0}`
	case pattern == "POST /v1/drain":
		body = `{"node":"n1"}`
	case pattern == "POST /v1/reservations":
		body = `{"cpu_percent":1,"ram_mb":1}`
	case pattern == "PUT /v1/quotas/{ns}", pattern == "PATCH /v1/quotas/{ns}":
		body = `{"cpu_percent":100}`
	case strings.HasSuffix(pattern, "{name}") && method == "DELETE":
		path += "?grace=0s"
	case strings.HasSuffix(pattern, "/wait"):
		path += "?timeout=1ms"
	case strings.HasSuffix(pattern, "/stop"), strings.HasSuffix(pattern, "/restart"):
		body = `{"grace_s":0}`
	case strings.HasSuffix(pattern, "/set-limits"):
		body = `{"ram_mb":64}`
	case strings.HasSuffix(pattern, "/snapshot"), strings.HasSuffix(pattern, "/restore"):
		body = `{"tag":"t1"}`
	case method == "POST":
		body = `{}`
	}
	return method, path, body
}

// TestInstanceTokenMatrix calls every route of the node's API with instance tokens: one
// without grants and one per grant, on instances of the caller's node and of another node
// (forwarded: the other node decides), on the caller itself and on its children, and
// checks each answer is allowed (reaches the handler) or refused (403 forbidden) as
// tokenMatrix says.
func TestInstanceTokenMatrix(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	n0, n1 := ns[0], ns[1]
	ctx := t.Context()
	routes := n0.api.Routes()
	if got := n1.api.Routes(); !slices.Equal(got, routes) {
		t.Fatalf("nodes register different routes: %v and %v", routes, got)
	}
	for _, p := range routes {
		if _, ok := tokenMatrix[p]; !ok {
			t.Errorf("route %q has no entry in tokenMatrix: say what an instance token needs for it (and add its rule in instances/authz.go)", p)
		}
	}
	for p := range tokenMatrix {
		if !slices.Contains(routes, p) {
			t.Errorf("tokenMatrix names %q, which the API does not register", p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sort.Strings(routes)

	// Callers on n0: one without grants, one per grant.
	variants := [][]string{nil}
	for _, g := range instances.AllGrants {
		variants = append(variants, []string{g})
	}
	creator := -1
	for i, gs := range variants {
		if _, err := n0.instances.Create(ctx, &api.CreateRequest{Name: fmt.Sprintf("caller-%d", i), Command: []string{"true"},
			Env: map[string]string{"SECRET": fmt.Sprintf("caller-%d", i)}, Grants: gs}); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(gs, []string{instances.GrantInstancesCreate}) {
			creator = i
		}
	}
	clients := make([]*instClient, len(variants))
	for i := range variants {
		clients[i] = newInstClient(t, n0, fmt.Sprintf("caller-%d", i))
	}
	creatorName := fmt.Sprintf("caller-%d", creator)

	// ensure (re)creates a target the matrix may have removed and waits until n0 knows it.
	ensure := func(name string) {
		t.Helper()
		onN1 := strings.HasSuffix(name, "-remote")
		owner := n0
		if onN1 {
			owner = n1
		}
		if _, ok := owner.instances.Info(name); !ok {
			// The owner removed it; wait until n0 has seen the removal too, or the
			// create through n0 is refused as a name still in use on n1.
			testutil.WaitFor(t, 10*time.Second, "n0 forgets "+name, func() (bool, string) {
				r, ok := n0.instances.Lookup(name)
				return !ok, fmt.Sprintf("%+v", r)
			})
			req := &api.CreateRequest{Name: name, Command: []string{"true"}, Env: map[string]string{"SECRET": name}}
			if strings.HasPrefix(name, "child-") {
				if onN1 {
					req.Node = "n1"
				}
				b, _ := json.Marshal(req)
				if st, body := clients[creator].call("POST", "/v1/instances", string(b)); st != 201 {
					t.Fatalf("create %s through %s: %d %s", name, creatorName, st, body)
				}
			} else if _, err := owner.instances.Create(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		in, _ := owner.instances.Lookup(name)
		testutil.WaitFor(t, 10*time.Second, "n0 knows "+name, func() (bool, string) {
			r, ok := n0.instances.Lookup(name)
			return ok && r.ID == in.ID, fmt.Sprintf("%+v", r)
		})
	}
	targets := []string{"other-local", "other-remote", "child-local", "child-remote"}
	for _, x := range targets {
		ensure(x)
	}
	if r, _ := n0.instances.Lookup("child-remote"); r.CreatedBy != creatorName || r.Node != "n1" {
		t.Fatalf("child-remote record %+v; want created by %s on n1", r, creatorName)
	}

	seq := 0
	check := func(i int, pattern, target string, allowed bool) {
		t.Helper()
		seq++
		method, path, body := matrixRequest(pattern, target, seq)
		st, out := clients[i].call(method, path, body)
		denied := st == http.StatusForbidden && strings.Contains(out, `"forbidden"`)
		who := fmt.Sprintf("caller-%d %v: %s %s", i, variants[i], method, path)
		switch {
		case allowed && (st == http.StatusForbidden || st == http.StatusUnauthorized):
			t.Errorf("%s = %d %s; want allowed", who, st, out)
		case allowed && target != "" && st == http.StatusNotFound:
			t.Errorf("%s = 404 %s; want the operation to reach instance %s", who, out, target)
		case !allowed && !denied:
			t.Errorf("%s = %d %s; want 403 forbidden", who, st, out)
		}
	}
	for _, pattern := range routes {
		need := tokenMatrix[pattern]
		for i, gs := range variants {
			self := fmt.Sprintf("caller-%d", i)
			if !strings.HasPrefix(need, "op:") {
				check(i, pattern, "", need == "any" || need != "admin" && hasGrant(gs, need))
				continue
			}
			for _, target := range append([]string{self}, targets...) {
				if target != self {
					ensure(target)
				}
				var allowed bool
				switch {
				case target == self:
					allowed = need != "op:rm" && need != "op:limits"
				case strings.HasPrefix(target, "child-") && i == creator:
					allowed = true
				case need == "op:read":
					allowed = hasGrant(gs, "instances:read")
				case need == "op:manage", need == "op:rm":
					allowed = hasGrant(gs, "instances:manage")
				}
				check(i, pattern, target, allowed)
			}
		}
	}

	// Restart with new limits is a limits change: the creator's or an admin's.
	manager := slices.IndexFunc(variants, func(gs []string) bool { return slices.Equal(gs, []string{instances.GrantInstancesManage}) })
	for _, x := range []struct {
		i       int
		target  string
		allowed bool
	}{{0, "caller-0", false}, {manager, "other-local", false}, {manager, "other-remote", false},
		{creator, "child-local", true}, {creator, "child-remote", true}} {
		ensure2 := x.target
		if !strings.HasPrefix(ensure2, "caller-") {
			ensure(ensure2)
		}
		st, out := clients[x.i].call("POST", "/v1/instances/"+x.target+"/restart", `{"ram_mb":64,"grace_s":0}`)
		if (st == http.StatusForbidden) == x.allowed || st == http.StatusNotFound {
			t.Errorf("caller-%d restart %s with ram_mb: %d %s; want allowed=%v", x.i, x.target, st, out, x.allowed)
		}
	}

	// Env: an instance sees its own, never another's (list and show, local and forwarded).
	reader := slices.IndexFunc(variants, func(gs []string) bool { return slices.Equal(gs, []string{instances.GrantInstancesRead}) })
	st, out := clients[reader].call("GET", "/v1/instances", "")
	var list []api.Instance
	if st != 200 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list with instances:read: %d %s", st, out)
	}
	seen := map[string]bool{}
	for _, x := range list {
		seen[x.Name] = true
		if mine := x.Name == fmt.Sprintf("caller-%d", reader); mine != (x.Env["SECRET"] != "") {
			t.Errorf("list with instances:read shows %s with env %v", x.Name, x.Env)
		}
	}
	if !seen["other-remote"] || !seen["child-local"] {
		t.Errorf("list with instances:read = %v; want every instance", seen)
	}
	for _, target := range []string{"other-local", "other-remote"} {
		ensure(target)
		st, out := clients[reader].call("GET", "/v1/instances/"+target, "")
		if st != 200 || strings.Contains(out, "SECRET") {
			t.Errorf("show %s with instances:read: %d %s; want 200 without env", target, st, out)
		}
	}
	// Without instances:read the list holds the caller and its children only.
	st, out = clients[creator].call("GET", "/v1/instances", "")
	list = nil
	if st != 200 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list of the creator: %d %s", st, out)
	}
	var names []string
	for _, x := range list {
		if !strings.HasPrefix(x.Name, "made-") { // created by the matrix's allowed creates
			names = append(names, x.Name)
		} else if x.CreatedBy != creatorName {
			t.Errorf("list without instances:read shows %s, created by %q", x.Name, x.CreatedBy)
		}
	}
	if want := []string{creatorName, "child-local", "child-remote"}; !sameSet(names, want) {
		t.Errorf("list without instances:read = %v; want %v", names, want)
	}

	// A route registered without a rule is refused to instances.
	n0.api.Handle("GET /v1/unruled", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if st, out := clients[len(clients)-1].call("GET", "/v1/unruled", ""); st != http.StatusForbidden {
		t.Errorf("route without a rule: %d %s; want 403", st, out)
	}
	t.Logf("%d requests", seq)
}

// apiError is the message of an API error answer (the body itself when it is not one).
func apiError(body string) string {
	var e api.APIError
	if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
		return body
	}
	return e.Error
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// BenchmarkInstanceSocketCall: one GET .../stats of an instance through its own socket
// (token check, caller, route rule, per-target rule) against the same request on the
// node's admin socket, in the same run.
func BenchmarkInstanceSocketCall(b *testing.B) {
	n := startSchedCluster(b, 1, nil)[0]
	if _, err := n.instances.Create(context.Background(), &api.CreateRequest{Name: "bench", Command: []string{"true"}}); err != nil {
		b.Fatal(err)
	}
	inst := newInstClient(b, n, "bench")
	admin := unixClient(b, n.SocketPath(), "")
	for _, c := range []struct {
		name string
		c    *instClient
	}{{"admin-socket", admin}, {"instance-socket", inst}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if st, out := c.c.call("GET", "/v1/instances/bench/stats", ""); st != 200 {
					b.Fatalf("%d %s", st, out)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
		})
	}
}
