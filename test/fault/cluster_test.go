package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// The harness: a cluster of `constellation peer` processes on 127.0.0.1, each with its own
// data dir and port, driven through the CLI (--json) and, for the frequent samples, the same
// local API through api.Client.

var (
	buildOnce sync.Once
	buildBin  string
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// requireRoot skips a test that needs root (instances: cgroups, namespaces; iptables),
// unless CONSTELLATION_TEST_REQUIRE_ROOT demands that it runs (CI): then it fails.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") != "" {
			t.Fatal("this test needs root (instances, iptables) and CONSTELLATION_TEST_REQUIRE_ROOT is set")
		}
		t.Skip("needs root (instances, iptables); set CONSTELLATION_TEST_REQUIRE_ROOT=1 to make this a failure")
	}
	if _, err := iptablesPath(); err != nil {
		if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("runs a cluster of node processes for minutes")
	}
}

// binary builds cmd/constellation once per test binary (with -race when the tests run
// with it, so the nodes under fault are checked too).
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "c7n-fault-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "constellation")
		args := []string{"build", "-o", buildBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../../cmd/constellation")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// cleanEnv is the environment without variables that would point commands elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSTELLATION_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP (QUIC and TCP share it).
func freePort(t testing.TB, taken map[int]bool) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			if !taken[port] {
				taken[port] = true
				return port
			}
		}
	}
	t.Fatal("no free TCP+UDP port on 127.0.0.1")
	return 0
}

// cluster is a set of node processes of one test.
type cluster struct {
	t      *testing.T
	bin    string
	name   string
	key    string
	base   string
	marker string // in every deployment instance's command line
	nodes  []*node
	fw     *firewall
	smp    *sampler
}

// node is one `constellation peer` process, restartable on the same data dir.
type node struct {
	c       *cluster
	name    string
	port    int
	dir     string
	logPath string
	client  *api.Client

	mu     sync.Mutex // guards the following fields
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	up     bool          // the process runs
	frozen bool          // stopped with SIGSTOP
}

// newCluster starts n nodes (n1 first, the others joining it) with a fresh cluster key and
// registers their shutdown, the teardown of their instances and the removal of the
// firewall rules with t.Cleanup, in the order that leaves nothing behind.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	bin := binary(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	out, err := exec.Command(bin, "keygen").Output()
	if err != nil {
		t.Fatalf("constellation keygen: %v", err)
	}
	c := &cluster{t: t, bin: bin, base: base, key: strings.TrimSpace(string(out)),
		name:   fmt.Sprintf("fault-%d", os.Getpid()),
		marker: fmt.Sprintf("c7nfault%d", time.Now().UnixNano())}
	taken := map[int]bool{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%d", i)
		dir := filepath.Join(base, name)
		c.nodes = append(c.nodes, &node{c: c, name: name, port: freePort(t, taken), dir: dir,
			logPath: filepath.Join(base, name+".log"), client: api.NewClient(dir, "", "")})
	}
	// Cleanups run last-in first-out: firewall rules go first, then the sampler, then the
	// nodes stop, then their instances are torn down, then stray instance processes.
	t.Cleanup(c.killStrays)
	t.Cleanup(c.teardown)
	t.Cleanup(c.stopAll)
	c.smp = newSampler(c)
	t.Cleanup(c.smp.close)
	c.fw = newFirewall(t)
	for _, nd := range c.nodes {
		nd.start()
	}
	c.waitAllAlive(60 * time.Second)
	return c
}

func (c *cluster) node(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// start runs the node process on its data dir, joining every other node, and waits until
// its API answers.
func (n *node) start() {
	t := n.c.t
	t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== test: start %s at %s\n", n.name, time.Now().Format(time.RFC3339Nano))
	args := []string{"peer", "--node", n.name, "--cluster", n.c.name, "--data-dir", n.dir,
		"--bind", fmt.Sprintf("127.0.0.1:%d", n.port), "--no-mdns", "--log-level", "debug",
		"--default-network", "host"} // several nodes on one host: no shared instance bridge
	for _, o := range n.c.nodes {
		if o != n {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", o.port))
		}
	}
	cmd := exec.Command(n.c.bin, args...)
	cmd.Env = append(cleanEnv(), "CONSTELLATION_CLUSTER_KEY="+n.c.key)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done, n.up, n.frozen = cmd, done, true, false
	n.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := n.client.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			n.markDown()
			t.Fatalf("node %s exited at start:\n%s", n.name, n.c.tail(n, 60))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not answer within 30s: %v\n%s", n.name, err, n.c.tail(n, 60))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) markDown() {
	n.mu.Lock()
	n.up, n.frozen = false, false
	n.mu.Unlock()
}

// reachable reports whether the node's API can answer (running and not frozen).
func (n *node) reachable() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up && !n.frozen
}

