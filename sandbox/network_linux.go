package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bridge networking (NetworkBridge), all through netlink: links, addresses and routes
// with github.com/vishvananda/netlink, packet filtering and NAT with nf_tables
// (github.com/google/nftables); nothing is exec'd.
//
// The node bridge (Config.Bridge, address: the subnet's first host address) is made
// on first use. Each bridge-mode instance has a network namespace made at Create as
// host root (so it belongs to the host's user namespace: root inside cannot change its
// addresses or routes), bind-mounted at <instance dir>/netns so it outlives runtime
// restarts, with lo, and eth0: one end of a veth pair whose host end ("c7v" + the
// address in hex) is a port of the bridge. eth0's address comes from the subnet and is
// recorded with the instance (resources.IP); its MAC is derived from it (02:42:a.b.c.d,
// so a reused address never meets a stale ARP entry). ip_unprivileged_port_start is 0
// in the namespace, so any uid inside may bind ports below 1024 (as Docker does).
// The launcher's child joins the namespace (setns) before it makes the user namespace.
//
// One nf_tables table per bridge, "ip constellation-<bridge>", holds every rule and is
// rebuilt atomically (one transaction) from the runtime's instances whenever the
// published ports change and when a runtime starts, so re-adoption keeps the rules:
//
//	chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump publish }
//	chain output      { type nat hook output priority dstnat; fib daddr type local jump publish }
//	chain publish     { tcp dport 8080 dnat to 10.213.0.2:80 ... }
//	chain postrouting { type nat hook postrouting priority srcnat;
//	                    ip saddr SUBNET oifname != BRIDGE masquerade   # egress
//	                    oifname BRIDGE ip saddr 127.0.0.0/8 masquerade # 127.0.0.1:HOSTPORT
//	                    oifname BRIDGE ip saddr SUBNET ct status dnat masquerade } # hairpin
//	chain forward     { type filter hook forward priority filter;
//	                    oifname BRIDGE ct state established,related accept
//	                    oifname BRIDGE ct status dnat accept
//	                    oifname BRIDGE iifname != BRIDGE drop }  # no direct routing in
//
// The runtime also holds each published host port (a bound socket, like Docker's
// proxy), so a port in use on the host is refused at create and no host process can
// take a published port later. ip_forward is set to 1 (and left so: other users may
// rely on it); the bridge gets route_localnet=1 for 127.0.0.1 publishing. A lock file
// (/run/constellation-net/<bridge>.lock) keeps two runtimes from sharing a bridge.

const (
	netnsFile    = "netns"
	nsfsMagic    = 0x6e736673
	netLockDir   = "/run/constellation-net"
	bridgeRecord = "bridge.json" // in the state dir: what Teardown removes
)

// bridgeNet is the node bridge and the instances on it.
type bridgeNet struct {
	log    func(msg string, args ...any)
	state  string // the runtime's state dir
	name   string
	subnet netip.Prefix
	gw     netip.Addr
	table  *nftables.Table

	mu    sync.Mutex // guards the fields below
	up    bool       // bridge, sysctls and table are set up by this runtime
	lock  *os.File   // flock of the bridge
	mtu   int
	insts map[string]netInst
	held  map[string]int // "8080/tcp" -> bound socket
}

type netInst struct {
	ip      netip.Addr
	publish []Publish
}

