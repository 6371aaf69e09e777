package ui_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/ui"
)

// The browser tests: every ui/e2e/<scenario>.mjs (files starting with _ are helpers) runs
// with node against a 3-node cluster this test starts, driving Debian's chromium through
// playwright-core (ui/e2e/package.json; `npm ci` there). Missing chromium, node or
// node_modules skip the test on a workstation and fail it in CI.

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

// inCI: missing browser tooling is a failure, not a skip.
func inCI() bool {
	return os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" || os.Getenv("CI") == "true"
}

// chromium finds the browser: $CONSTELLATION_CHROMIUM, else Debian's.
func chromium() string {
	if p := os.Getenv("CONSTELLATION_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// browserTooling returns chromium's path and the e2e directory, or skips (fails in CI)
// naming what is missing and how to get it.
func browserTooling(t *testing.T) (string, string) {
	t.Helper()
	dir, err := filepath.Abs("e2e")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	chrome := chromium()
	if chrome == "" {
		missing = append(missing, "chromium (apt-get install chromium, or set CONSTELLATION_CHROMIUM)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install nodejs)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "playwright-core (cd ui/e2e && npm ci)")
	}
	if len(missing) > 0 {
		msg := "browser tests need " + strings.Join(missing, ", ")
		if inCI() {
			t.Fatal(msg + " (.ci/run installs them)")
		}
		t.Skip(msg)
	}
	return chrome, dir
}

// artifacts is where screenshots go: $CONSTELLATION_ARTIFACTS/ui (kept by CI), else a temp
// dir that is kept and logged.
func artifacts(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("CONSTELLATION_ARTIFACTS"); d != "" {
		d = filepath.Join(d, "ui")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "constellation-ui-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// syncBuf is a bytes.Buffer written by a process's output copier and read by the test.
type syncBuf struct {
	mu sync.Mutex
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

// node is one `constellation peer` of the test cluster.
type node struct {
	Name    string `json:"name"`
	DataDir string `json:"data_dir"`
	URL     string `json:"url"` // https://127.0.0.1:PORT (the TCP API; /ui/ is the dashboard)
	PID     int    `json:"pid"`

	args []string
	cmd  *exec.Cmd
	log  *syncBuf
	done chan struct{}
}

type cluster struct {
	t     *testing.T
	bin   string
	nodes []*node
}

func (c *cluster) start(n *node) {
	c.t.Helper()
	n.cmd = exec.Command(c.bin, n.args...)
	n.cmd.Env = testutil.CleanEnv()
	n.log = &syncBuf{}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	n.PID = n.cmd.Process.Pid
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
}

func (n *node) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *node) stop() {
	if n.cmd == nil || !n.alive() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// run executes a client command of the binary.
func (c *cluster) run(args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = testutil.CleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %v: %s", args, err, errb.String())
	}
	return out.String(), nil
}

// startCluster starts alpha, beta and gamma (each with a TCP API) and waits until alpha
// sees all three alive.
func startCluster(t *testing.T, apiHost string) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: testutil.Binary(t, false)}
	taken := map[int]bool{}
	subnets := freeSubnets(t, 3)
	var tag [2]byte
	_, _ = rand.Read(tag[:])
	var join string
	for i, name := range []string{"alpha", "beta", "gamma"} {
		p2p, apiPort := testutil.FreePort(t, taken), testutil.FreePort(t, taken)
		api := net.JoinHostPort(apiHost, strconv.Itoa(apiPort))
		n := &node{Name: name, DataDir: t.TempDir(), URL: "https://" + api}
		n.args = []string{"peer", "--data-dir", n.DataDir, "--no-mdns", "--node", name, "--cluster", "ui-e2e",
			"--bind", fmt.Sprintf("127.0.0.1:%d", p2p), "--api-listen", api,
			// each node its own bridge (one host, three nodes; other tests may hold the default)
			"--bridge", fmt.Sprintf("c7u%x%d", tag, i), "--bridge-subnet", subnets[i]}
		if join != "" {
			n.args = append(n.args, "--join", join)
		} else {
			join = fmt.Sprintf("127.0.0.1:%d", p2p)
		}
		c.nodes = append(c.nodes, n)
		c.start(n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
		for _, n := range c.nodes { // instances the scenarios left, their cgroups, mounts, bridge
			if out, err := c.run("teardown", "--data-dir", n.DataDir); err != nil {
				t.Errorf("teardown %s: %v %s", n.Name, err, out)
			}
		}
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("--- log of %s:\n%s", n.Name, tail(n.log.String(), 4000))
			}
		}
	})
	c.waitAlive(3)
	return c
}

// waitAlive waits until alpha lists want nodes alive.
func (c *cluster) waitAlive(want int) {
	c.t.Helper()
	testutil.WaitForEvery(c.t, 60*time.Second, 300*time.Millisecond, fmt.Sprintf("%d nodes alive", want), func() (bool, string) {
		out, err := c.run("nodes", "--json", "--data-dir", c.nodes[0].DataDir)
		if err != nil {
			return false, err.Error()
		}
		var ns []struct{ Name, Status string }
		if json.Unmarshal([]byte(out), &ns) != nil {
			return false, out
		}
		alive := 0
		for _, n := range ns {
			if n.Status == "alive" {
				alive++
			}
		}
		return alive == want, out
	})
}

// revive restarts the nodes a scenario killed (so every scenario starts on 3 live nodes).
func (c *cluster) revive() {
	c.t.Helper()
	restarted := false
	for _, n := range c.nodes {
		if !n.alive() {
			c.t.Logf("restarting %s (the scenario stopped it)", n.Name)
			c.start(n)
			restarted = true
		}
	}
	if restarted {
		c.waitAlive(3)
	}
}

func (c *cluster) token(name, role string) string {
	c.t.Helper()
	out, err := c.run("token", "create", "--name", name, "--role", role, "--json", "--data-dir", c.nodes[0].DataDir)
	if err != nil {
		c.t.Fatal(err)
	}
	var tok struct{ Secret string }
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Secret == "" {
		c.t.Fatalf("token create: %v %s", err, out)
	}
	return tok.Secret
}

// browserNet is the network namespace the browser runs in (as root): chromium aborts every
// request in flight (net::ERR_NETWORK_CHANGED) when an interface of its namespace gains or
// loses an address, which the instances' bridges and veths of the nodes do on the host all
// the time. In its own namespace it sees only a veth pair to the host, on which the nodes'
// TCP APIs listen. Without root it runs on the host, against 127.0.0.1.
type browserNet struct {
	ns, hostIf, hostIP string
}

func newBrowserNet(t *testing.T) *browserNet {
	t.Helper()
	ipPath, err := exec.LookPath("ip")
	if os.Geteuid() != 0 || err != nil {
		t.Logf("the browser shares the host's network (not root or no ip command): instance changes abort its requests")
		return &browserNet{hostIP: "127.0.0.1"}
	}
	var tag [3]byte
	_, _ = rand.Read(tag[:])
	sub := strings.TrimSuffix(freeSubnets(t, 1)[0], ".0/24")
	bn := &browserNet{ns: fmt.Sprintf("c7ui-%x", tag), hostIf: fmt.Sprintf("c7uh%x", tag), hostIP: sub + ".1"}
	peerIf := fmt.Sprintf("c7ub%x", tag)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", bn.ns)
	t.Cleanup(func() {
		_ = exec.Command(ipPath, "netns", "del", bn.ns).Run() // takes the veth pair with it
		_ = exec.Command(ipPath, "link", "del", bn.hostIf).Run()
	})
	ip("link", "add", bn.hostIf, "type", "veth", "peer", "name", peerIf)
	ip("link", "set", peerIf, "netns", bn.ns)
	ip("addr", "add", bn.hostIP+"/24", "dev", bn.hostIf)
	ip("link", "set", bn.hostIf, "up")
	ip("-n", bn.ns, "addr", "add", sub+".2/24", "dev", peerIf)
	ip("-n", bn.ns, "link", "set", peerIf, "up")
	ip("-n", bn.ns, "link", "set", "lo", "up")
	return bn
}

// wrap runs argv in the browser's namespace.
func (bn *browserNet) wrap(argv ...string) []string {
	if bn.ns == "" {
		return argv
	}
	return append([]string{"ip", "netns", "exec", bn.ns}, argv...)
}

// freeSubnets picks n /24s in 198.18.0.0/16 (benchmarking space) that no route of the host
// overlaps.
func freeSubnets(t *testing.T, n int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	used := map[byte]bool{}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || mask == 0 {
			continue
		}
		// little-endian: the first octet is the low byte
		for x := range 256 {
			cand := uint64(198) | uint64(18)<<8 | uint64(x)<<16
			if cand&mask == dst&mask {
				used[byte(x)] = true
			}
		}
	}
	var out []string
	var r [1]byte
	for range 512 {
		_, _ = rand.Read(r[:])
		if !used[r[0]] {
			used[r[0]] = true
			out = append(out, fmt.Sprintf("198.18.%d.0/24", r[0]))
			if len(out) == n {
				return out
			}
		}
	}
	t.Fatal("no free /24 in 198.18.0.0/16")
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// scenarios lists ui/e2e/*.mjs without the helpers (_*.mjs), or those named by
// $CONSTELLATION_UI_SCENARIO (comma-separated names without .mjs).
func scenarios(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	only := map[string]bool{}
	for _, s := range strings.Split(os.Getenv("CONSTELLATION_UI_SCENARIO"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			only[s] = true
		}
	}
	var out []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".mjs")
		if strings.HasPrefix(name, "_") || (len(only) > 0 && !only[name]) {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestBrowserScenarios runs every scenario in a real headless browser against a 3-node
// cluster. A scenario gets, in its environment:
//
//	C7N_URL              the dashboard of alpha (https://127.0.0.1:PORT/ui/; self-signed TLS)
//	C7N_NODES            JSON [{name, data_dir, url, pid}] of alpha, beta, gamma
//	C7N_ADMIN_TOKEN      an admin token; C7N_OPERATOR_TOKEN, C7N_VIEWER_TOKEN likewise
//	C7N_BIN              the constellation binary (for setup through the CLI)
//	C7N_CHROMIUM         the browser
//	C7N_SCREENSHOTS      the directory for its screenshots (kept as CI artifacts)
//
// It exits non-zero on failure; lines "METRIC name value unit" it prints are reported.
// Nodes it stops are restarted before the next scenario.
func TestBrowserScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	if b, err := fs.ReadFile(ui.Assets(), "index.html"); err == nil && bytes.Contains(b, []byte(`name="constellation-placeholder"`)) {
		t.Skip("the embedded ui/assets/index.html is the server branch's placeholder: no front end to drive (merge ui-front)")
	}
	chrome, dir := browserTooling(t)
	shots := artifacts(t)
	t.Logf("screenshots: %s", shots)
	bn := newBrowserNet(t)
	c := startCluster(t, bn.hostIP)
	env := []string{
		"C7N_URL=" + c.nodes[0].URL + "/ui/",
		"C7N_ADMIN_TOKEN=" + c.token("ui-admin", "admin"),
		"C7N_OPERATOR_TOKEN=" + c.token("ui-operator", "operator"),
		"C7N_VIEWER_TOKEN=" + c.token("ui-viewer", "viewer"),
		"C7N_BIN=" + c.bin,
		"C7N_CHROMIUM=" + chrome,
		"C7N_SCREENSHOTS=" + shots,
	}
	names := scenarios(t, dir)
	if len(names) == 0 {
		t.Fatalf("no scenarios in %s", dir)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c.revive()
			nodes, _ := json.Marshal(c.nodes)
			runScenario(t, dir, name, bn.wrap("node", name+".mjs"), append(append(testutil.CleanEnv(), env...), "C7N_NODES="+string(nodes)))
		})
	}
}

// runScenario runs one script (at most 3 minutes), streaming its output to the test log.
func runScenario(t *testing.T, dir, name string, argv []string, env []string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the browser dies with the group
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}()
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("timed out after 3m")
		<-done
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a browser left behind
	<-copied
	for _, l := range lines {
		if strings.HasPrefix(l, "METRIC ") {
			t.Logf("%s (%s, %s/%s)", l, name, runtime.GOOS, runtime.GOARCH)
		}
	}
	if err != nil {
		t.Fatalf("scenario %s: %v\n%s", name, err, strings.Join(lines, "\n"))
	}
	t.Logf("scenario %s passed:\n%s", name, strings.Join(lines, "\n"))
}