// signal sends sig to the node process (only the node: its instances are other processes).
func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up {
		n.c.t.Fatalf("signal %v to node %s, which is not running", sig, n.name)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.c.t.Fatalf("signal %v to node %s: %v", sig, n.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.frozen = true
	case syscall.SIGCONT:
		n.frozen = false
	}
}

// kill9 kills the node process with SIGKILL and waits for it; its instances keep running.
func (n *node) kill9() {
	n.signal(syscall.SIGKILL)
	<-n.done
	n.markDown()
}

// stop ends the node gracefully (SIGTERM: it leaves the cluster), SIGKILL after 20 s.
func (n *node) stop() {
	n.mu.Lock()
	up, frozen, cmd, done := n.up, n.frozen, n.cmd, n.done
	n.mu.Unlock()
	if !up {
		return
	}
	if frozen {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		n.c.t.Errorf("node %s did not stop within 20s of SIGTERM; killed", n.name)
		_ = cmd.Process.Kill()
		<-done
	}
	n.markDown()
}

func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.stop() }()
	}
	wg.Wait()
	if c.t.Failed() {
		for _, n := range c.nodes {
			c.t.Logf("---- log of %s (last lines) ----\n%s", n.name, c.tail(n, 150))
		}
	}
	keep := os.Getenv("CONSTELLATION_FAULT_LOGS") // a directory to keep the node logs in
	for _, n := range c.nodes {
		if keep != "" {
			if err := copyFile(n.logPath, filepath.Join(keep, c.t.Name(), n.name+".log")); err != nil {
				c.t.Errorf("keep the log of %s: %v", n.name, err)
			}
		}
		if b, err := os.ReadFile(n.logPath); err == nil && bytes.Contains(b, []byte("DATA RACE")) {
			c.t.Errorf("node %s reported a data race:\n%s", n.name, raceReport(b))
		}
	}
}

// raceReport is the first race report of a log.
func raceReport(b []byte) string {
	i := bytes.Index(b, []byte("WARNING: DATA RACE"))
	if i < 0 {
		return ""
	}
	b = b[i:]
	if j := bytes.Index(b, []byte("==================")); j > 0 {
		b = b[:j]
	}
	return string(b)
}

// teardown releases the instances of every node (the nodes are stopped).
func (c *cluster) teardown() {
	for _, n := range c.nodes {
		if _, err := os.Stat(n.dir); err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err := exec.CommandContext(ctx, c.bin, "teardown", "--data-dir", n.dir).CombinedOutput()
		cancel()
		if err != nil {
			c.t.Errorf("teardown %s: %v\n%s", n.name, err, out)
		}
	}
}