func newBridgeNet(cfg *Config) (*bridgeNet, error) {
	// The instances of this state dir have addresses on the bridge it recorded: keep
	// that bridge and subnet whatever the configuration says now.
	if data, err := os.ReadFile(filepath.Join(cfg.StateDir, bridgeRecord)); err == nil {
		var rec struct{ Bridge, Subnet string }
		if json.Unmarshal(data, &rec) == nil && rec.Bridge != "" && (rec.Bridge != cfg.Bridge || rec.Subnet != cfg.BridgeSubnet) {
			cfg.Logger.Warn("sandbox: this state dir's instances are on another bridge than configured; keeping it", "bridge", rec.Bridge, "subnet", rec.Subnet, "configured_bridge", cfg.Bridge, "configured_subnet", cfg.BridgeSubnet)
			cfg.Bridge, cfg.BridgeSubnet = rec.Bridge, rec.Subnet
		}
	}
	prefix, err := parseBridgeSubnet(cfg.BridgeSubnet)
	if err != nil {
		return nil, err
	}
	return &bridgeNet{
		log:    cfg.Logger.Warn,
		state:  cfg.StateDir,
		name:   cfg.Bridge,
		subnet: prefix,
		gw:     bridgeGateway(prefix),
		table:  &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "constellation-" + cfg.Bridge},
		insts:  map[string]netInst{},
		held:   map[string]int{},
	}, nil
}

// vethName is the host end of an instance's veth pair.
func vethName(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("c7v%08x", binary.BigEndian.Uint32(b[:]))
}

func instanceMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// ensureLocked sets up the bridge, the sysctls and the table (b.mu held).
func (b *bridgeNet) ensureLocked() error {
	if b.up {
		return nil
	}
	if b.lock == nil {
		if err := os.MkdirAll(netLockDir, 0o700); err != nil {
			return fmt.Errorf("sandbox: network: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(netLockDir, b.name+".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("sandbox: network: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			return fmt.Errorf("sandbox: bridge %s is used by another runtime on this host (lock %s): give each node its own bridge and subnet (Config.Bridge/BridgeSubnet, --bridge/--bridge-subnet): %w", b.name, f.Name(), ErrUnenforceable)
		}
		b.lock = f
	}
	br, err := netlink.LinkByName(b.name)
	if _, ok := err.(netlink.LinkNotFoundError); ok {
		if err := b.checkOverlap(); err != nil {
			return err
		}
		b.mtu = uplinkMTU()
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = b.name, b.mtu
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("sandbox: create bridge %s: %w", b.name, err)
		}
		if br, err = netlink.LinkByName(b.name); err != nil {
			return fmt.Errorf("sandbox: bridge %s: %w", b.name, err)
		}
	} else if err != nil {
		return fmt.Errorf("sandbox: bridge %s: %w", b.name, err)
	} else if br.Type() != "bridge" {
		return fmt.Errorf("sandbox: %s exists and is a %s, not a bridge: choose another Config.Bridge (--bridge)", b.name, br.Type())
	}
	b.mtu = br.Attrs().MTU
	if err := b.recordBridge(); err != nil {
		return err
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: b.gw.AsSlice(), Mask: net.CIDRMask(b.subnet.Bits(), 32)}}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("sandbox: bridge %s: %w", b.name, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == gw.IPNet.String() {
			have = true
		} else {
			return fmt.Errorf("sandbox: bridge %s has address %s, this runtime's subnet is %s: remove the bridge or configure its subnet", b.name, a.IPNet, b.subnet)
		}
	}
	if !have {
		if err := netlink.AddrAdd(br, gw); err != nil {
			return fmt.Errorf("sandbox: bridge %s address %s: %w", b.name, gw.IPNet, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("sandbox: bridge %s up: %w", b.name, err)
	}
	for _, s := range [][2]string{{"/proc/sys/net/ipv4/ip_forward", "1"}, {"/proc/sys/net/ipv4/conf/" + b.name + "/route_localnet", "1"}} {
		if err := os.WriteFile(s[0], []byte(s[1]), 0); err != nil {
			return fmt.Errorf("sandbox: network: %w", err)
		}
	}
	if err := b.rulesLocked(); err != nil {
		return err
	}
	b.up = true
	return nil
}

// recordBridge notes the bridge in the state dir, for Teardown.
func (b *bridgeNet) recordBridge() error {
	data, _ := json.Marshal(map[string]string{"bridge": b.name, "subnet": b.subnet.String()})
	if err := os.WriteFile(filepath.Join(b.state, bridgeRecord), data, 0o600); err != nil {
		return fmt.Errorf("sandbox: network: %w", err)
	}
	return nil
}

// checkOverlap refuses a subnet that overlaps a route of the host.
func (b *bridgeNet) checkOverlap() error {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("sandbox: list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if !ok || ones == 0 {
			continue
		}
		if netip.PrefixFrom(p.Unmap(), ones).Overlaps(b.subnet) {
			dev := ""
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				dev = " on " + l.Attrs().Name
			}
			return fmt.Errorf("sandbox: bridge subnet %s overlaps the host's route to %s%s: choose another Config.BridgeSubnet (--bridge-subnet): %w", b.subnet, r.Dst, dev, ErrUnenforceable)
		}
	}
	return nil
}

