// Package netlab builds network topologies out of Linux network namespaces for tests: a
// public segment (a bridge in its own namespace), hosts on it, and private LANs behind
// router namespaces that translate addresses with iptables (MASQUERADE), nested to any
// depth. Every address is taken from 198.18.0.0/15 (RFC 2544, for benchmarks), nothing is
// created in the caller's namespace, and everything is removed at test cleanup, also when
// the test fails; namespaces left by a test process that died are removed by the next
// Lab. It needs root, ip (iproute2), iptables and nsenter (util-linux).
//
//	lab := netlab.New(t)
//	p := lab.Public("p")                          // 198.18.0.x on the public segment
//	r := lab.Router("r1", netlab.PortRestricted, nil)
//	a := r.NewHost("a")                           // 198.18.k.2 behind r's NAT
//	cmd := a.Command("constellation", "peer", "--join", p.IP+":7946")
package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// NAT is a router's translation behaviour.
type NAT int

const (
	// FullCone: MASQUERADE, which keeps the source port when it is free, plus the hosts'
	// port forwarded back from the router's public address (ForwardPort): anyone may
	// send to the mapped port (endpoint-independent mapping and filtering).
	FullCone NAT = iota
	// PortRestricted is Linux's default MASQUERADE: the source port is kept when free (one
	// mapping for every destination) and only the endpoints a host sent to may answer.
	PortRestricted
	// Symmetric is MASQUERADE --random-fully: a new random port per destination, so the
	// port a third party observes is useless to anyone else.
	Symmetric
	// UDPBlocked is PortRestricted with UDP dropped in both directions: TCP only.
	UDPBlocked
)

func (n NAT) String() string {
	switch n {
	case FullCone:
		return "full-cone"
	case PortRestricted:
		return "port-restricted"
	case Symmetric:
		return "symmetric"
	case UDPBlocked:
		return "udp-blocked"
	}
	return "nat(" + strconv.Itoa(int(n)) + ")"
}

// prefix starts every namespace name; the creating process's ID follows.
const prefix = "c7lab"

// Lab is one topology. Create it with New; it is torn down at test cleanup.
type Lab struct {
	t   testing.TB
	tag string // prefix + pid + sequence: unique per Lab
	pub string // the namespace holding the public bridge

	mu      sync.Mutex // guards the following fields
	nss     []string   // namespaces created, in order
	nextPub int        // next host number on the public /24
	nextLAN int        // next LAN number (198.18.N.0/24 then 198.19.N.0/24)
	nextIf  int        // next interface number in the public namespace
}

var labSeq struct {
	sync.Mutex
	n int
}

// Host is a namespace with one address.
type Host struct {
	Name string
	NS   string // namespace name (ip netns exec NS ...)
	IP   string // its address
	lab  *Lab
}

// Router is a namespace translating a private LAN onto its upstream (the public segment
// or another router's LAN).
type Router struct {
	Host       // its upstream (WAN) side
	NAT    NAT // its translation
	LAN    string
	lanNet string // e.g. 198.18.3
	next   int    // next host number on the LAN
}

// New builds the public segment. It fails the test without root, ip or iptables.
func New(t testing.TB) *Lab {
	t.Helper()
	for _, tool := range []string{"ip", "iptables", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("netlab: %s not found (iproute2, iptables and util-linux are required): %v", tool, err)
		}
	}
	sweepStale(t)
	labSeq.Lock()
	labSeq.n++
	seq := labSeq.n
	labSeq.Unlock()
	l := &Lab{t: t, tag: fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq), nextPub: 1, nextLAN: 1}
	t.Cleanup(l.Close)
	l.pub = l.newNS("pub")
	l.ip(l.pub, "link", "add", "br0", "type", "bridge")
	l.ip(l.pub, "link", "set", "br0", "up")
	return l
}

// sweepStale removes namespaces of earlier labs whose process is gone (killed tests).
func sweepStale(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		killNS(name)
		if err := exec.Command("ip", "netns", "del", name).Run(); err == nil {
			t.Logf("netlab: removed stale namespace %s (process %d is gone)", name, pid)
		}
	}
}

// Close kills what runs in the lab's namespaces and deletes them (their interfaces,
// addresses, routes and iptables rules go with them). Safe twice.
func (l *Lab) Close() {
	l.mu.Lock()
	nss := l.nss
	l.nss = nil
	l.mu.Unlock()
	for i := len(nss) - 1; i >= 0; i-- {
		killNS(nss[i])
		if out, err := exec.Command("ip", "netns", "del", nss[i]).CombinedOutput(); err != nil {
			l.t.Errorf("netlab: delete namespace %s: %v: %s", nss[i], err, out)
		}
	}
}

