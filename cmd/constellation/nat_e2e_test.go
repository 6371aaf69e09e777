package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/netlab"
	"github.com/rads-lang/constellation/internal/testutil"
)

// natCase is one NAT topology: a public node p, node a behind natA (behind a second
// port-restricted NAT when doubleA), node b behind natB.
type natCase struct {
	name       string
	natA, natB netlab.NAT
	doubleA    bool
	// want is the connection a and b must end on: "direct" (someone can dial the other),
	// "hole-punched" (a direct connection made while both dial at once counts too), or
	// "relayed" (no direct path).
	want string
	// tcpPunch: the hole punch must go over TCP (UDP blocked); it may lose its race and
	// leave the pair relayed, which is logged, not failed.
	tcpPunch bool
}

var natCases = []natCase{
	{name: "full-cone", natA: netlab.FullCone, natB: netlab.FullCone, want: "direct"},
	{name: "port-restricted", natA: netlab.PortRestricted, natB: netlab.PortRestricted, want: "hole-punched"},
	// A new port per destination on one side and endpoint filtering on the other: neither
	// side's packets match a mapping the other made, so no punch can work.
	{name: "symmetric-one-side", natA: netlab.Symmetric, natB: netlab.PortRestricted, want: "relayed"},
	{name: "symmetric-both", natA: netlab.Symmetric, natB: netlab.Symmetric, want: "relayed"},
	{name: "udp-blocked", natA: netlab.PortRestricted, natB: netlab.UDPBlocked, want: "hole-punched", tcpPunch: true},
	{name: "double-nat", natA: netlab.PortRestricted, natB: netlab.PortRestricted, doubleA: true, want: "hole-punched"},
}

// natNode is a `constellation peer` in a lab namespace; the CLI reaches it through the
// socket in its data dir.
type natNode struct {
	name string
	host *netlab.Host
	dir  string
	proc *peerProc
}

// nodes runs `nodes --json` on n.
func (n *natNode) nodes(t *testing.T) ([]api.NodeInfo, error) {
	r := run(t, "nodes", "--json", "--data-dir", n.dir)
	if r.code != 0 {
		return nil, fmt.Errorf("nodes on %s: exit %d: %s", n.name, r.code, r.stderr)
	}
	var ns []api.NodeInfo
	if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil {
		return nil, fmt.Errorf("nodes on %s: %v: %s", n.name, err, r.stdout)
	}
	return ns, nil
}

// view is n's view of the node named other.
func (n *natNode) view(t *testing.T, other string) (api.NodeInfo, bool) {
	ns, err := n.nodes(t)
	if err != nil {
		return api.NodeInfo{}, false
	}
	for _, x := range ns {
		if x.Name == other {
			return x, true
		}
	}
	return api.NodeInfo{}, false
}

// TestNATTraversal runs a public node and two nodes behind NAT routers for each case of
// natCases, with the built binary as users run it: every node must see every other alive,
// messages and an instance's logs must cross between the two NATed nodes, and their
// connection must be of the kind the NATs allow. It logs the measurements (time to all
// alive, time to a direct connection, round-trip time).
func TestNATTraversal(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("builds and runs the binary in network namespaces")
	}
	bin := binary(t)
	for _, c := range natCases {
		t.Run(c.name, func(t *testing.T) { runNATCase(t, bin, c) })
	}
}