// uplinkMTU is the MTU of the default route's device (1500 if there is none).
func uplinkMTU() int {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU >= 576 {
					return l.Attrs().MTU
				}
			}
		}
	}
	return 1500
}

// add gives a new instance its namespace, veth pair and published ports.
func (b *bridgeNet) add(res *resources, spec *Spec) (err error) {
	ip, err := netip.ParseAddr(res.IP)
	if err != nil || !b.subnet.Contains(ip) {
		return fmt.Errorf("sandbox: instance %q: address %q is not in the bridge subnet %s", res.Name, res.IP, b.subnet)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ensureLocked(); err != nil {
		return err
	}
	if err := b.holdLocked(res.Name, spec.Publish); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			b.releaseLocked(spec.Publish)
		}
	}()
	if err := b.makeNetNS(res, ip); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			b.removeNetNS(res)
		}
	}()
	b.insts[res.Name] = netInst{ip: ip, publish: spec.Publish}
	if len(spec.Publish) > 0 {
		if err := b.rulesLocked(); err != nil {
			delete(b.insts, res.Name)
			return err
		}
	}
	return nil
}

// adopt records an instance of an earlier runtime (its namespace and veth are kept by
// the bind mount); sync then sets up the bridge and rebuilds the rules.
func (b *bridgeNet) adopt(res *resources, spec *Spec) {
	ip, err := netip.ParseAddr(res.IP)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.insts[res.Name] = netInst{ip: ip, publish: spec.Publish}
	if err := b.holdLocked(res.Name, spec.Publish); err != nil {
		b.log("sandbox: published port of a re-adopted instance is in use on the host", "instance", res.Name, "err", err)
	}
}

func (b *bridgeNet) sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.insts) == 0 {
		return nil // the bridge is made on first use
	}
	return b.ensureLocked()
}

// remove releases an instance's namespace, veth pair, ports and rules.
func (b *bridgeNet) remove(res *resources) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.removeNetNS(res)
	if in, ok := b.insts[res.Name]; ok {
		delete(b.insts, res.Name)
		b.releaseLocked(in.publish)
		if len(in.publish) > 0 && b.up {
			err = errors.Join(err, b.rulesLocked())
		}
	}
	return err
}

