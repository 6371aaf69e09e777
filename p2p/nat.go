package p2p

// Across NATs (see doc.go): a member-only circuit relay on every member, reservations on
// members this node reached directly, hole punching (DCUtR) to upgrade relayed
// connections, observed-address learning from members, reachability and NAT type.

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/fx"
)

// Connection types reported by PeerPath.
const (
	PathDirect      = "direct"       // a connection one side dialled on the other's address
	PathRelayed     = "relayed"      // through another member's circuit relay
	PathHolePunched = "hole-punched" // direct, opened by hole punching while relayed
)

// Reachability values reported by NATStatus.
const (
	ReachPublic  = "public"  // members see the node's own address, and one dialled it
	ReachPrivate = "private" // members see another address than the node's own: behind NAT
	ReachUnknown = "unknown" // not enough observations yet
)

// NAT types reported by NATStatus (how the node's NAT maps its QUIC port).
const (
	NATNone      = "none"      // members see the node's own address
	NATCone      = "cone"      // every member sees the same public address and port
	NATSymmetric = "symmetric" // members see different ports: hole punching will mostly fail
	NATUnknown   = "unknown"
)

// relayRefresh is how often reservations and relay choices are reviewed.
const relayRefresh = 5 * time.Second

// relayedGrace is how long a relayed connection stays after a direct one to the same
// peer exists (streams opened over it finish; new ones take the direct connection).
const relayedGrace = 10 * time.Second

// natState is the host's NAT traversal state, guarded by its own mutex.
type natState struct {
	mu sync.Mutex
	// observed holds, per member, our addresses as it saw them on direct connections
	// (identify's observed address), keyed by connection ID.
	observed map[peer.ID]map[string]ma.Multiaddr
	// listen holds each peer's own announced addresses (identify's listen addresses).
	listen map[peer.ID][]ma.Multiaddr
	// rsvp holds this node's reservations, per relay.
	rsvp map[peer.ID]*reservation
	// punched holds the peers whose direct connections were opened while a relayed one
	// existed (hole punching, or a direct dial that works once the NATs have mappings),
	// and since when; forgotten when the peer's last connection closes.
	punched map[peer.ID]time.Time
	// directSince is when a direct connection to a peer that also has relayed ones appeared.
	directSince map[peer.ID]time.Time

	ids     identify.IDService
	relay   *relay.Relay
	hps     *holepunch.Service
	sub     event.Subscription
	trigger chan struct{}
	rttNow  chan struct{} // measure round-trip times now (a member was admitted)
}

type reservation struct {
	obtained, expires time.Time
	addrs             []ma.Multiaddr // relayed addresses through this relay, with /p2p-circuit
}

func (n *natState) init() {
	n.observed = map[peer.ID]map[string]ma.Multiaddr{}
	n.listen = map[peer.ID][]ma.Multiaddr{}
	n.rsvp = map[peer.ID]*reservation{}
	n.punched = map[peer.ID]time.Time{}
	n.directSince = map[peer.ID]time.Time{}
	n.trigger = make(chan struct{}, 1)
	n.rttNow = make(chan struct{}, 1)
}

// natOptions are the libp2p options for NAT traversal: the circuit relay transport (its
// STOP handler guarded: only an admitted member may relay a connection to us), port
// mapping unless disabled, and a handle on identify for hole punching.
func (h *Host) natOptions() []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.DisableRelay(), // the transport is added below, with a guarded handler
		libp2p.WithFxOption(fx.Invoke(func(bh host.Host, u transport.Upgrader, ids identify.IDService) error {
			h.nat.ids = ids
			return client.AddTransport(stopGuard{Host: bh, h: h}, u)
		})),
	}
	if !h.cfg.NoPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	return opts
}

// stopGuard is the host as the relay client sees it: the STOP handler it registers only
// answers admitted members (a relay that is not a member cannot hand us connections).
type stopGuard struct {
	host.Host
	h *Host
}

func (g stopGuard) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	g.Host.SetStreamHandler(pid, g.h.Guard(handler))
}

// memberACL lets only admitted members reserve and only admitted members connect to
// admitted members through this node's relay.
type memberACL Host

