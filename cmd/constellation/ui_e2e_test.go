package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// TestUICommandOneTimeLink: `constellation ui` serves a socket-only node's dashboard on a
// local port; only the browser that opens the one-time link within its life gets in.
// The test plays another local user (no link, a guessed cookie, a bearer header, the link
// replayed) and a cross-site page (a mutating request without the CSRF token).
func TestUICommandOneTimeLink(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	startPeer(t, dir, "--node", "solo", "--cluster", "ui", "--bind", fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t, nil)))
	waitJSON(t, 30*time.Second, "node answers", func(r result) bool { return strings.Contains(r.stdout, `"solo"`) }, "status", "--json", "--data-dir", dir)

	if r := run(t, "ui", "--data-dir", dir, "--listen", "0.0.0.0:0"); r.code == 0 || !strings.Contains(r.stderr, "loopback") {
		t.Errorf("ui --listen 0.0.0.0:0: exit %d %q; want refused (loopback only)", r.code, r.stderr)
	}
	if r := run(t, "ui", "--api", "127.0.0.1:7443", "--data-dir", dir); r.code == 0 || !strings.Contains(r.stderr, "/ui/") {
		t.Errorf("ui --api TCP: exit %d %q; want the node's own /ui/ named", r.code, r.stderr)
	}

	cmd := exec.Command(binary(t), "ui", "--json", "--data-dir", dir)
	cmd.Env = testutil.CleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	var link struct {
		URL      string `json:"url"`
		LoginURL string `json:"login_url"`
	}
	select {
	case l := <-line:
		if err := json.Unmarshal([]byte(l), &link); err != nil || !strings.HasPrefix(link.LoginURL, "http://127.0.0.1:") {
			t.Fatalf("ui --json printed %q (%v); stderr %s", l, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("ui printed nothing in 30s; stderr %s", stderr.String())
	}
	base := strings.TrimSuffix(link.URL, "/ui/")
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	stranger := &http.Client{CheckRedirect: noRedirect, Timeout: 10 * time.Second}
	do := func(c *http.Client, method, path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"type":"t","data":1}`))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Another local user: no session, a guessed cookie, or a bearer header gets nothing.
	for _, hdr := range []map[string]string{nil, {"Cookie": "cst_session=guess"}, {"Authorization": "Bearer " + strings.Repeat("a", 20)}} {
		if st, body := do(stranger, "GET", "/v1/status", hdr); st != http.StatusUnauthorized {
			t.Errorf("GET /v1/status with %v = %d %s; want 401", hdr, st, body)
		}
	}
	if st, body := do(stranger, "GET", "/ui/", nil); st != 200 || !strings.Contains(body, "<html") {
		t.Errorf("GET /ui/ = %d; want the page", st)
	}
	// The files are public: a path that climbs out of /ui/ must not reach the API.
	for _, p := range []string{"/ui/../v1/status", "/ui/%2e%2e/v1/status", "/ui/..%2fv1/status"} {
		if st, body := do(stranger, "GET", p, nil); strings.Contains(body, `"cluster"`) {
			t.Errorf("GET %s without a session = %d %s; the API answered", p, st, body)
		}
	}
	// The owner opens the link.
	jar, _ := cookiejar.New(nil)
	owner := &http.Client{Jar: jar, CheckRedirect: noRedirect, Timeout: 10 * time.Second}
	if st, _ := do(owner, "GET", strings.TrimPrefix(link.LoginURL, base), nil); st != http.StatusSeeOther {
		t.Fatalf("opening the link = %d; want 303 to /ui/", st)
	}
	if st, _ := do(stranger, "GET", strings.TrimPrefix(link.LoginURL, base), nil); st != http.StatusUnauthorized {
		t.Errorf("the link a second time = %d; want 401", st)
	}
	st, body := do(owner, "GET", "/ui/session", nil)
	var sess struct {
		Kind, Role string
		CSRF       string `json:"csrf_token"`
	}
	if st != 200 || json.Unmarshal([]byte(body), &sess) != nil || sess.Kind != "socket" || sess.Role != "admin" || len(sess.CSRF) < 40 {
		t.Fatalf("GET /ui/session = %d %s", st, body)
	}
	if st, body := do(owner, "GET", "/v1/cluster/overview", nil); st != 200 || !strings.Contains(body, `"solo"`) {
		t.Errorf("overview = %d %s", st, body)
	}
	if st, body := do(owner, "POST", "/v1/broadcast", nil); st != http.StatusForbidden || !strings.Contains(body, "csrf") {
		t.Errorf("POST without the CSRF token = %d %s; want 403 csrf", st, body)
	}
	if st, body := do(owner, "POST", "/v1/broadcast", map[string]string{"X-CSRF-Token": sess.CSRF}); st != 200 {
		t.Errorf("POST with the CSRF token = %d %s", st, body)
	}
	if st, _ := do(owner, "POST", "/ui/logout", map[string]string{"X-CSRF-Token": sess.CSRF}); st != 200 {
		t.Errorf("logout = %d", st)
	}
	if st, _ := do(owner, "GET", "/v1/status", nil); st != http.StatusUnauthorized {
		t.Errorf("after logout = %d; want 401", st)
	}
	// SIGTERM stops it cleanly.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("ui after SIGTERM: %v; stderr %s", err, stderr.String())
		}
		exited <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Error("ui did not stop on SIGTERM")
	}
}

// TestBenchUI runs `constellation bench ui` briefly: it starts its nodes, opens the
// dashboards, reports the CPU rows and leaves no process behind.
func TestBenchUI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if r := run(t, "bench", "ui", "--pattern", "bogus"); r.code == 0 || !strings.Contains(r.stderr, "overview or lists") {
		t.Errorf("bench ui --pattern bogus: exit %d %q", r.code, r.stderr)
	}
	r := run(t, "bench", "ui", "--nodes", "1", "--dashboards", "2", "--duration", "1s", "--warmup", "500ms", "--json", "--work-dir", t.TempDir())
	var rows []benchResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rows) != nil || len(rows) != 3 {
		t.Fatalf("bench ui: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, row := range rows {
		if row.Unit != "% of a core" || row.Value < 0 {
			t.Errorf("row %+v", row)
		}
	}
	if !strings.Contains(rows[1].Note, "requests/s") {
		t.Errorf("the dashboards made no requests: %+v", rows[1])
	}
}
