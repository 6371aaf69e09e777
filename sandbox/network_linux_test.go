package sandbox

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testBridge picks a bridge name and a /24 of 198.18.0.0/16 that no host route
// overlaps (tests use 198.18.0.0/15 only; 198.19.0.0/16 is left to their outside hosts).
func testBridge(t testing.TB) (string, string) {
	t.Helper()
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	b := make([]byte, 1)
	for range 64 {
		rand.Read(b)
		p := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", b[0]))
		free := true
		for _, r := range routes {
			if r.Dst != nil {
				ones, _ := r.Dst.Mask.Size()
				if a, ok := netip.AddrFromSlice(r.Dst.IP); ok && ones > 0 && netip.PrefixFrom(a.Unmap(), ones).Overlaps(p) {
					free = false
				}
			}
		}
		if free {
			return randName("c7t"), p.String()
		}
	}
	t.Fatal("no free /24 in 198.18.0.0/16")
	return "", ""
}

// netState is what a test may leave behind: links named c7*, constellation nftables
// tables and network namespace mounts.
type netState struct {
	links, tables, nsMounts []string
}

func readNetState(t testing.TB) netState {
	t.Helper()
	var s netState
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "c7") {
			s.links = append(s.links, l.Attrs().Name)
		}
	}
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "constellation-") {
			s.tables = append(s.tables, tb.Name)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, " nsfs ") && strings.Contains(l, "net:[") {
			s.nsMounts = append(s.nsMounts, strings.Fields(l)[4])
		}
	}
	slices.Sort(s.links)
	slices.Sort(s.tables)
	slices.Sort(s.nsMounts)
	return s
}

// checkNetCleanup registers a check, run after every later cleanup (the runtime's
// Teardown included), that the test left no link, table or namespace mount.
func checkNetCleanup(t *testing.T) {
	before := readNetState(t)
	t.Cleanup(func() {
		after := readNetState(t)
		for _, c := range []struct {
			what      string
			was, left []string
		}{{"links", before.links, after.links}, {"nftables tables", before.tables, after.tables}, {"namespace mounts", before.nsMounts, after.nsMounts}} {
			for _, x := range c.left {
				if !slices.Contains(c.was, x) {
					t.Errorf("left behind: %s %s", c.what, x)
				}
			}
		}
	})
}

// outsideHost is a network namespace standing for a host outside the node:
// 198.19.N.2/30, linked to the node by a veth pair whose node end is 198.19.N.1.
type outsideHost struct {
	ns       string
	nodeAddr string // the node's address on the link
	addr     string // the outside host's
}

func newOutsideHost(t *testing.T) *outsideHost {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	n := int(b[0]) & 0x3f // 198.19.0.0/16 split in /30s: 198.19.N.(4k)
	k := int(b[1]) & 0x3f
	o := &outsideHost{ns: randName("c7o"), nodeAddr: fmt.Sprintf("198.19.%d.%d", n, 4*k+1), addr: fmt.Sprintf("198.19.%d.%d", n, 4*k+2)}
	link := o.ns // the node end carries the namespace's name
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", link).Run()
		exec.Command("ip", "netns", "del", o.ns).Run()
	})
	run("netns", "add", o.ns)
	run("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", o.ns)
	run("addr", "add", o.nodeAddr+"/30", "dev", link)
	run("link", "set", link, "up")
	run("-n", o.ns, "addr", "add", o.addr+"/30", "dev", "eth0")
	run("-n", o.ns, "link", "set", "eth0", "up")
	run("-n", o.ns, "link", "set", "lo", "up")
	return o
}