func (a *memberACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	return (*Host)(a).IsAdmitted(p)
}

func (a *memberACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	h := (*Host)(a)
	return h.IsAdmitted(src) && h.IsAdmitted(dest)
}

// startNAT starts the relay service, hole punching and the reservation loop.
func (h *Host) startNAT() error {
	n := &h.nat
	if !h.cfg.DisableRelayService {
		r, err := relay.New(h.mh,
			relay.WithACL((*memberACL)(h)),
			relay.WithResources(h.cfg.relayResources()),
			relay.WithReservationAddressFilter(func(a ma.Multiaddr) bool { return advertisable(a, false) }))
		if err != nil {
			return fmt.Errorf("p2p: relay service: %w", err)
		}
		n.relay = r
	}
	if !h.cfg.DisableHolePunching && n.ids != nil {
		s, err := holepunch.NewService(h.mh, n.ids, h.holePunchAddrs, holepunch.WithTracer((*hpTracer)(h)))
		if err != nil {
			return fmt.Errorf("p2p: hole punching: %w", err)
		}
		n.hps = s
	}
	sub, err := h.h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted), eventbus.Name("constellation-nat"))
	if err != nil {
		return err
	}
	n.sub = sub
	h.goRun(func() {
		for ev := range sub.Out() {
			h.noteObserved(ev.(event.EvtPeerIdentificationCompleted))
		}
	})
	ping.NewPingService(h.mh) // member-only: its handler is guarded
	h.goRun(h.relayLoop)
	h.goRun(h.rttLoop)
	return nil
}

func (h *Host) closeNAT() {
	n := &h.nat
	if n.relay != nil {
		n.relay.Close()
	}
	if n.hps != nil {
		n.hps.Close()
	}
	if n.sub != nil {
		n.sub.Close()
	}
}

// hpTracer logs hole punching: attempts and failures at debug level, successes at info.
type hpTracer Host

func (t *hpTracer) Trace(e *holepunch.Event) {
	h := (*Host)(t)
	switch ev := e.Evt.(type) {
	case *holepunch.EndHolePunchEvt:
		if ev.Success {
			h.log.Info("hole punched", "peer", e.Remote, "took", ev.EllapsedTime)
		} else {
			h.log.Debug("hole punch failed", "peer", e.Remote, "took", ev.EllapsedTime, "err", ev.Error)
		}
	case *holepunch.DirectDialEvt:
		h.log.Debug("hole punching: direct dial", "peer", e.Remote, "ok", ev.Success, "err", ev.Error)
	case *holepunch.StartHolePunchEvt:
		h.log.Debug("hole punching", "peer", e.Remote, "addrs", ev.RemoteAddrs, "rtt", ev.RTT)
	case *holepunch.ProtocolErrorEvt:
		h.log.Debug("hole punching: protocol error", "peer", e.Remote, "err", ev.Error)
	}
}

// noteObserved records the address a peer saw for us on a direct connection.
func (h *Host) noteObserved(e event.EvtPeerIdentificationCompleted) {
	if len(e.ListenAddrs) > 0 {
		h.nat.mu.Lock()
		h.nat.listen[e.Peer] = slices.Clone(e.ListenAddrs[:min(len(e.ListenAddrs), 32)])
		h.nat.mu.Unlock()
	}
	if e.Conn == nil || e.ObservedAddr == nil || isRelayed(e.Conn.RemoteMultiaddr()) || !dialable(e.ObservedAddr) {
		return
	}
	if !advertisable(e.ObservedAddr, false) {
		return
	}
	n := &h.nat
	n.mu.Lock()
	known := false
	for _, m := range n.observed {
		for _, a := range m {
			known = known || a.Equal(e.ObservedAddr)
		}
	}
	m := n.observed[e.Peer]
	if m == nil {
		m = map[string]ma.Multiaddr{}
		n.observed[e.Peer] = m
	}
	if len(m) < 8 {
		m[e.Conn.ID()] = e.ObservedAddr
	}
	n.mu.Unlock()
	if !known {
		h.addrsChanged()
	}
}