// killNS kills every process left in namespace ns.
func killNS(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (l *Lab) newNS(name string) string {
	ns := l.tag + "-" + name
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: ip netns add %s: %v: %s", ns, err, out)
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.ip(ns, "link", "set", "lo", "up")
	return ns
}

// ip runs `ip -n ns args...`, failing the test on error.
func (l *Lab) ip(ns string, args ...string) {
	l.t.Helper()
	full := append([]string{"-n", ns}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// exec runs a command inside ns, failing the test on error.
func (l *Lab) exec(ns string, args ...string) {
	l.t.Helper()
	full := append([]string{"netns", "exec", ns}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: %s (in %s): %v: %s", strings.Join(args, " "), ns, err, out)
	}
}

// Public adds a host on the public segment.
func (l *Lab) Public(name string) *Host {
	l.t.Helper()
	ns := l.newNS(name)
	ip := l.attachPublic(ns, "eth0")
	return &Host{Name: name, NS: ns, IP: ip, lab: l}
}

// attachPublic links ns to the public bridge as interface ifname and gives it the next
// public address.
func (l *Lab) attachPublic(ns, ifname string) string {
	l.mu.Lock()
	l.nextPub++
	l.nextIf++
	n, ifn := l.nextPub, l.nextIf
	l.mu.Unlock()
	if n > 254 {
		l.t.Fatal("netlab: public segment full")
	}
	ip := fmt.Sprintf("198.18.0.%d", n)
	l.link(l.pub, "br0", fmt.Sprintf("p%d", ifn), ns, ifname, ip)
	return ip
}

// link connects namespace ns (interface ifname, address ip/24) to bridge br in namespace
// owner through a veth pair whose owner side is called port.
func (l *Lab) link(owner, br, port, ns, ifname, ip string) {
	l.ip(owner, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
	l.ip(owner, "link", "set", port, "master", br, "up")
	l.ip(ns, "addr", "add", ip+"/24", "dev", ifname)
	l.ip(ns, "link", "set", ifname, "up")
}

// Router adds a NAT router whose upstream is the public segment (upstream nil) or
// another router's LAN (a node behind it is behind two levels of NAT).
func (l *Lab) Router(name string, nat NAT, upstream *Router) *Router {
	l.t.Helper()
	ns := l.newNS(name)
	r := &Router{NAT: nat, next: 1}
	r.Name, r.NS, r.lab = name, ns, l
	if upstream == nil {
		r.IP = l.attachPublic(ns, "wan0")
	} else {
		r.IP = upstream.attach(ns, "wan0")
		l.ip(ns, "route", "add", "default", "via", upstream.lanNet+".1")
	}
	l.mu.Lock()
	k := l.nextLAN
	l.nextLAN++
	l.mu.Unlock()
	if k > 2*254 {
		l.t.Fatal("netlab: out of LAN prefixes")
	}
	r.lanNet = fmt.Sprintf("198.18.%d", k)
	if k > 254 {
		r.lanNet = fmt.Sprintf("198.19.%d", k-254)
	}
	r.LAN = r.lanNet + ".0/24"
	l.ip(ns, "link", "add", "lan0", "type", "bridge")
	l.ip(ns, "addr", "add", r.lanNet+".1/24", "dev", "lan0")
	l.ip(ns, "link", "set", "lan0", "up")
	l.exec(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", r.LAN, "-o", "wan0", "-j", "MASQUERADE"}
	if nat == Symmetric {
		masq = append(masq, "--random-fully")
	}
	l.exec(ns, masq...)
	// Like a home router's firewall, drop unsolicited packets to the router itself. Linux
	// would otherwise answer them (ICMP port unreachable) and keep their conntrack entry,
	// which makes MASQUERADE pick another port for a host's packets to that peer: hole
	// punching would then fail for a reason real routers do not have.
	l.exec(ns, "iptables", "-A", "INPUT", "-i", "wan0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
	if nat == UDPBlocked {
		l.exec(ns, "iptables", "-A", "FORWARD", "-p", "udp", "-j", "DROP")
	}
	return r
}

// attach links namespace ns to the router's LAN as interface ifname, with the next LAN
// address and the router as default gateway.
func (r *Router) attach(ns, ifname string) string {
	l := r.lab
	l.mu.Lock()
	r.next++
	n := r.next
	l.mu.Unlock()
	if n > 254 {
		l.t.Fatalf("netlab: LAN of %s full", r.Name)
	}
	ip := fmt.Sprintf("%s.%d", r.lanNet, n)
	l.link(r.NS, "lan0", fmt.Sprintf("l%d", n), ns, ifname, ip)
	return ip
}

// NewHost adds a host on the router's LAN (default route through the router).
func (r *Router) NewHost(name string) *Host {
	r.lab.t.Helper()
	ns := r.lab.newNS(name)
	ip := r.attach(ns, "eth0")
	r.lab.ip(ns, "route", "add", "default", "via", r.lanNet+".1")
	return &Host{Name: name, NS: ns, IP: ip, lab: r.lab}
}

// ForwardPort makes a FullCone router forward port (UDP and TCP) on its public address
// to h, which must be on its LAN.
func (r *Router) ForwardPort(h *Host, port int) {
	r.lab.t.Helper()
	for _, proto := range []string{"udp", "tcp"} {
		r.lab.exec(r.NS, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "wan0", "-p", proto,
			"--dport", strconv.Itoa(port), "-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", h.IP, port))
	}
}

// Command is name args... run inside the host's network namespace. It enters only the
// network namespace (nsenter --net): unlike ip netns exec, which remounts /sys, the
// command sees the host's cgroup and other mounts, as a node on a real host would.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.NS, "--", name}, args...)...)
}

// RequireRoot skips the test when not root, unless CONSTELLATION_TEST_REQUIRE_ROOT=1, in
// which case it fails (CI must run these tests, not skip them).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("root required (CONSTELLATION_TEST_REQUIRE_ROOT=1)")
	}
	t.Skip("needs root for network namespaces")
}