func runNATCase(t *testing.T, bin string, c natCase) {
	lab := netlab.New(t)
	p := lab.Public("p")
	ra := lab.Router("ra", c.natA, nil)
	rb := lab.Router("rb", c.natB, nil)
	var ha *netlab.Host
	if c.doubleA {
		ha = lab.Router("ra2", netlab.PortRestricted, ra).NewHost("a")
	} else {
		ha = ra.NewHost("a")
	}
	hb := rb.NewHost("b")
	if c.natA == netlab.FullCone {
		ra.ForwardPort(ha, 7946)
	}
	if c.natB == netlab.FullCone {
		rb.ForwardPort(hb, 7946)
	}

	key := "nat-e2e-0123456789abcdef0123456789abcdef"
	start := func(h *netlab.Host, join bool) *natNode {
		n := &natNode{name: h.Name, host: h, dir: t.TempDir()}
		args := []string{"peer", "--data-dir", n.dir, "--no-mdns", "--no-port-map", "--node", h.Name,
			"--cluster", "nat", "--cluster-key", key, "--bind", "0.0.0.0:7946", "--log-level", "debug"}
		if join {
			args = append(args, "--join", p.IP+":7946")
		}
		n.proc = startPeerCmd(t, n.dir, h.Command(bin, args...))
		return n
	}
	np := start(p, false)
	// As users do: the public node runs before the others join it (a node that is still
	// starting refuses connections, and a joiner backs off).
	waitJSON(t, 10*time.Second, "p is up", func(r result) bool { return true }, "status", "--json", "--data-dir", np.dir)
	t0 := time.Now() // times below are from the start of a and b
	na, nb := start(ha, true), start(hb, true)
	all := []*natNode{np, na, nb}
	defer func() {
		if t.Failed() {
			for _, n := range all {
				if r := run(t, "nodes", "--wide", "--data-dir", n.dir); r.code == 0 {
					t.Logf("nodes --wide on %s:\n%s", n.name, r.stdout)
				}
				if r := run(t, "status", "--data-dir", n.dir); r.code == 0 {
					t.Logf("status on %s:\n%s", n.name, r.stdout)
				}
			}
		}
	}()

	testutil.WaitForEvery(t, 30*time.Second, 100*time.Millisecond, "every node sees every node alive", func() (bool, string) {
		for _, n := range all {
			ns, err := n.nodes(t)
			if err != nil {
				return false, err.Error()
			}
			alive := 0
			for _, x := range ns {
				if x.Status == api.StatusAlive {
					alive++
				}
			}
			if alive != 3 {
				return false, fmt.Sprintf("%s sees %d of 3 alive: %+v", n.name, alive, ns)
			}
		}
		return true, ""
	})
	allAlive := time.Since(t0)

	// The connection between a and b: wait for the kind the NATs allow.
	var ab api.NodeInfo
	direct := c.want == "direct" || c.want == "hole-punched"
	wait := 15 * time.Second
	if !direct {
		wait = 8 * time.Second // give hole punching its chance before judging
	}
	deadline := time.Now().Add(wait)
	var toDirect time.Duration
	for {
		ab, _ = na.view(t, "b")
		if ab.Connection == "direct" || ab.Connection == "hole-punched" {
			toDirect = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ba, _ := nb.view(t, "a")
	if ab.Connection == "" || ba.Connection == "" {
		t.Fatalf("a-b not connected: a sees b %+v; b sees a %+v", ab, ba)
	}
	switch {
	case ab.Connection == c.want, c.want == "hole-punched" && ab.Connection == "direct":
	case c.tcpPunch && ab.Connection == "relayed":
		// A TCP hole punch needs a simultaneous open through the NAT and loses its race in
		// about half the runs here; the pair stays connected through the relay (the hard
		// requirement), and the miss is reported rather than failed.
		t.Logf("NAT %s: TCP hole punch did not succeed within %v; a-b stays relayed", c.name, wait)
	default:
		t.Errorf("a's connection to b is %q over %s; want %q (%s)", ab.Connection, ab.Transport, c.want, c.name)
	}

	// Messages both ways and an instance on b created and read from a.
	for _, x := range [][2]*natNode{{na, nb}, {nb, na}} {
		if r := run(t, "send", x[1].name, "--type", "nat", "--data", `{"from":"`+x[0].name+`"}`, "--data-dir", x[0].dir); r.code != 0 {
			t.Errorf("send %s -> %s: exit %d: %s", x[0].name, x[1].name, r.code, r.stderr)
		}
	}
	if r := run(t, "create", "--name", "nat-hello", "--node", "b", "--ram-mb", "32", "--data-dir", na.dir, "--",
		"sh", "-c", "echo hello across "+c.name); r.code != 0 {
		t.Errorf("create on b from a: exit %d: %s", r.code, r.stderr)
	} else {
		testutil.WaitForEvery(t, 20*time.Second, 200*time.Millisecond, "a reads the instance's logs on b", func() (bool, string) {
			r := run(t, "logs", "nat-hello", "--data-dir", na.dir)
			return r.code == 0 && strings.Contains(r.stdout, "hello across "+c.name), r.stdout + r.stderr
		})
		run(t, "rm", "--grace", "0s", "nat-hello", "--data-dir", na.dir)
	}
	// Reachability as each node detected it: p public, a and b behind NAT (private), each
	// holding a relay reservation on p.
	for _, x := range []struct {
		n     *natNode
		reach string
	}{{np, "public"}, {na, "private"}, {nb, "private"}} {
		st := statusOf(t, x.n)
		if st.Reachability != x.reach {
			t.Errorf("%s reports reachability %q; want %q", x.n.name, st.Reachability, x.reach)
		}
		if x.reach == "private" && (len(st.Relays) == 0 || st.Relays[0].Relay != "p") {
			t.Errorf("%s (behind NAT) holds relay reservations %+v; want one on p", x.n.name, st.Relays)
		}
		if !st.RelayService {
			t.Errorf("%s does not run the member relay", x.n.name)
		}
	}
	// The replicated RTT table: a's record carries its RTT to p and b, as every node sees it.
	testutil.WaitForEvery(t, 15*time.Second, 200*time.Millisecond, "p sees a's RTTs to p and b", func() (bool, string) {
		x, _ := np.view(t, "a")
		_, toP := x.RTTs[mustView(t, np, "p").ID]
		_, toB := x.RTTs[mustView(t, np, "b").ID]
		return toP && toB, fmt.Sprintf("a's RTTs as p sees them: %v", x.RTTs)
	})
	if r := run(t, "nodes", "--rtt", "--data-dir", nb.dir); r.code != 0 || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stdout, "FROM") {
		t.Errorf("nodes --rtt on b: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "nodes", "--wide", "--data-dir", na.dir); r.code != 0 || !strings.Contains(r.stdout, "CONNECTION") || !strings.Contains(r.stdout, "REACHABILITY") {
		t.Errorf("nodes --wide on a: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	ab, _ = na.view(t, "b")
	kind := ab.Connection
	if toDirect > 0 {
		kind += fmt.Sprintf(" after %.2fs", toDirect.Seconds())
	}
	sa, sb := statusOf(t, na), statusOf(t, nb)
	t.Logf("NAT %s: all alive after %.2fs; a-b %s over %s, rtt %.2fms; nat type a %s, b %s",
		c.name, allAlive.Seconds(), kind, ab.Transport, ab.RTTMs, sa.NATType, sb.NATType)
}

// mustView is n's view of the node named other; it fails the test when missing.
func mustView(t *testing.T, n *natNode, other string) api.NodeInfo {
	t.Helper()
	x, ok := n.view(t, other)
	if !ok {
		t.Fatalf("%s does not list %s", n.name, other)
	}
	return x
}

// statusOf runs `status --json` on n.
func statusOf(t *testing.T, n *natNode) api.StatusInfo {
	t.Helper()
	r := run(t, "status", "--json", "--data-dir", n.dir)
	var st api.StatusInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Errorf("status on %s: exit %d: %s%s", n.name, r.code, r.stdout, r.stderr)
	}
	return st
}

// startPeerCmd starts a prepared `constellation peer` command (startPeer's, or one inside
// a namespace); it is killed at cleanup and its output logged when the test failed.
func startPeerCmd(t *testing.T, dir string, cmd *exec.Cmd) *peerProc {
	t.Helper()
	cmd.Env = testutil.CleanEnv()
	p := &peerProc{cmd: cmd, stderr: &syncBuf{}, done: make(chan struct{}), dir: dir}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("peer %s output (last 20000 bytes):\n%s", dir, tail(p.stderr.String(), 20000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
