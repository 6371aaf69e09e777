package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
)

// End-to-end tests of instances through the built binary: real node processes on
// loopback, real sandboxes (root: cgroups, namespaces).

// instRequireRoot skips a test that needs root, unless CONSTELLATION_TEST_REQUIRE_ROOT=1
// demands that it runs (CI), in which case it fails.
func instRequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root (cgroups, namespaces) and CONSTELLATION_TEST_REQUIRE_ROOT=1")
	}
	t.Skip("needs root (cgroups, namespaces); set CONSTELLATION_TEST_REQUIRE_ROOT=1 to make this a failure")
}

// constellationBinary is the constellation binary, built once per test process.
func constellationBinary(t testing.TB) string { return testutil.Binary(t, false) }

// procNode is a node running as a child process.
type procNode struct {
	t       testing.TB
	bin     string
	name    string
	dataDir string
	args    []string
	cmd     *exec.Cmd
	log     *logBuf
	done    chan struct{}
}

func startProcNode(t testing.TB, bin, name, dataDir string, extra ...string) *procNode {
	t.Helper()
	p := &procNode{t: t, bin: bin, name: name, dataDir: dataDir,
		args: append([]string{"peer", "--node", name, "--cluster", "inst-e2e", "--bind", "127.0.0.1:0",
			"--no-mdns", "--data-dir", dataDir, "--log-level", "debug",
			// Host network: these instances call the node's API on 127.0.0.1 (until it is
			// a Unix socket bound into them); bridge networking is tested in sandbox/.
			"--default-network", "host"}, extra...)}
	p.start()
	return p
}

func (p *procNode) start() {
	p.t.Helper()
	p.log = &logBuf{}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), "CONSTELLATION_CLUSTER_KEY=")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(p.cmd, p.done)
	testutil.WaitForEvery(p.t, 20*time.Second, 50*time.Millisecond, "node "+p.name+" to answer", func() (bool, string) {
		_, err := p.cli("status", "--json")
		if err == nil {
			return true, ""
		}
		select {
		case <-p.done:
			p.t.Fatalf("node %s exited at start:\n%s", p.name, p.log)
		default:
		}
		return false, fmt.Sprintf("%v\n%s", err, p.log)
	})
}

// stop sends SIGTERM and waits for the process (SIGKILL after 15 s).
func (p *procNode) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cli runs a client command against this node.
func (p *procNode) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--data-dir", p.dataDir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", p.name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (p *procNode) cliJSON(out any, args ...string) {
	p.t.Helper()
	at := len(args)
	for i, a := range args {
		if a == "--" {
			at = i
			break
		}
	}
	full := append(append(append([]string{}, args[:at]...), "--json"), args[at:]...)
	s, err := p.cli(full...)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		p.t.Fatalf("%s %v: bad JSON %q: %v", p.name, args, s, err)
	}
}

func (p *procNode) list() []api.Instance {
	var rs []api.Instance
	p.cliJSON(&rs, "list")
	return rs
}

func findInstance(rs []api.Instance, name string) (api.Instance, bool) {
	for _, r := range rs {
		if r.Name == name {
			return r, true
		}
	}
	return api.Instance{}, false
}

// waitInstance polls p's list until name satisfies cond.
func (p *procNode) waitInstance(name, what string, cond func(api.Instance, bool) bool) api.Instance {
	p.t.Helper()
	var r api.Instance
	testutil.WaitForEvery(p.t, 20*time.Second, 50*time.Millisecond, fmt.Sprintf("node %s: instance %s %s", p.name, name, what), func() (bool, string) {
		last := p.list()
		var ok bool
		r, ok = findInstance(last, name)
		return cond(r, ok), fmt.Sprintf("list: %+v", last)
	})
	return r
}