// killStrays kills instance processes of this test that outlived the teardown (by PID,
// found by the test's marker) and reports them.
func (c *cluster) killStrays() {
	for _, p := range scanProcs(c.marker) {
		c.t.Errorf("instance process %d (%s on %s) outlived the teardown; killed", p.pid, p.inst, p.node)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// tail returns the last lines of a node's log.
func (c *cluster) tail(n *node, lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// grepLogs returns the log lines of every node that contain all of words.
func (c *cluster) grepLogs(words ...string) string {
	var out []string
	for _, n := range c.nodes {
		b, err := os.ReadFile(n.logPath)
		if err != nil {
			continue
		}
	line:
		for _, l := range strings.Split(string(b), "\n") {
			for _, w := range words {
				if !strings.Contains(l, w) {
					continue line
				}
			}
			out = append(out, n.name+": "+l)
		}
	}
	return strings.Join(out, "\n")
}

// cli runs a client command against node n and returns its standard output.
func (c *cluster) cli(n *node, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--data-dir", n.dir}, args...)...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: constellation %s: %v: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// cliJSON runs a client command with --json (placed before a "--") and decodes its output.
func (c *cluster) cliJSON(n *node, out any, args ...string) error {
	at := len(args)
	for i, a := range args {
		if a == "--" {
			at = i
			break
		}
	}
	full := append(append(append([]string{}, args[:at]...), "--json"), args[at:]...)
	s, err := c.cli(n, full...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		return fmt.Errorf("%s: constellation %v: bad JSON %q: %v", n.name, full, s, err)
	}
	return nil
}

// mustJSON is cliJSON that fails the test on error.
func (c *cluster) mustJSON(n *node, out any, args ...string) {
	c.t.Helper()
	if err := c.cliJSON(n, out, args...); err != nil {
		c.t.Fatal(err)
	}
}

// anyReachable returns a reachable node other than those in not.
func (c *cluster) anyReachable(not ...string) *node {
	for _, n := range c.nodes {
		if n.reachable() && !contains(not, n.name) {
			return n
		}
	}
	c.t.Fatalf("no reachable node outside %v", not)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// deploy creates a deployment whose instances run `sh -c "sleep 100000; echo MARKER"`.
func (c *cluster) deploy(n *node, name, namespace string, count int) {
	c.t.Helper()
	var st api.DeploymentStatus
	c.mustJSON(n, &st, "deploy", name, "--instances", fmt.Sprint(count), "--ram-mb", "32",
		"--namespace", namespace, "--timeout", "120s", "--", "sh", "-c", "sleep 100000; echo "+c.marker)
	if st.Running != count {
		c.t.Fatalf("deploy %s: %+v; want %d running", name, st, count)
	}
}

// owner is the owner of a deployment as a reachable node reports it.
func (c *cluster) owner(dep string) *node {
	c.t.Helper()
	var st api.DeploymentStatus
	c.mustJSON(c.anyReachable(), &st, "deployments", dep)
	if st.Owner == "" {
		c.t.Fatalf("deployment %s has no owner: %+v", dep, st)
	}
	return c.node(st.Owner)
}

// waitAllAlive waits until every node sees every node alive.
func (c *cluster) waitAllAlive(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for _, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ns, err := n.client.Nodes(ctx)
			cancel()
			if err != nil {
				bad = err.Error()
				break
			}
			alive := 0
			for _, x := range ns {
				if x.Status == api.StatusAlive {
					alive++
				}
			}
			if alive != len(c.nodes) {
				bad = fmt.Sprintf("%s sees %d of %d nodes alive: %v", n.name, alive, len(c.nodes), nodeStatuses(ns))
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes not all alive after %v: %s", timeout, bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeStatuses(ns []api.NodeInfo) string {
	var s []string
	for _, x := range ns {
		s = append(s, x.Name+"="+x.Status)
	}
	return strings.Join(s, ",")
}

// backup copies the node's replicated state and the scheduler's local files (the node
// must be stopped) into dst.
func (n *node) backup(dst string) {
	t := n.c.t
	t.Helper()
	for _, rel := range backupFiles {
		if err := copyFile(filepath.Join(n.dir, rel), filepath.Join(dst, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("backup %s of %s: %v", rel, n.name, err)
		}
	}
}

// restore puts a backup back (the node must be stopped); a file absent from the backup is
// removed.
func (n *node) restore(src string) {
	t := n.c.t
	t.Helper()
	for _, rel := range backupFiles {
		err := copyFile(filepath.Join(src, rel), filepath.Join(n.dir, rel))
		if errors.Is(err, os.ErrNotExist) {
			err = os.Remove(filepath.Join(n.dir, rel))
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			t.Fatalf("restore %s of %s: %v", rel, n.name, err)
		}
	}
}

// backupFiles are what a restore from an old backup brings back: the replicated state and
// the scheduler's list of this node's deployment instances (the instances' own runtime
// files stay: their processes keep running through the restore).
var backupFiles = []string{"state.db", filepath.Join("sched", "managed.json")}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