// addrsChanged tells the owner (OnAddrsChanged) that Addrs may have changed.
func (h *Host) addrsChanged() {
	if cb := h.cfg.OnAddrsChanged; cb != nil {
		h.events.push(cb)
	}
}

// observedAddrs are the addresses admitted members saw for our QUIC listen port (QUIC
// dials reuse the listening socket, so its mapping is the one others can use) and, for
// TCP, for connections accepted on our listen port.
func (h *Host) observedAddrs() []ma.Multiaddr {
	listen := h.h.Network().ListenAddresses()
	n := &h.nat
	var out []ma.Multiaddr
	for _, c := range h.h.Network().Conns() {
		if isRelayed(c.RemoteMultiaddr()) || !h.IsAdmitted(c.RemotePeer()) {
			continue
		}
		n.mu.Lock()
		obs := n.observed[c.RemotePeer()][c.ID()]
		n.mu.Unlock()
		if obs == nil || !sameListenPort(c.LocalMultiaddr(), listen) {
			continue
		}
		if !slices.ContainsFunc(out, obs.Equal) {
			out = append(out, obs)
		}
	}
	return out
}

// sameListenPort reports whether local uses the port of one of the listen addresses of
// its transport.
func sameListenPort(local ma.Multiaddr, listen []ma.Multiaddr) bool {
	lt, lp := listenKey(local)
	for _, a := range listen {
		if t, p := listenKey(a); t == lt && p == lp {
			return true
		}
	}
	return false
}