// procsWith returns the host PIDs of `sh` processes whose command line contains marker.
// procsWith lists the `sh` processes whose command line holds marker, leaving out the
// shell's own short-lived forks (a `$(...)` subshell has the same command line; its parent
// is in the set).
func procsWith(marker string) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(b, []byte("sh\x00")) || !bytes.Contains(b, []byte(marker)) {
			continue
		}
		parent[pid] = 0
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
			if i := bytes.LastIndexByte(st, ')'); i >= 0 {
				if f := strings.Fields(string(st[i+1:])); len(f) > 1 {
					parent[pid], _ = strconv.Atoi(f[1])
				}
			}
		}
	}
	var pids []int
	for pid, pp := range parent {
		if _, fork := parent[pp]; !fork {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

func TestInstancesEndToEnd(t *testing.T) {
	instRequireRoot(t)
	if testing.Short() {
		t.Skip("builds the binary and runs two node processes")
	}
	bin := constellationBinary(t)
	base := t.TempDir()
	dirA, dirB := filepath.Join(base, "a"), filepath.Join(base, "b")
	// Tools inside instances: a copy of the binary in a code root the nodes allow.
	codeRoot := filepath.Join(base, "code")
	tools := filepath.Join(codeRoot, "tools")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	os.Chmod(codeRoot, 0o755)
	if b, err := os.ReadFile(bin); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(tools, "constellation"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: nodes stop first, then their instances are torn down.
	for _, d := range []string{dirA, dirB} {
		d := d
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := instances.Teardown(ctx, d); err != nil {
				t.Errorf("teardown %s: %v", d, err)
			}
		})
	}
	a := startProcNode(t, bin, "a", dirA, "--code-root", codeRoot)
	t.Cleanup(a.stop)
	var st api.StatusInfo
	a.cliJSON(&st, "status")
	var join string
	for _, ad := range st.Addresses {
		if strings.Contains(ad, "/tcp/") {
			join = ad
		}
	}
	if join == "" {
		t.Fatalf("node a has no TCP address: %v", st.Addresses)
	}
	b := startProcNode(t, bin, "b", dirB, "--join", join, "--code-root", codeRoot)
	t.Cleanup(b.stop)
	for _, p := range []*procNode{a, b} {
		testutil.WaitForEvery(t, 20*time.Second, 100*time.Millisecond, "node "+p.name+" sees 2 alive nodes", func() (bool, string) {
			var ns []api.NodeInfo
			p.cliJSON(&ns, "nodes")
			alive := 0
			for _, x := range ns {
				if x.Status == api.StatusAlive {
					alive++
				}
			}
			return alive == 2, fmt.Sprintf("%d alive: %+v", alive, ns)
		})
	}

	// Create on A, targeting B.
	var web api.Instance
	a.cliJSON(&web, "create", "--name", "e2e-web", "--node", "b", "--ram-mb", "64", "--pids", "32",
		"--cpu-percent", "50", "--env", "GREETING=hello", "--",
		"sh", "-c", `echo "$GREETING from $CONSTELLATION_INSTANCE on $CONSTELLATION_NODE"; exec sleep 1000`)
	if web.Node != "b" || web.Status != api.InstanceRunning || web.ID == "" {
		t.Fatalf("create on a for b = %+v; want running on b", web)
	}

	// Both nodes list it, on b, with the list --json fields.
	for _, p := range []*procNode{a, b} {
		r := p.waitInstance("e2e-web", "listed running on b", func(r api.Instance, ok bool) bool {
			return ok && r.Node == "b" && r.Status == api.InstanceRunning
		})
		if r.RAMMB != 64 || r.CPUPercent != 50 || r.CreatedAt.IsZero() || r.ExitCode != nil {
			t.Errorf("node %s lists %+v", p.name, r)
		}
	}
	raw, err := a.cli("list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var generic []map[string]any
	if err := json.Unmarshal([]byte(raw), &generic); err != nil || len(generic) == 0 {
		t.Fatalf("list --json = %q (%v)", raw, err)
	}
	for _, f := range []string{"name", "id", "node", "status", "exit_code", "restarts", "cpu_percent", "ram_mb", "disk_mb", "created_at"} {
		if _, ok := generic[0][f]; !ok {
			t.Errorf("list --json element lacks %q: %v", f, generic[0])
		}
	}

	// Stats and logs from A (forwarded to B).
	var stats map[string]any
	a.cliJSON(&stats, "stats", "e2e-web")
	for _, f := range []string{"cpu", "ram_mb", "disk_mb", "pids", "uptime_s"} {
		if _, ok := stats[f]; !ok {
			t.Errorf("stats --json lacks %q: %v", f, stats)
		}
	}
	if pids, _ := stats["pids"].(float64); pids < 1 {
		t.Errorf("stats pids = %v; want >= 1", stats["pids"])
	}
	waitLogs := func(p *procNode, name, want string) {
		t.Helper()
		testutil.WaitForEvery(t, 10*time.Second, 50*time.Millisecond, fmt.Sprintf("logs %s from %s to contain %q", name, p.name, want), func() (bool, string) {
			out, err := p.cli("logs", name)
			return err == nil && strings.Contains(out, want), fmt.Sprintf("%q (%v)", out, err)
		})
	}
	waitLogs(a, "e2e-web", "hello from e2e-web on b")

	// An instance reaches its node's API through /run/constellation/api.sock with the token
	// file (the binary from the code root); no token is in its environment.
	a.cliJSON(&web, "create", "--name", "e2e-api", "--node", "b", "--ram-mb", "64", "--grant", "instances:read",
		"--code", tools, "--", "sh", "-c", `set -e
if [ -z "$CONSTELLATION_API_TOKEN" ] && ! tr '\0' '\n' < /proc/self/environ | grep -q ci1.; then echo no-token-in-env; fi
echo "api=$CONSTELLATION_API token=$(stat -c '%a %u' /run/constellation/token) $(cut -c1-12 /run/constellation/token)"
./constellation list --json`)
	if _, err := a.cli("wait", "e2e-api", "--timeout", "20s"); err != nil {
		t.Fatal(err)
	}
	waitLogs(a, "e2e-api", `"name": "e2e-web"`)
	waitLogs(a, "e2e-api", "no-token-in-env\napi=unix:/run/constellation/api.sock token=400 65534 ci1.e2e-api.")
	// Without grants it sees only itself and may not stop another instance.
	if _, err := a.cli("create", "--name", "e2e-nogrant", "--node", "b", "--ram-mb", "64", "--code", tools, "--",
		"sh", "-c", "./constellation list; ./constellation stop e2e-web; echo stop-exit=$?"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli("wait", "e2e-nogrant", "--timeout", "20s"); err != nil {
		t.Fatal(err)
	}
	waitLogs(a, "e2e-nogrant", "stop-exit=1")
	if out, _ := a.cli("logs", "e2e-nogrant"); strings.Contains(out, "e2e-web  ") || !strings.Contains(out, "e2e-nogrant") ||
		!strings.Contains(out, "needs the grant instances:manage") {
		t.Errorf("logs of e2e-nogrant = %q; want a list of itself only and a refused stop naming instances:manage", out)
	}
	if r := a.waitInstance("e2e-web", "listed", func(r api.Instance, ok bool) bool { return ok }); r.Status != api.InstanceRunning {
		t.Errorf("e2e-web after a refused stop: %s; want running", r.Status)
	}

	// logs -f through forwarding: streams lines as they come, ends when the instance ends.
	if _, err := a.cli("create", "--name", "e2e-tick", "--node", "b", "--ram-mb", "32", "--",
		"sh", "-c", "for i in 1 2 3 4; do echo tick-$i; sleep 0.2; done"); err != nil {
		t.Fatal(err)
	}
	out, err := a.cli("logs", "-f", "e2e-tick")
	if err != nil || !strings.Contains(out, "tick-1") || !strings.Contains(out, "tick-4") {
		t.Errorf("logs -f e2e-tick from a = %q, %v; want tick-1..tick-4", out, err)
	}

	// Restart with new limits and a snapshot round trip, operated from A.
	if _, err := a.cli("restart", "e2e-web", "--ram-mb", "96", "--grace", "1s"); err != nil {
		t.Fatal(err)
	}
	a.waitInstance("e2e-web", "running with ram_mb 96", func(r api.Instance, ok bool) bool {
		return ok && r.Status == api.InstanceRunning && r.RAMMB == 96
	})
	var snap api.SnapshotResult
	a.cliJSON(&snap, "snapshot", "e2e-web", "--save", "t1")
	if snap.Node != "b" || snap.Tag != "t1" {
		t.Errorf("snapshot --save = %+v; want tag t1 on b", snap)
	}
	a.cliJSON(&snap, "snapshot", "e2e-web", "--restore", "t1")
	if !snap.Restarted {
		t.Errorf("snapshot --restore of a running instance = %+v; want restarted", snap)
	}
	// A tag the instance does not have fails before the instance is stopped.
	var started time.Time
	a.waitInstance("e2e-web", "running after the restore", func(r api.Instance, ok bool) bool {
		if r.StartedAt != nil {
			started = *r.StartedAt
		}
		return ok && r.Status == api.InstanceRunning && r.StartedAt != nil
	})
	if _, err := a.cli("snapshot", "e2e-web", "--restore", "nope"); err == nil || !strings.Contains(err.Error(), `no snapshot "nope"`) {
		t.Errorf("restore of a missing tag: err = %v; want 'no snapshot \"nope\"'", err)
	}
	time.Sleep(300 * time.Millisecond) // a stop and start would show by now
	a.waitInstance("e2e-web", "not restarted by a refused restore", func(r api.Instance, ok bool) bool {
		return ok && r.Status == api.InstanceRunning && r.StartedAt != nil && r.StartedAt.Equal(started)
	})

	// resources: cluster totals over both nodes, b's allocation includes e2e-web.
	var res api.ResourcesInfo
	a.cliJSON(&res, "resources")
	if res.NodesAlive != 2 || res.CPUTotal < 2 || res.RAMTotalGB <= 0 || res.CPUAvailable <= 0 || res.CPUAvailable > 100 || len(res.Nodes) != 2 {
		t.Errorf("resources = %+v", res)
	}
	for _, nr := range res.Nodes {
		if nr.Name == "b" && (!nr.Reported || nr.Instances < 3 || nr.CPUFreePercent >= 100*float64(nr.CPUTotal)) {
			t.Errorf("resources of b = %+v; want its instances and allocation", nr)
		}
	}

	// Admission: a create that does not fit is refused with the numbers.
	_, err = a.cli("create", "--name", "e2e-huge", "--node", "b", "--ram-mb", "100000000", "--", "true")
	if err == nil || !strings.Contains(err.Error(), "asked 100000000") || !strings.Contains(err.Error(), "free") {
		t.Errorf("oversized create: err = %v; want a refusal naming asked and free", err)
	}
	// A duplicate name is refused wherever it runs.
	if _, err := b.cli("create", "--name", "e2e-web", "--", "true"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate create: err = %v; want 'already exists'", err)
	}

	// OOM on B, reported cluster-wide.
	if _, err := a.cli("create", "--name", "e2e-oom", "--node", "b", "--ram-mb", "32", "--",
		"sh", "-c", `x=aaaaaaaaaaaaaaaa; while :; do x="$x$x"; done`); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*procNode{a, b} {
		p.waitInstance("e2e-oom", "oom_killed", func(r api.Instance, ok bool) bool { return ok && r.Status == api.InstanceOOMKilled })
	}

	// Stop from A.
	if _, err := a.cli("stop", "e2e-web", "--grace", "2s"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*procNode{a, b} {
		p.waitInstance("e2e-web", "stopped", func(r api.Instance, ok bool) bool { return ok && r.Status == api.InstanceStopped })
	}

	// A node restart keeps its instance running and re-adopts it.
	marker := fmt.Sprintf("e2ekeep%d", time.Now().UnixNano())
	// Its program calls the API every 0.2 s and prints when it succeeded: again once b
	// re-adopted it (the socket is opened anew).
	if _, err := a.cli("create", "--name", "e2e-keep", "--node", "b", "--ram-mb", "64", "--code", tools, "--",
		"sh", "-c", "while :; do ./constellation show e2e-keep >/dev/null 2>&1 && echo api-up $(date +%s%N); sleep 0.2; done; echo "+marker); err != nil {
		t.Fatal(err)
	}
	var before []int
	testutil.WaitFor(t, 5*time.Second, "one instance process with "+marker, func() (bool, string) {
		before = procsWith(marker)
		return len(before) == 1, fmt.Sprint(before)
	})
	b.stop()
	if got := procsWith(marker); len(got) != 1 || got[0] != before[0] {
		t.Fatalf("after node b stopped, instance processes = %v; want %v still running", got, before)
	}
	r := a.waitInstance("e2e-keep", "listed with b gone", func(r api.Instance, ok bool) bool {
		return ok && r.NodeStatus != api.StatusAlive
	})
	if r.Status != api.InstanceRunning {
		t.Errorf("while b is down, a lists e2e-keep as %+v; want its last status running", r)
	}
	b.start()
	restarted := time.Now().UnixNano()
	var ks api.InstanceStats
	testutil.WaitForEvery(t, 20*time.Second, 100*time.Millisecond, "stats e2e-keep running after b restarted", func() (bool, string) {
		s, err := a.cli("stats", "e2e-keep", "--json")
		ok := err == nil && json.Unmarshal([]byte(s), &ks) == nil && ks.Status == api.InstanceRunning && ks.PIDs >= 1
		return ok, fmt.Sprintf("%q %v\n%s", s, err, b.log)
	})
	if got := procsWith(marker); len(got) != 1 || got[0] != before[0] {
		t.Errorf("after node b restarted, instance processes = %v; want %v", got, before)
	}
	if !b.log.contains("instance runtime ready") {
		t.Errorf("restarted node b did not open its runtime:\n%s", b.log)
	}
	testutil.WaitForEvery(t, 10*time.Second, 100*time.Millisecond, "e2e-keep reaches the API again after b restarted", func() (bool, string) {
		out, err := a.cli("logs", "e2e-keep")
		for _, l := range strings.Split(out, "\n") {
			if ns, ok := strings.CutPrefix(l, "api-up "); ok {
				if v, _ := strconv.ParseInt(ns, 10, 64); v > restarted {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("no api-up after %d: %q (%v)", restarted, out[max(0, len(out)-300):], err)
	})
	// Stop it through the re-adopted runtime, from A.
	if _, err := a.cli("stop", "e2e-keep", "--grace", "1s"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForEvery(t, 10*time.Second, 50*time.Millisecond, "e2e-keep gone after stop", func() (bool, string) {
		left := procsWith(marker)
		return len(left) == 0, fmt.Sprintf("still running: %v", left)
	})

	// rm from A removes everything, everywhere.
	if _, err := a.cli("rm", "--grace", "0s", "e2e-web", "e2e-api", "e2e-nogrant", "e2e-tick", "e2e-oom", "e2e-keep"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*procNode{a, b} {
		p.waitInstance("e2e-web", "removed", func(r api.Instance, ok bool) bool { return !ok })
		if rs := p.list(); len(rs) != 0 {
			t.Errorf("node %s still lists %+v after rm", p.name, rs)
		}
	}
}