// in runs f on a thread inside the outside host's namespace (sockets made there stay
// there).
func (o *outsideHost) in(t *testing.T, f func()) {
	t.Helper()
	h, err := netns.GetFromName(o.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// serveRemote answers each TCP connection with "you are REMOTEADDR".
func serveRemote(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "you are %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
}

// ask connects to addr and returns the first line it sends.
func ask(network, addr string) (string, error) {
	c, err := net.DialTimeout(network, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if strings.HasPrefix(network, "udp") {
		if _, err := c.Write([]byte("x")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// freePort is a TCP and UDP port free on the host now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp4", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if pc, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", port)); err == nil {
			pc.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

// output runs a one-shot instance and returns its stdout; it fails the test unless the
// program exits 0 (or fails when wantFail).
func (e *testEnv) output(t *testing.T, spec Spec, wantFail bool) string {
	t.Helper()
	ex := e.run(t, spec)
	out := e.logs(t, spec.Name, Stdout)
	if (ex.Reason == ReasonExited && ex.Code == 0) == wantFail {
		t.Fatalf("%s %v: exit %+v (want failure %v): stdout %q stderr %q", spec.Name, spec.Command, ex, wantFail, out, e.logs(t, spec.Name, Stderr))
	}
	if err := e.rt.Destroy(context.Background(), spec.Name, false); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *testEnv) waitServing(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs(t, name, Stdout), "serving") {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not serve: %q", name, e.logs(t, name, Stderr))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBridgeNetwork: bridge-mode instances have their own eth0 and address, see none
// of the host's interfaces, cannot take a host port, reach each other and the outside
// through NAT, and serve published ports to the host (127.0.0.1 and its addresses),
// to other hosts and to other instances; conflicts name the holder; a new runtime
// keeps addresses and rules; destroy and teardown leave nothing.
func TestBridgeNetwork(t *testing.T) {
	requireRoot(t)
	checkNetCleanup(t)
	out := newOutsideHost(t)
	var outLn net.Listener
	out.in(t, func() {
		var err error
		if outLn, err = net.Listen("tcp4", out.addr+":9000"); err != nil {
			t.Error(err)
		}
	})
	if outLn == nil {
		t.FailNow()
	}
	serveRemote(t, outLn)
	// The node's "admin API": a host listener the instances must not capture.
	admin, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	serveRemote(t, admin)
	adminPort := admin.Addr().(*net.TCPAddr).Port

	e := newTestRuntime(t, nil)
	dir := e.withHelper(t, "net")
	subnet := netip.MustParsePrefix(e.cfg.BridgeSubnet)
	pub := freePort(t)
	web, err := e.rt.Create(Spec{Name: "web", Code: dir, Command: []string{"./helper", "serve", "tcp:80", "udp:53"},
		Publish: []Publish{{HostPort: pub, Port: 80}, {HostPort: pub, Port: 53, Protocol: "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if web.Spec.Network != NetworkBridge {
		t.Errorf("default network stored as %q; want %q", web.Spec.Network, NetworkBridge)
	}
	webIP, err := netip.ParseAddr(web.IP)
	if err != nil || !subnet.Contains(webIP) || webIP == bridgeGateway(subnet) {
		t.Fatalf("web's address %q is not an instance address of %s", web.IP, subnet)
	}
	if _, err := e.rt.Start("web"); err != nil {
		t.Fatal(err)
	}
	e.waitServing(t, "web")

	// Its own interfaces only: lo and eth0 with its address.
	ifaces := e.output(t, Spec{Name: "ifaces", Code: dir, Command: []string{"./helper", "ifaces"}}, false)
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(ifaces), "\n") {
		names = append(names, strings.Fields(l)[0])
	}
	if slices.Sort(names); strings.Join(names, " ") != "eth0 lo" {
		t.Errorf("interfaces in a bridge instance: %q; want eth0 and lo", ifaces)
	}
	if !strings.Contains(ifaces, "eth0 "+webIP.Next().String()+"/24") {
		t.Errorf("eth0 of the second instance: %q; want %s/24", ifaces, webIP.Next())
	}

	// The attack of issue 10: bind the admin API's port. The instance binds it in its
	// own namespace; the host's clients still reach the host's listener.
	squat, err := e.rt.Create(Spec{Name: "squat", Code: dir, Command: []string{"./helper", "serve", fmt.Sprintf("tcp:%d", adminPort)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start(squat.Name); err != nil {
		t.Fatal(err)
	}
	e.waitServing(t, "squat")
	if got, err := ask("tcp4", fmt.Sprintf("127.0.0.1:%d", adminPort)); err != nil || !strings.HasPrefix(got, "you are 127.0.0.1") {
		t.Errorf("the host's port %d answered %q, %v; want the host's own listener", adminPort, got, err)
	}

	// Instance to instance on the bridge.
	got := e.output(t, Spec{Name: "peer", Code: dir, Command: []string{"./helper", "connect", "tcp", webIP.String() + ":80"}}, false)
	if !strings.HasPrefix(got, "hello from web to "+subnet.Addr().String()[:len(subnet.Addr().String())-1]) {
		t.Errorf("instance to instance: %q; want web's answer to a bridge address", got)
	}
	// Outside through NAT: the outside host sees the node's address.
	got = e.output(t, Spec{Name: "egress", Code: dir, Command: []string{"./helper", "connect", "tcp", out.addr + ":9000"}}, false)
	if !strings.HasPrefix(got, "you are "+out.nodeAddr+":") {
		t.Errorf("egress: the outside host saw %q; want the node's address %s (masquerade)", got, out.nodeAddr)
	}
	// Published port: from the host on 127.0.0.1 and on its address, over TCP and UDP.
	for _, addr := range []string{"127.0.0.1", out.nodeAddr} {
		for _, nw := range []string{"tcp4", "udp4"} {
			if got, err := ask(nw, fmt.Sprintf("%s:%d", addr, pub)); err != nil || !strings.HasPrefix(got, "hello from web") {
				t.Errorf("published %s %s:%d from the host: %q, %v", nw, addr, pub, got, err)
			}
		}
	}
	// From another host: the outside namespace connects to the node's address; the
	// instance sees the client's own address.
	out.in(t, func() {
		if got, err := ask("tcp4", fmt.Sprintf("%s:%d", out.nodeAddr, pub)); err != nil || got != "hello from web to "+out.addr+":"+strings.Split(got, ":")[len(strings.Split(got, ":"))-1] {
			t.Errorf("published port from the outside host: %q, %v; want web's answer to %s", got, err, out.addr)
		}
	})
	// From another instance through the node's address (hairpin).
	got = e.output(t, Spec{Name: "hairpin", Code: dir, Command: []string{"./helper", "connect", "tcp", fmt.Sprintf("%s:%d", out.nodeAddr, pub)}}, false)
	if !strings.HasPrefix(got, "hello from web") {
		t.Errorf("published port from another instance: %q", got)
	}

	// Conflicts: a host port published by another instance, or used on the host.
	_, err = e.rt.Create(Spec{Name: "dup", Code: dir, Command: []string{"./helper", "sleep"}, Publish: []Publish{{HostPort: pub, Port: 81}}})
	if err == nil || !strings.Contains(err.Error(), `instance "web"`) || !strings.Contains(err.Error(), fmt.Sprintf("%d/tcp", pub)) {
		t.Errorf("publishing web's port again: %v; want a conflict naming web and %d/tcp", err, pub)
	}
	_, err = e.rt.Create(Spec{Name: "dup", Code: dir, Command: []string{"./helper", "sleep"}, Publish: []Publish{{HostPort: uint16(adminPort), Port: 81}}})
	if err == nil || !strings.Contains(err.Error(), "already uses it") {
		t.Errorf("publishing a port the host uses: %v; want refused", err)
	}
	if _, err := e.rt.Get("dup"); err == nil {
		t.Error("a refused create left an instance")
	}

	// A new runtime keeps addresses, namespaces and rules.
	e.rt.Close()
	rt, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt
	if info, err := rt.Get("web"); err != nil || info.IP != web.IP || info.State != StateRunning {
		t.Fatalf("web after re-adoption: %+v, %v; want running on %s", info, err, web.IP)
	}
	if got, err := ask("tcp4", fmt.Sprintf("127.0.0.1:%d", pub)); err != nil || !strings.HasPrefix(got, "hello from web") {
		t.Errorf("published port after re-adoption: %q, %v", got, err)
	}
	if _, err := rt.Create(Spec{Name: "dup", Code: dir, Command: []string{"./helper", "sleep"}, Publish: []Publish{{HostPort: pub, Port: 81}}}); err == nil {
		t.Error("after re-adoption a second instance could publish web's port")
	}
	if info := e.output(t, Spec{Name: "next", Code: dir, Command: []string{"./helper", "ifaces"}}, false); strings.Contains(info, " "+web.IP+"/") || strings.Contains(info, " "+squat.IP+"/") {
		t.Errorf("a new instance got an address in use: %q", info)
	}

	// Destroy releases the address, the veth, the namespace and the port.
	if err := rt.Destroy(context.Background(), "web", false); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(vethName(webIP)); err == nil {
		t.Errorf("veth %s remains after destroy", vethName(webIP))
	}
	if _, err := os.Stat(filepath.Join(e.state, "instances", "web")); err == nil {
		t.Error("web's directory (and namespace mount) remains")
	}
	if got, err := ask("tcp4", fmt.Sprintf("127.0.0.1:%d", pub)); err == nil {
		t.Errorf("published port answers after destroy: %q", got)
	}
	if ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", pub)); err != nil {
		t.Errorf("host port %d not released: %v", pub, err)
	} else {
		ln.Close()
	}
}

// TestNetworkModes: none has only loopback, host shares the host's interfaces, and
// bad modes and publish combinations are refused naming the field.
func TestNetworkModes(t *testing.T) {
	requireRoot(t)
	checkNetCleanup(t)
	e := newTestRuntime(t, nil)
	dir := e.withHelper(t, "net")
	got := e.output(t, Spec{Name: "none", Network: NetworkNone, Code: dir, Command: []string{"./helper", "ifaces"}}, false)
	if f := strings.Fields(got); len(f) < 1 || f[0] != "lo" || strings.Count(strings.TrimSpace(got), "\n") != 0 {
		t.Errorf("interfaces with network none: %q; want lo only", got)
	}
	hostIfs, _ := net.Interfaces()
	got = e.output(t, Spec{Name: "host", Network: NetworkHost, Code: dir, Command: []string{"./helper", "ifaces"}}, false)
	for _, i := range hostIfs {
		if !strings.Contains(got, i.Name) {
			t.Errorf("network host: the host's %s is missing from %q", i.Name, got)
		}
	}
	if _, err := os.Stat("/proc/sys/net/ipv4/conf/" + e.cfg.Bridge); err == nil {
		t.Errorf("bridge %s exists though no instance used bridge networking", e.cfg.Bridge)
	}
	for _, s := range []Spec{
		{Name: "bad", Network: "nat", Command: []string{"true"}},
		{Name: "bad", Network: NetworkHost, Command: []string{"true"}, Publish: []Publish{{HostPort: 1, Port: 1}}},
	} {
		_, err := e.rt.Create(s)
		var fe *FieldError
		if !errors.As(err, &fe) || (fe.Field != "network" && fe.Field != "publish") {
			t.Errorf("Create(network %q publish %v) = %v; want a network/publish field error", s.Network, s.Publish, err)
		}
	}
}

// TestResolvConf: the generated resolv.conf of each mode.
func TestResolvConf(t *testing.T) {
	host := []byte("# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n")
	if got := string(resolvConf(NetworkHost, host, nil, nil)); got != string(host) {
		t.Errorf("host: %q", got)
	}
	if got := string(resolvConf(NetworkBridge, host, nil, nil)); got != "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n" {
		t.Errorf("bridge: %q", got)
	}
	if got := string(resolvConf(NetworkBridge, host, []string{"192.0.2.1"}, nil)); got != "nameserver 192.0.2.1\nsearch example.org\noptions edns0\n" {
		t.Errorf("bridge with DNS: %q", got)
	}
	loop := []byte("nameserver 127.0.0.53\n")
	if got := string(resolvConf(NetworkBridge, loop, nil, func() []byte { return []byte("nameserver 192.0.2.9\n") })); got != "nameserver 192.0.2.9\n" {
		t.Errorf("bridge with a loopback resolver: %q", got)
	}
	if got := string(resolvConf(NetworkBridge, loop, nil, func() []byte { return nil })); got != "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" {
		t.Errorf("bridge fallback: %q", got)
	}
	if got := string(resolvConf(NetworkNone, host, nil, nil)); strings.Contains(got, "nameserver") {
		t.Errorf("none: %q", got)
	}
}