// holePunchAddrs are the addresses offered to a peer for hole punching: what members
// observed and our own usable listen addresses (a peer on the same LAN needs those).
func (h *Host) holePunchAddrs() []ma.Multiaddr {
	out := h.observedAddrs()
	// A NAT that kept our QUIC port most likely keeps our TCP port too: offer that
	// mapping for TCP hole punching when no member has observed a TCP connection (a
	// member behind a NAT that blocks UDP needs it).
	tcpPort := ""
	for _, l := range h.h.Network().ListenAddresses() {
		if t, p := listenKey(l); t == "tcp" {
			tcpPort = p
		}
	}
	for _, o := range slices.Clone(out) {
		t, port := listenKey(o)
		ip, err := manet.ToIP(o)
		if t != "quic" || port != tcpPort || err != nil {
			continue
		}
		guess, err := manet.FromNetAddr(&net.TCPAddr{IP: ip, Port: atoiOr0(port)})
		if err == nil && !slices.ContainsFunc(out, guess.Equal) {
			out = append(out, guess)
		}
	}
	for _, a := range h.h.Addrs() {
		if !isRelayed(a) && advertisable(a, false) && !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// relayAddrs are this node's relayed addresses (through the relays it holds a
// reservation with).
func (h *Host) relayAddrs() []ma.Multiaddr {
	n := &h.nat
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []ma.Multiaddr
	for _, r := range n.rsvp {
		out = append(out, r.addrs...)
	}
	return out
}

// relayLoop keeps reservations on up to MaxRelays members while this node is not
// publicly reachable, and closes relayed connections a direct one replaced.
func (h *Host) relayLoop() {
	t := time.NewTicker(relayRefresh)
	defer t.Stop()
	for {
		h.reviewRelays()
		h.dropReplacedRelayed()
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		case <-h.nat.trigger:
		}
	}
}

// triggerRelays reviews relays and measures round-trip times now (a member was admitted).
func (h *Host) triggerRelays() {
	for _, ch := range []chan struct{}{h.nat.trigger, h.nat.rttNow} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// reviewRelays drops reservations whose relay is gone or no longer needed, renews those
// past half their lifetime and makes new ones up to MaxRelays.
func (h *Host) reviewRelays() {
	n := &h.nat
	want := max(h.cfg.MaxRelays, 0)
	if h.Reachability() == ReachPublic {
		want = 0 // others dial us directly
	}
	now := time.Now()
	n.mu.Lock()
	var renew []peer.ID
	dropped := false
	for p, r := range n.rsvp {
		switch {
		case !h.IsAdmitted(p) || h.directConn(p) == nil || len(n.rsvp) > want || now.After(r.expires):
			delete(n.rsvp, p)
			dropped = true
		case now.After(r.obtained.Add(r.expires.Sub(r.obtained) / 2)):
			renew = append(renew, p)
		}
	}
	have := len(n.rsvp)
	n.mu.Unlock()
	if dropped {
		h.addrsChanged()
	}
	var cands []peer.ID
	if have < want {
		for _, p := range h.Admitted() {
			n.mu.Lock()
			_, held := n.rsvp[p]
			n.mu.Unlock()
			if !held && h.relayCandidate(p) {
				cands = append(cands, p)
			}
		}
		rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	}
	for _, p := range renew {
		h.reserve(p)
	}
	for _, p := range cands {
		if have >= want || h.ctx.Err() != nil {
			break
		}
		if h.reserve(p) {
			have++
		}
	}
}

// relayCandidate: a member this node reaches on one of the member's own announced
// addresses (no NAT in front of it: it accepts connections from outside its network; a
// member behind NAT is reached on its NAT's address) and, when this node is behind NAT,
// one that sees this node's public address (it is outside this node's network, not a
// neighbour on the same LAN).
func (h *Host) relayCandidate(p peer.ID) bool {
	if h.holePunched(p) {
		return false
	}
	n := &h.nat
	n.mu.Lock()
	listen := n.listen[p]
	var sees []ma.Multiaddr
	for _, a := range n.observed[p] {
		sees = append(sees, a)
	}
	n.mu.Unlock()
	onListen := false
	for _, c := range h.h.Network().ConnsToPeer(p) {
		if !c.IsClosed() && !isRelayed(c.RemoteMultiaddr()) && slices.ContainsFunc(listen, c.RemoteMultiaddr().Equal) {
			onListen = true
		}
	}
	if !onListen {
		return false
	}
	if h.Reachability() != ReachPrivate {
		return true
	}
	own := ownIPs()
	for _, a := range sees {
		if ip, err := manet.ToIP(a); err == nil && !own[ip.String()] {
			return true
		}
	}
	return false
}

// holePunched reports whether this node reached p through a relay before it had a
// direct connection.
func (h *Host) holePunched(p peer.ID) bool {
	h.nat.mu.Lock()
	defer h.nat.mu.Unlock()
	_, ok := h.nat.punched[p]
	return ok
}

// reserve makes or renews a reservation with relay p.
func (h *Host) reserve(p peer.ID) bool {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	rv, err := client.Reserve(ctx, h.h, peer.AddrInfo{ID: p})
	if err != nil {
		h.log.Debug("relay reservation failed", "relay", p, "err", err)
		h.nat.mu.Lock()
		_, had := h.nat.rsvp[p]
		delete(h.nat.rsvp, p)
		h.nat.mu.Unlock()
		if had {
			h.addrsChanged()
		}
		return false
	}
	circuit, err := ma.NewMultiaddr("/p2p/" + p.String() + "/p2p-circuit")
	if err != nil {
		return false
	}
	var addrs []ma.Multiaddr
	add := func(a ma.Multiaddr) {
		if a == nil || isRelayed(a) {
			return
		}
		if t, _ := peer.SplitAddr(a); t != nil {
			a = t
		}
		ra := a.Encapsulate(circuit)
		if !slices.ContainsFunc(addrs, ra.Equal) {
			addrs = append(addrs, ra)
		}
	}
	if c := h.directConn(p); c != nil {
		add(c.RemoteMultiaddr()) // the address that reached it from here first
	}
	for _, a := range rv.Addrs {
		add(a)
	}
	h.nat.mu.Lock()
	_, renewed := h.nat.rsvp[p]
	h.nat.rsvp[p] = &reservation{obtained: time.Now(), expires: rv.Expiration, addrs: addrs}
	h.nat.mu.Unlock()
	if !renewed {
		h.log.Info("relay reservation", "relay", p, "expires", rv.Expiration.Format(time.RFC3339), "addrs", addrs)
		h.addrsChanged()
	}
	return true
}

// directConn is an open direct (not relayed) connection to p, or nil.
func (h *Host) directConn(p peer.ID) network.Conn {
	for _, c := range h.h.Network().ConnsToPeer(p) {
		if !c.IsClosed() && !isRelayed(c.RemoteMultiaddr()) {
			return c
		}
	}
	return nil
}

// notePath classifies a new connection: a direct one to a peer we reach through a relay
// was hole punched (or dialled directly after all) and will replace the relayed ones.
func (h *Host) notePath(c network.Conn) {
	if isRelayed(c.RemoteMultiaddr()) {
		return
	}
	p := c.RemotePeer()
	relayed := false
	for _, o := range h.h.Network().ConnsToPeer(p) {
		if o != c && isRelayed(o.RemoteMultiaddr()) {
			relayed = true
		}
	}
	if !relayed {
		return
	}
	n := &h.nat
	n.mu.Lock()
	if _, ok := n.punched[p]; !ok {
		n.punched[p] = time.Now()
	}
	if _, ok := n.directSince[p]; !ok {
		n.directSince[p] = time.Now()
	}
	n.mu.Unlock()
	// New packets take the direct connection.
	h.goRun(func() { h.dropPacketStreams(p) })
}

// forgetConn drops per-connection NAT state, and the peer's when it was the last.
func (h *Host) forgetConn(c network.Conn) {
	n := &h.nat
	last := !h.Connected(c.RemotePeer())
	n.mu.Lock()
	if last {
		delete(n.punched, c.RemotePeer())
		delete(n.listen, c.RemotePeer())
	}
	if m := n.observed[c.RemotePeer()]; m != nil {
		delete(m, c.ID())
		if len(m) == 0 {
			delete(n.observed, c.RemotePeer())
		}
	}
	n.mu.Unlock()
}

// dropReplacedRelayed closes relayed connections to peers that have had a direct one for
// relayedGrace (or at once when nothing uses them).
func (h *Host) dropReplacedRelayed() {
	n := &h.nat
	n.mu.Lock()
	since := make(map[peer.ID]time.Time, len(n.directSince))
	for p, t := range n.directSince {
		since[p] = t
	}
	n.mu.Unlock()
	for p, t := range since {
		if h.directConn(p) == nil {
			n.mu.Lock()
			delete(n.directSince, p)
			n.mu.Unlock()
			continue
		}
		remaining := 0
		for _, c := range h.h.Network().ConnsToPeer(p) {
			if !isRelayed(c.RemoteMultiaddr()) {
				continue
			}
			if len(c.GetStreams()) == 0 || time.Since(t) > relayedGrace {
				c.Close()
			} else {
				remaining++
			}
		}
		if remaining == 0 {
			n.mu.Lock()
			delete(n.directSince, p)
			n.mu.Unlock()
		}
	}
}

// PeerPath describes how this node reaches a peer.
type PeerPath struct {
	Type      string // PathDirect, PathRelayed or PathHolePunched
	Transport string // "quic" or "tcp" (for a relayed path: to the relay)
	Addr      string // the remote address of the connection
	Relay     peer.ID
}

// Path reports the connection libp2p uses for new streams to p (as its swarm chooses:
// unlimited before limited, direct before relayed, then the most streams), ok false when
// there is none.
func (h *Host) Path(p peer.ID) (PeerPath, bool) {
	var best network.Conn
	better := func(a, b network.Conn) bool {
		if a.Stat().Limited != b.Stat().Limited {
			return !a.Stat().Limited
		}
		if ra, rb := isRelayed(a.RemoteMultiaddr()), isRelayed(b.RemoteMultiaddr()); ra != rb {
			return !ra
		}
		return len(a.GetStreams()) > len(b.GetStreams())
	}
	for _, c := range h.h.Network().ConnsToPeer(p) {
		if !c.IsClosed() && (best == nil || better(c, best)) {
			best = c
		}
	}
	if best == nil {
		return PeerPath{}, false
	}
	ra := best.RemoteMultiaddr()
	pp := PeerPath{Type: PathDirect, Addr: ra.String()}
	tr, _ := listenKey(ra)
	pp.Transport = tr
	if isRelayed(ra) {
		pp.Type = PathRelayed
		if v, err := ra.ValueForProtocol(ma.P_P2P); err == nil {
			pp.Relay, _ = peer.Decode(v)
		}
	} else if h.holePunched(p) {
		pp.Type = PathHolePunched
	}
	return pp, true
}

// RelayReservation is one reservation this node holds.
type RelayReservation struct {
	Relay   peer.ID
	Expires time.Time
	Addrs   []ma.Multiaddr
}

// NATStatus is what this node knows about its own reachability.
type NATStatus struct {
	Reachability string // ReachPublic, ReachPrivate or ReachUnknown
	NATType      string // NATNone, NATCone, NATSymmetric or NATUnknown
	Observed     []ma.Multiaddr
	Relays       []RelayReservation
	RelayService bool // this node relays for members
}

// NAT reports this node's reachability, NAT type, observed addresses and reservations.
func (h *Host) NAT() NATStatus {
	st := NATStatus{Reachability: h.Reachability(), NATType: h.natType(), Observed: h.observedAddrs(), RelayService: h.nat.relay != nil}
	h.nat.mu.Lock()
	for p, r := range h.nat.rsvp {
		st.Relays = append(st.Relays, RelayReservation{Relay: p, Expires: r.expires, Addrs: slices.Clone(r.addrs)})
	}
	h.nat.mu.Unlock()
	slices.SortFunc(st.Relays, func(a, b RelayReservation) int { return cmp.Compare(a.Relay, b.Relay) })
	return st
}

// Reachability: private when members observe an address that is not this node's own
// (it is behind NAT, even if a port is forwarded to it); public when they observe its own
// address and a member dialled it directly (not after a relayed connection); unknown
// otherwise (no observation yet, or nobody has dialled it).
func (h *Host) Reachability() string {
	var obs []ma.Multiaddr // every observation, also of TCP connections from ephemeral ports
	h.nat.mu.Lock()
	for p, m := range h.nat.observed {
		for _, a := range m {
			if h.IsAdmitted(p) {
				obs = append(obs, a)
			}
		}
	}
	h.nat.mu.Unlock()
	if len(obs) == 0 {
		return ReachUnknown
	}
	own := ownIPs()
	for _, o := range obs {
		if ip, err := manet.ToIP(o); err == nil && !own[ip.String()] {
			return ReachPrivate
		}
	}
	for _, c := range h.h.Network().Conns() {
		if c.Stat().Direction == network.DirInbound && !isRelayed(c.RemoteMultiaddr()) &&
			h.IsAdmitted(c.RemotePeer()) && !h.holePunched(c.RemotePeer()) {
			return ReachPublic
		}
	}
	return ReachUnknown
}

// natType compares the QUIC addresses members observe: the node's own address means no
// NAT; one public address and port for all, an endpoint-independent mapping (cone); the
// same IP with different ports, symmetric.
func (h *Host) natType() string {
	var quicObs []ma.Multiaddr
	for _, o := range h.observedAddrs() {
		if t, _ := listenKey(o); t == "quic" {
			quicObs = append(quicObs, o)
		}
	}
	if len(quicObs) == 0 {
		return NATUnknown
	}
	own := ownIPs()
	allOwn := true
	for _, o := range quicObs {
		if ip, err := manet.ToIP(o); err != nil || !own[ip.String()] {
			allOwn = false
		}
	}
	if allOwn {
		return NATNone
	}
	// Mappings seen by two or more members.
	distinct := map[string]bool{}
	for _, o := range quicObs {
		distinct[o.String()] = true
	}
	if h.observers() < 2 {
		return NATUnknown
	}
	if len(distinct) == 1 {
		return NATCone
	}
	return NATSymmetric
}

// observers counts admitted members that observed us on a direct connection.
func (h *Host) observers() int {
	h.nat.mu.Lock()
	defer h.nat.mu.Unlock()
	n := 0
	for p, m := range h.nat.observed {
		if len(m) > 0 && h.IsAdmitted(p) {
			n++
		}
	}
	return n
}

// ownIPs are the IP addresses of this host's interfaces.
func ownIPs() map[string]bool {
	out := map[string]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			out[ipn.IP.String()] = true
		}
	}
	return out
}

