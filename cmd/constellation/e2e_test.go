package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// The end-to-end tests build the binary once and drive it as a user would.

// binary is the constellation binary, built once.
func binary(t testing.TB) string { return testutil.Binary(t, false) }

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run executes the binary to completion.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv is run with extra environment variables (KEY=VALUE).
func runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(testutil.CleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return result{out.String(), errb.String(), code}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish in 60s; stderr: %s", args, errb.String())
		return result{}
	}
}

// syncBuf is a bytes.Buffer safe for the writer goroutine of exec and the test.
type syncBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// peerProc is a running `constellation peer`.
type peerProc struct {
	cmd     *exec.Cmd
	stderr  *syncBuf
	done    chan struct{} // closed when the process has exited; then waitErr is set
	waitErr error
	dir     string
}

func startPeer(t *testing.T, dir string, args ...string) *peerProc {
	t.Helper()
	return startPeerCmd(t, dir, exec.Command(binary(t), append([]string{"peer", "--data-dir", dir, "--no-mdns"}, args...)...))
}

// waitJSON runs a --json command until check accepts its output or the timeout passes.
func waitJSON(t *testing.T, timeout time.Duration, what string, check func(r result) bool, args ...string) result {
	t.Helper()
	var r result
	testutil.WaitForEvery(t, timeout, 200*time.Millisecond, what, func() (bool, string) {
		r = run(t, args...)
		return r.code == 0 && check(r), fmt.Sprintf("%v -> exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	})
	return r
}

func TestCLIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	portA, portB, apiPort := testutil.FreePort(t, nil), testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	a := startPeer(t, dirA, "--node", "alpha", "--cluster", "e2e", "--bind", fmt.Sprintf("127.0.0.1:%d", portA),
		"--labels", "region=eu,type=db", "--api-listen", fmt.Sprintf("127.0.0.1:%d", apiPort))
	// beta joins a running alpha (nodes started at the same moment are TestAlertE2E's
	// case: unfinished admission exchanges only hold a peer off for 2 s).
	waitJSON(t, 30*time.Second, "alpha up", func(r result) bool { return true }, "status", "--json", "--data-dir", dirA)
	b := startPeer(t, dirB, "--node", "beta", "--cluster", "e2e", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA))

	// status --json (flags before and after the verb both work).
	var st map[string]any
	waitJSON(t, 30*time.Second, "alpha sees 2 nodes alive", func(r result) bool {
		st = nil
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(2)
	}, "status", "--json", "--data-dir", dirA)
	for _, f := range []string{"name", "id", "cluster", "addresses", "nodes_alive", "nodes_total"} {
		if _, ok := st[f]; !ok {
			t.Errorf("status --json lacks %q: %v", f, st)
		}
	}
	if st["name"] != "alpha" || st["cluster"] != "e2e" || st["nodes_total"] != float64(2) {
		t.Errorf("status --json = %v", st)
	}
	addrs, _ := st["addresses"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("status --json has no addresses: %v", st)
	}
	for _, x := range addrs {
		if s, _ := x.(string); !strings.HasSuffix(s, "/p2p/"+st["id"].(string)) {
			t.Errorf("address %v lacks /p2p/<id>", x)
		}
	}
	if r := run(t, "--data-dir", dirB, "status"); r.code != 0 || !strings.Contains(r.stdout, "beta") || !strings.Contains(r.stdout, "2 alive") {
		t.Errorf("status (table) on beta: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// nodes --json on beta.
	var ns []map[string]any
	waitJSON(t, 30*time.Second, "beta lists 2 alive nodes", func(r result) bool {
		ns = nil
		if json.Unmarshal([]byte(r.stdout), &ns) != nil || len(ns) != 2 {
			return false
		}
		for _, n := range ns {
			if n["status"] != "alive" {
				return false
			}
		}
		return true
	}, "nodes", "--json", "--data-dir", dirB)
	for _, n := range ns {
		for _, f := range []string{"name", "id", "status", "addresses", "labels", "instances", "cpu_total", "ram_total_mb", "disk_total_mb", "last_seen"} {
			if _, ok := n[f]; !ok {
				t.Errorf("nodes --json element lacks %q: %v", f, n)
			}
		}
		if n["name"] == "alpha" {
			if l, _ := n["labels"].(map[string]any); l["region"] != "eu" || l["type"] != "db" {
				t.Errorf("alpha's labels on beta = %v", n["labels"])
			}
		}
	}
	if r := run(t, "nodes", "--data-dir", dirA); r.code != 0 || !strings.Contains(r.stdout, "alpha (self)") || !strings.Contains(r.stdout, "beta") {
		t.Errorf("nodes (table): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// send: delivered to beta's event stream with the returned ID.
	r := run(t, "send", "beta", "--type", "greet", "--data", `{"x":1}`, "--json", "--data-dir", dirA)
	var sent struct {
		ID    string   `json:"id"`
		Nodes []string `json:"nodes"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sent) != nil || sent.ID == "" {
		t.Fatalf("send: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "events", "--data-dir", dirB, "--since", "1", "--type", "message", "--count", "1", "--json")
	var ev struct {
		Type    string `json:"type"`
		Message struct {
			ID   string          `json:"id"`
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"message"`
	}
	if r.code != 0 || json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &ev) != nil {
		t.Fatalf("events --count 1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if ev.Type != "message" || ev.Message.ID != sent.ID || ev.Message.Type != "greet" || string(ev.Message.Data) != `{"x":1}` {
		t.Errorf("event on beta = %+v; want the message %s", ev, sent.ID)
	}
	if r := run(t, "send", "nobody", "--type", "t", "--data", "1", "--data-dir", dirA); r.code == 0 || !strings.Contains(r.stderr, `"nobody"`) {
		t.Errorf("send to an unknown node: exit %d, stderr %q; want a failure naming it", r.code, r.stderr)
	}
	if r := run(t, "broadcast", "--type", "t", "--data", "not json", "--data-dir", dirA); r.code == 0 || !strings.Contains(r.stderr, "not valid JSON") {
		t.Errorf("broadcast with bad --data: exit %d, stderr %q", r.code, r.stderr)
	}

	// The TCP API: TLS with a pinned certificate, and the token is required.
	checkTCPAPI(t, a, dirA, fmt.Sprintf("127.0.0.1:%d", apiPort))

	// A second node on a running node's data dir refuses to start.
	if r := run(t, "peer", "--data-dir", dirA, "--no-mdns", "--bind", "127.0.0.1:0"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("second peer on the same data dir: exit %d, stderr %q", r.code, r.stderr)
	}

	// SIGTERM: beta leaves gracefully and alpha lists it as left.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
		if b.waitErr != nil {
			t.Errorf("beta after SIGTERM: %v\n%s", b.waitErr, b.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("beta did not exit within 20s of SIGTERM")
	}
	waitJSON(t, 15*time.Second, "alpha lists beta as left", func(r result) bool {
		var ns []map[string]any
		if json.Unmarshal([]byte(r.stdout), &ns) != nil {
			return false
		}
		for _, n := range ns {
			if n["name"] == "beta" {
				return n["status"] == "left"
			}
		}
		return false
	}, "nodes", "--json", "--data-dir", dirA)
	_ = a
}

// TestCLIBadFlags: every malformed invocation fails with a message that names the problem.
func TestCLIBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"malformed join", []string{"peer", "--data-dir", dir, "--no-mdns", "--bind", "127.0.0.1:0", "--join", "10.0.0.1:notaport"},
			[]string{"10.0.0.1:notaport", "accepted forms"}},
		{"join multiaddr junk", []string{"peer", "--data-dir", dir, "--no-mdns", "--bind", "127.0.0.1:0", "--join", "/ip4/1.2.3.4/bogus"},
			[]string{"/ip4/1.2.3.4/bogus", "accepted forms"}},
		{"bad labels", []string{"peer", "--data-dir", dir, "--no-mdns", "--labels", "region"}, []string{"labels", "key=value"}},
		{"bad bind", []string{"peer", "--data-dir", dir, "--no-mdns", "--bind", "127.0.0.1:99999"}, []string{"bind", "127.0.0.1:99999"}},
		{"unknown flag", []string{"status", "--colour"}, []string{"unknown flag", "--colour", "--help"}},
		{"unknown command", []string{"statsu"}, []string{"unknown command"}},
		{"no node", []string{"status", "--data-dir", dir}, []string{"no running node", "--data-dir"}},
		{"send without type", []string{"send", "x", "--data", "1", "--data-dir", dir}, []string{"--type"}},
		{"send without node", []string{"send", "--type", "t", "--data", "1", "--data-dir", dir}, []string{"NODE"}},
		{"nodes bad status", []string{"nodes", "--status", "zombie", "--data-dir", dir}, []string{"zombie", "alive"}},
		{"bench bad what", []string{"bench", "cluster", "--what", "everything"}, []string{"everything", "latency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			if r.code == 0 {
				t.Fatalf("%v succeeded; want a failure\n%s", tt.args, r.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%v: stderr %q does not mention %q", tt.args, r.stderr, w)
				}
			}
		})
	}
}

// checkTCPAPI drives the TLS API of the peer a (data dir dirA, API on addr) as a user would:
// pins from the flag, the data dir and known_nodes (--trust), refusals that send no token.
func checkTCPAPI(t *testing.T, a *peerProc, dirA, addr string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dirA, "api.fingerprint"))
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.TrimSpace(string(b))
	if !strings.HasPrefix(fp, "sha256:") || !strings.Contains(a.stderr.String(), fp) {
		t.Errorf("fingerprint %q not printed by the peer:\n%s", fp, a.stderr.String())
	}
	tokb, err := os.ReadFile(filepath.Join(dirA, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(tokb))
	empty := t.TempDir() // a data dir without a node: no token, no fingerprint
	env := []string{"CONSTELLATION_KNOWN_NODES=" + filepath.Join(t.TempDir(), "known_nodes")}

	if r := runEnv(t, env, "status", "--api", addr, "--data-dir", empty, "--api-token", "wrong-token", "--api-fingerprint", fp); r.code == 0 || !strings.Contains(r.stderr, "bearer token") {
		t.Errorf("status over TLS with a wrong token: exit %d, stderr %q; want a 401 about the token", r.code, r.stderr)
	}
	if r := runEnv(t, env, "status", "--json", "--api", addr, "--data-dir", empty, "--api-token", tok, "--api-fingerprint", fp); r.code != 0 || !strings.Contains(r.stdout, `"alpha"`) || !strings.Contains(r.stdout, `"api_fingerprint": "`+fp+`"`) {
		t.Errorf("status over TLS with the token and the pin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runEnv(t, env, "status", "--api", addr, "--data-dir", dirA); r.code != 0 || !strings.Contains(r.stdout, fp) {
		t.Errorf("status over TLS with token and pin from --data-dir: exit %d; want the fingerprint in the table\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runEnv(t, env, "status", "--api", addr, "--data-dir", empty, "--api-token", tok, "--api-fingerprint", "sha256:12ab"); r.code == 0 || !strings.Contains(r.stderr, "64 hex digits") {
		t.Errorf("status with a malformed --api-fingerprint: exit %d, stderr %q; want what a fingerprint looks like", r.code, r.stderr)
	}
	if r := runEnv(t, env, "status", "--api", "http://"+addr, "--data-dir", dirA); r.code == 0 || !strings.Contains(r.stderr, "plain HTTP") {
		t.Errorf("status over http:// with the admin token: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
	// Trust on first use: refused without --trust, recorded with it, then known.
	if r := runEnv(t, env, "status", "--api", addr, "--data-dir", empty, "--api-token", tok); r.code == 0 || !strings.Contains(r.stderr, "no fingerprint is known") || !strings.Contains(r.stderr, fp) {
		t.Errorf("status over TLS without a pin: exit %d, stderr %q; want a refusal naming the presented fingerprint", r.code, r.stderr)
	}
	if r := runEnv(t, env, "status", "--api", addr, "--data-dir", empty, "--api-token", tok, "--trust"); r.code != 0 || !strings.Contains(r.stderr, "trusting "+addr) {
		t.Errorf("status --trust: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runEnv(t, env, "status", "--api", addr, "--data-dir", empty, "--api-token", tok); r.code != 0 || strings.Contains(r.stderr, "trusting") {
		t.Errorf("status after --trust recorded the pin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An impostor on a port the CLI is pointed at (the node restarting, the port taken by
	// someone else) gets no token: a plain listener only sees a TLS ClientHello.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var buf bytes.Buffer
		tmp := make([]byte, 4096)
		for {
			n, err := c.Read(tmp)
			buf.Write(tmp[:n])
			if err != nil || bytes.Contains(buf.Bytes(), []byte("\r\n\r\n")) {
				break
			}
			if buf.Len() > 0 { // answer the ClientHello as a plain-HTTP server would
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
			}
		}
		got <- buf.Bytes()
	}()
	if r := runEnv(t, env, "status", "--api", l.Addr().String(), "--data-dir", dirA); r.code == 0 || !strings.Contains(r.stderr, "does not speak TLS") {
		t.Errorf("status against a plain impostor: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
	if b := <-got; bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte("Authorization")) {
		t.Errorf("the impostor received the token: %q", b)
	}
}