// netnsFD opens the instance's namespace for the launcher, making it again when it is
// gone (the host rebooted: the bind mount is not there).
func (b *bridgeNet) netnsFD(res *resources) (int, error) {
	path := filepath.Join(res.Dir, netnsFile)
	if fd, err := openNetNS(path); err == nil {
		return fd, nil
	}
	ip, err := netip.ParseAddr(res.IP)
	if err != nil {
		return -1, fmt.Errorf("sandbox: instance %q has no bridge address", res.Name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ensureLocked(); err != nil {
		return -1, err
	}
	b.removeNetNS(res)
	if err := b.makeNetNS(res, ip); err != nil {
		return -1, err
	}
	return openNetNS(path)
}

func openNetNS(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != nsfsMagic {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a network namespace", path)
	}
	return fd, nil
}

// makeNetNS creates the namespace (bound at <dir>/netns) with lo up, and the veth
// pair with eth0 addressed and routed inside.
func (b *bridgeNet) makeNetNS(res *resources, ip netip.Addr) error {
	path := filepath.Join(res.Dir, netnsFile)
	type made struct {
		nsFD int
		h    *netlink.Handle
		err  error
	}
	ch := make(chan made, 1)
	go func() {
		// This thread enters the new namespace and is never unlocked: it ends with the
		// goroutine, so no other goroutine runs in the instance's namespace.
		runtime.LockOSThread()
		m := made{nsFD: -1}
		defer func() { ch <- m }()
		if m.err = unix.Unshare(unix.CLONE_NEWNET); m.err != nil {
			m.err = fmt.Errorf("unshare network namespace: %w", m.err)
			return
		}
		if m.err = os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte("0"), 0); m.err != nil {
			return
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			m.err = err
			return
		}
		f.Close()
		if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
			os.Remove(path)
			m.err = fmt.Errorf("bind network namespace: %w", err)
			return
		}
		if m.nsFD, m.err = openNetNS(path); m.err != nil {
			return
		}
		if m.h, m.err = netlink.NewHandle(unix.NETLINK_ROUTE); m.err != nil { // a socket in the new namespace
			return
		}
		lo, err := m.h.LinkByName("lo")
		if err == nil {
			err = m.h.LinkSetUp(lo)
		}
		m.err = err
	}()
	m := <-ch
	if m.h != nil {
		defer m.h.Close()
	}
	if m.nsFD >= 0 {
		defer unix.Close(m.nsFD)
	}
	if m.err != nil {
		b.removeNetNS(res)
		return fmt.Errorf("sandbox: network namespace of %q: %w", res.Name, m.err)
	}
	fail := func(what string, err error) error {
		b.removeNetNS(res)
		return fmt.Errorf("sandbox: network of %q: %s: %w", res.Name, what, err)
	}
	br, err := netlink.LinkByName(b.name)
	if err != nil {
		return fail("bridge "+b.name, err)
	}
	host := vethName(ip)
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.MasterIndex = host, b.mtu, br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerHardwareAddr: instanceMAC(ip), PeerNamespace: netlink.NsFd(m.nsFD)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fail("create veth "+host, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fail("veth up", err)
	}
	eth0, err := m.h.LinkByName("eth0")
	if err != nil {
		return fail("eth0", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(b.subnet.Bits(), 32)}}
	if err := m.h.AddrAdd(eth0, addr); err != nil {
		return fail("address", err)
	}
	if err := m.h.LinkSetUp(eth0); err != nil {
		return fail("eth0 up", err)
	}
	if err := m.h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: b.gw.AsSlice()}); err != nil {
		return fail("default route", err)
	}
	return nil
}

// removeNetNS deletes the host end of the veth pair (the pair goes with it) and the
// namespace's bind mount.
func (b *bridgeNet) removeNetNS(res *resources) error {
	var errs []error
	if ip, err := netip.ParseAddr(res.IP); err == nil {
		if l, err := netlink.LinkByName(vethName(ip)); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("delete veth %s: %w", vethName(ip), err))
			}
		}
	}
	path := filepath.Join(res.Dir, netnsFile)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		errs = append(errs, fmt.Errorf("unmount %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox: network of %q: %w", res.Name, errors.Join(errs...))
	}
	return nil
}

// holdLocked binds each published host port (0.0.0.0, the protocol's socket type).
func (b *bridgeNet) holdLocked(name string, ps []Publish) error {
	for i, p := range ps {
		typ := unix.SOCK_STREAM
		if p.proto() == "udp" {
			typ = unix.SOCK_DGRAM
		}
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(p.HostPort)}); err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			b.releaseLocked(ps[:i])
			return fieldErr("publish", ErrExists, "host port %s of instance %q: %v (something on this node already uses it)", p.hostKey(), name, err)
		}
		b.held[p.hostKey()] = fd
	}
	return nil
}

func (b *bridgeNet) releaseLocked(ps []Publish) {
	for _, p := range ps {
		if fd, ok := b.held[p.hostKey()]; ok {
			unix.Close(fd)
			delete(b.held, p.hostKey())
		}
	}
}