func isRelayed(a ma.Multiaddr) bool {
	if a == nil {
		return false
	}
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// advertisable reports whether a may be told to other hosts: never link-local, loopback
// only when allowLoopback (a node bound to loopback only has nothing else).
func advertisable(a ma.Multiaddr, allowLoopback bool) bool {
	if manet.IsIP6LinkLocal(a) {
		return false
	}
	if ip, err := manet.ToIP(a); err == nil {
		if ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			return false
		}
	}
	return allowLoopback || !manet.IsIPLoopback(a)
}

// advertised filters addresses for announcement: link-local never, loopback only when
// there is nothing else (a node bound to 127.0.0.1).
func advertised(in []ma.Multiaddr) []ma.Multiaddr {
	onlyLoopback := true
	for _, a := range in {
		if !isRelayed(a) && !manet.IsIPLoopback(a) && advertisable(a, false) {
			onlyLoopback = false
			break
		}
	}
	out := make([]ma.Multiaddr, 0, len(in))
	for _, a := range in {
		if advertisable(a, onlyLoopback) {
			out = append(out, a)
		}
	}
	return out
}

// usablePeerAddrs filters addresses learned about another member (its membership
// record): no link-local; loopback only when the member has nothing else (then it runs
// on this machine); private ranges only when this node has a private address itself
// (otherwise it cannot reach them); no circuit through this node itself.
func (h *Host) usablePeerAddrs(in []ma.Multiaddr) []ma.Multiaddr {
	in = advertised(in)
	ownPrivate := false
	for ip := range ownIPs() {
		if a, err := manet.FromIP(net.ParseIP(ip)); err == nil && manet.IsPrivateAddr(a) && !manet.IsIPLoopback(a) {
			ownPrivate = true
		}
	}
	self := h.ID().String()
	out := in[:0:0]
	for _, a := range in {
		if isRelayed(a) {
			if v, err := a.ValueForProtocol(ma.P_P2P); err == nil && v == self {
				continue
			}
		} else if manet.IsPrivateAddr(a) && !manet.IsIPLoopback(a) && !ownPrivate {
			continue
		}
		out = append(out, a)
	}
	return out
}

