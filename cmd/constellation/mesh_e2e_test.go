package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestMeshCLIAcrossTwoNodes registers a service on node beta through the binary, lists it
// and calls it by name from node alpha (the call crosses the two node processes over a
// libp2p stream); bad input gets a clear error.
func TestMeshCLIAcrossTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s from %s", strings.TrimPrefix(r.URL.Path, "/users/"), r.Header.Get("X-Mesh-Caller"))
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bl)
	defer backend.Close()
	bport := bl.Addr().(*net.TCPAddr).Port

	dirA, dirB := t.TempDir(), t.TempDir()
	portA, portB := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	startPeer(t, dirA, "--node", "alpha", "--cluster", "mesh-e2e", "--cluster-key", "mesh-e2e-key", "--bind", fmt.Sprintf("127.0.0.1:%d", portA))
	startPeer(t, dirB, "--node", "beta", "--cluster", "mesh-e2e", "--cluster-key", "mesh-e2e-key", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA))
	waitJSON(t, 30*time.Second, "alpha sees 2 nodes alive", func(r result) bool {
		var st map[string]any
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(2)
	}, "status", "--json", "--data-dir", dirA)

	if r := run(t, "--data-dir", dirB, "mesh", "register", "--name", "user-service", "--version", "1.0.0", "--protocol", "http",
		"--port", fmt.Sprint(bport), "--tags", "api,auth"); r.code != 0 || !strings.Contains(r.stdout, "registered user-service") {
		t.Fatalf("register: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var eps []api.MeshEndpoint
	waitJSON(t, 30*time.Second, "alpha lists beta's healthy endpoint", func(r result) bool {
		eps = nil
		return json.Unmarshal([]byte(r.stdout), &eps) == nil && len(eps) == 1 && eps[0].Health == "healthy"
	}, "--data-dir", dirA, "mesh", "endpoints", "user-service", "--json")
	if eps[0].Node != "beta" || eps[0].Version != "1.0.0" || strings.Join(eps[0].Tags, ",") != "api,auth" {
		t.Errorf("endpoint = %+v", eps[0])
	}
	if r := run(t, "--data-dir", dirA, "mesh", "services"); r.code != 0 || !strings.Contains(r.stdout, "user-service") || !strings.Contains(r.stdout, "1/1") {
		t.Errorf("services: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := run(t, "--data-dir", dirA, "mesh", "call", "user-service", "--method", "GET", "--path", "/users/123", "--timeout-ms", "5000", "--retries", "3")
	if r.code != 0 || r.stdout != "user 123 from default/" {
		t.Errorf("call: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "--data-dir", dirA, "mesh", "metrics", "user-service"); r.code != 0 || !strings.Contains(r.stdout, "1 requests") {
		t.Errorf("metrics: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Bad input names the problem.
	if r := run(t, "--data-dir", dirA, "mesh", "call", "user-servic"); r.code == 0 || !strings.Contains(r.stderr, "did you mean user-service") {
		t.Errorf("unknown service: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "--data-dir", dirB, "mesh", "register", "--name", "x", "--port", "70000"); r.code == 0 || !strings.Contains(r.stderr, `"port"`) {
		t.Errorf("bad port: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "--data-dir", dirB, "mesh", "deregister", "--name", "user-service"); r.code != 0 {
		t.Errorf("deregister: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitJSON(t, 30*time.Second, "deregistration reaches alpha", func(r result) bool {
		return strings.TrimSpace(r.stdout) == "[]"
	}, "--data-dir", dirA, "mesh", "services", "--json")
}