// close releases the held ports and the bridge lock; instances, the bridge and the
// rules stay (a new runtime adopts them).
func (b *bridgeNet) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, fd := range b.held {
		unix.Close(fd)
		delete(b.held, k)
	}
	if b.lock != nil {
		b.lock.Close()
		b.lock = nil
	}
	b.up = false
}

// teardown removes the table and the bridge this state dir set up (recorded at first
// use, so a runtime configured differently still removes them).
func (b *bridgeNet) teardown() error {
	b.close()
	data, err := os.ReadFile(filepath.Join(b.state, bridgeRecord))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var rec struct{ Bridge string }
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Bridge == "" {
		return fmt.Errorf("sandbox: unreadable %s: %v", bridgeRecord, err)
	}
	var errs []error
	conn, err := nftables.New()
	if err == nil {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "constellation-" + rec.Bridge}
		conn.AddTable(t) // so that the delete cannot fail for a missing table
		conn.DelTable(t)
		err = conn.Flush()
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("sandbox: delete nftables table: %w", err))
	}
	if l, err := netlink.LinkByName(rec.Bridge); err == nil && l.Type() == "bridge" {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("sandbox: delete bridge %s: %w", rec.Bridge, err))
		}
	}
	os.Remove(filepath.Join(netLockDir, rec.Bridge+".lock"))
	os.Remove(filepath.Join(b.state, bridgeRecord))
	return errors.Join(errs...)
}

// rulesLocked replaces the bridge's table with one built from b.insts, in one
// transaction.
func (b *bridgeNet) rulesLocked() error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("sandbox: nftables: %w", err)
	}
	t := b.table
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return conn.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
	}
	add := func(c *nftables.Chain, es ...expr.Any) { conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: es}) }
	publish := conn.AddChain(&nftables.Chain{Name: "publish", Table: t})
	localDst := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: publish.Name},
	}
	add(nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest), localDst...)
	add(nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest), localDst...)
	for _, e := range b.sortedPublish() {
		proto := byte(unix.IPPROTO_TCP)
		if e.p.proto() == "udp" {
			proto = unix.IPPROTO_UDP
		}
		add(publish,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(e.p.HostPort)},
			&expr.Immediate{Register: 1, Data: e.ip.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(e.p.Port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		)
	}
	post := nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	masq := &expr.Masq{}
	add(post, cat(saddrIn(b.subnet), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, b.name), masq)...)
	add(post, cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, b.name), saddrIn(netip.MustParsePrefix("127.0.0.0/8")), masq)...)
	add(post, cat(ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, b.name), saddrIn(b.subnet), ctBits(expr.CtKeySTATUS, ipsDstNAT), masq)...)
	fwd := conn.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	out := ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, b.name)
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	add(fwd, cat(out, ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept)...)
	add(fwd, cat(out, ctBits(expr.CtKeySTATUS, ipsDstNAT), accept)...)
	add(fwd, cat(out, ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, b.name), &expr.Verdict{Kind: expr.VerdictDrop})...)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("sandbox: nftables rules of bridge %s (needs nf_tables with nat, masquerade, fib and conntrack): %w", b.name, err)
	}
	return nil
}

const ipsDstNAT = 1 << 5 // IPS_DST_NAT

type pubEntry struct {
	ip netip.Addr
	p  Publish
}

func (b *bridgeNet) sortedPublish() []pubEntry {
	var out []pubEntry
	for _, in := range b.insts {
		for _, p := range in.publish {
			out = append(out, pubEntry{in.ip, p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p.hostKey() < out[j].p.hostKey() })
	return out
}

// cat joins expression lists and single expressions into a new rule body.
func cat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch v := p.(type) {
		case []expr.Any:
			out = append(out, v...)
		case expr.Any:
			out = append(out, v)
		}
	}
	return out
}

// saddrIn matches an IPv4 source address in p.
func saddrIn(p netip.Prefix) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(p.Bits(), 32), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}

func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: data}}
}

// ctBits matches conntrack state or status bits (any of bits set).
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}