// relayResources are the relay service limits from the config.
func (c Config) relayResources() relay.Resources {
	rc := relay.DefaultResources()
	rc.MaxReservations = c.RelayMaxReservations
	rc.MaxCircuits = c.RelayMaxCircuits
	rc.BufferSize = c.RelayBufferSize
	// Members behind one NAT share its address: per-IP and per-ASN caps would refuse a site.
	rc.MaxReservationsPerIP = c.RelayMaxReservations
	rc.MaxReservationsPerASN = c.RelayMaxReservations
	rc.Limit = nil // members only: relayed member connections are not cut
	if c.RelayLimitData > 0 || c.RelayLimitDuration > 0 {
		rc.Limit = &relay.RelayLimit{Data: c.RelayLimitData, Duration: c.RelayLimitDuration}
		if rc.Limit.Data <= 0 {
			rc.Limit.Data = 1 << 62
		}
		if rc.Limit.Duration <= 0 {
			rc.Limit.Duration = 24 * 365 * time.Hour
		}
	}
	return rc
}

// memberCtx lets cluster streams use limited (relayed) connections: the relay serves
// members only, and a configured relay limit is the operator's choice.
func memberCtx(ctx context.Context) context.Context {
	return network.WithAllowLimitedConn(ctx, "constellation member")
}

// rttInterval is how often each admitted member's round-trip time is measured.
const rttInterval = 10 * time.Second

// rttLoop measures the round-trip time to every admitted member over the connection in
// use (libp2p ping, member-only), into the peerstore's moving average (RTT).
func (h *Host) rttLoop() {
	t := time.NewTicker(rttInterval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, p := range h.Admitted() {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				h.measureRTT(p)
			}()
		}
		wg.Wait()
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		case <-h.nat.rttNow:
		}
	}
}

func (h *Host) measureRTT(p peer.ID) {
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if r, ok := <-ping.Ping(ctx, h.mh, p); ok && r.Error != nil {
		h.log.Debug("rtt measurement failed", "peer", p, "err", r.Error)
	}
}

// RTT is the moving average of the round-trip time to p (0: not measured yet).
func (h *Host) RTT(p peer.ID) time.Duration { return h.h.Peerstore().LatencyEWMA(p) }

func atoiOr0(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
