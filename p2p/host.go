package p2p

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"

	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/fx"
)

// GossipReplica is a Replica that applies gossiped deltas apart (to measure their delay):
// the host uses ApplyGossip for deltas that arrived by gossip and Apply for the rest.
type GossipReplica interface {
	Replica
	ApplyGossip(from peer.ID, data []byte) error
}

// Replica is the replicated state as the host sees it: opaque bytes. The node package
// implements it on the CRDT document. All methods may be called concurrently from
// several goroutines (gossip receive, anti-entropy with several peers).
type Replica interface {
	// Version returns the encoded version vector of the local state. Equal states must
	// give equal bytes (the host compares a digest before exchanging anything else).
	Version() []byte
	// MissingFor returns the encoded delta (or full state) a peer at peerVersion lacks;
	// nil or empty when there is nothing. peerVersion is untrusted input.
	MissingFor(peerVersion []byte) ([]byte, error)
	// Apply decodes (with limits: the bytes are untrusted) and joins a delta or full
	// state received from peer from.
	Apply(from peer.ID, data []byte) error
}

// memberTag is the connection-manager protection tag of admitted peers.
const memberTag = "constellation-member"

// Host is a libp2p host that admits only cluster members and replicates opaque state
// among them. Create it with New, then Start it; Close stops everything.
type Host struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	h    host.Host   // the real libp2p host: admission and our own protocols
	mh   *memberHost // the same host as seen by pubsub and the DHT: members only
	bw   *metrics.BandwidthCounter
	hash string // hex cluster hash used in protocol IDs and names
	key  []byte // admission MAC key (HKDF of cluster key and name)

	protoAdmit protocol.ID
	protoSync  protocol.ID
	protoMsg   protocol.ID
	msgSvc     *Service // set in Start
	topicName  string

	// lifecycle: ctx is cancelled by Close; wg counts every goroutine we start.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Mutex // guards closed and serialises wg.Add against Close's wg.Wait
	closed  bool
	started bool

	events    eventQueue
	stats     counters
	rejectLog *rejectLog

	// testDropAcks, when > 0, makes the message handler drop that many acks (tests).
	testDropAcks atomic.Int32

	mu sync.Mutex // guards the following fields
	// replica is the state to replicate (nil: nothing to replicate).
	replica Replica
	// admitted holds peers that passed admission on their current connections.
	admitted map[peer.ID]time.Time
	// exchanges counts admission exchanges in progress per peer (either role).
	exchanges map[peer.ID]int
	// initiating holds the exchange we initiated per peer, so callers can wait for it.
	initiating map[peer.ID]*attempt
	// admitWait channels are closed (and removed) whenever an exchange with the peer ends.
	admitWait map[peer.ID]chan struct{}
	// rejected is the blocklist of peers that failed admission.
	rejected map[peer.ID]*rejection
	// partitioned, when set (tests), gates connections to peers it returns true for.
	partitioned func(peer.ID) bool
	// noDirect, when set (tests), refuses direct (not relayed) connections to peers it
	// returns true for.
	noDirect func(peer.ID) bool
	// syncing/syncAgain coalesce anti-entropy requests per peer.
	syncing   map[peer.ID]bool
	syncAgain map[peer.ID]bool
	// packet handlers and cached outbound packet streams.
	pktHandlers map[string]func(peer.ID, []byte)
	pktOut      map[pktKey]*pktStream
	// services are the open Services by protocol (Close closes them).
	services map[protocol.ID]*Service
	// mdnsLast rate-limits dials to peers reported by mDNS.
	mdnsLast map[peer.ID]time.Time

	// The remaining fields are set in Start and read-only afterwards.
	dht   *dht.IpfsDHT
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	mdns  mdns.Service

	pub   publisher
	dedup *dedupe

	nat natState // NAT traversal: relay, reservations, hole punching, observed addresses
}

type attempt struct {
	done chan struct{}
	err  error
}

type rejection struct {
	until      time.Time
	strikes    int
	reason     string
	incomplete int // exchanges in a row that ended without a verdict
}

// clusterHash is the public, key-independent identifier of a cluster name.
func clusterHash(cluster string) string {
	sum := sha256.Sum256([]byte("constellation-cluster-v1\x00" + cluster))
	return hex.EncodeToString(sum[:8])
}

// New creates the libp2p host, listening on cfg.Listen (all connections are refused
// until Start). It does not contact anyone.
func New(cfg Config) (*Host, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		sk  crypto.PrivKey
		err error
	)
	if cfg.IdentityFile != "" {
		sk, err = LoadIdentity(cfg.IdentityFile)
	} else {
		sk, _, err = crypto.GenerateEd25519Key(crand.Reader)
	}
	if err != nil {
		return nil, err
	}
	hh := &Host{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "p2p"),
		now:         time.Now,
		bw:          metrics.NewBandwidthCounter(),
		hash:        clusterHash(cfg.Cluster),
		key:         admitKey(cfg.ClusterKey, cfg.Cluster),
		admitted:    map[peer.ID]time.Time{},
		exchanges:   map[peer.ID]int{},
		initiating:  map[peer.ID]*attempt{},
		admitWait:   map[peer.ID]chan struct{}{},
		rejected:    map[peer.ID]*rejection{},
		syncing:     map[peer.ID]bool{},
		syncAgain:   map[peer.ID]bool{},
		pktHandlers: map[string]func(peer.ID, []byte){},
		pktOut:      map[pktKey]*pktStream{},
		services:    map[protocol.ID]*Service{},
		rejectLog:   newRejectLog(cfg.RejectLogWindow, cfg.RejectLogBurst),
	}
	hh.protoAdmit = protoAdmit
	hh.protoSync = protocol.ID("/constellation/" + hh.hash + "/sync/1.0.0")
	hh.protoMsg = hh.ProtocolID(msgService)
	hh.topicName = "/constellation/" + hh.hash + "/state"
	hh.ctx, hh.cancel = context.WithCancel(context.Background())
	hh.events.init()
	hh.nat.init()
	hh.dedup = newDedupe(cfg.MessageDedupeWindow, cfg.MessageDedupeMax)

	if err := tcpPortsFree(cfg.Listen); err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p: connmgr: %w", err)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	var rmOpts []rcmgr.Option
	if cfg.Metrics != nil {
		rcmgr.MustRegisterWith(cfg.Metrics)
		str, err := rcmgr.NewStatsTraceReporter()
		if err != nil {
			return nil, fmt.Errorf("p2p: resource manager metrics: %w", err)
		}
		rmOpts = append(rmOpts, rcmgr.WithTraceReporter(str))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rmOpts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ListenAddrs(cfg.Listen...),
		libp2p.Transport(quic.NewTransport),
		// SO_REUSEPORT: TCP dials leave from the listen port, so a NAT's mapping of it is
		// what members observe and TCP hole punching can work. tcpPortsFree checked first
		// that no other process (another node) holds the port, which reuse would hide.
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DefaultSecurity,
		libp2p.DefaultMuxers,
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater((*gater)(hh)),
		libp2p.BandwidthReporter(hh.bw),
		// Services that would answer peers before admission are off: ping, and the circuit
		// relay as libp2p configures it (natOptions adds the relay transport with its STOP
		// handler guarded; Start the member-only relay service and hole punching).
		// Identify stays: it runs on every connection and reveals the listen addresses and
		// protocol list (see doc.go).
		libp2p.Ping(false),
		// go-libp2p's host metrics stay off: its eventbus and identify metrics break the
		// Prometheus naming rules (promtool check metrics fails on them). The resource
		// manager's scopes and limits go to cfg.Metrics (above).
		libp2p.DisableMetrics(),
		libp2p.UserAgent("constellation"),
		libp2p.WithFxOption(fx.NopLogger), // its start-up errors reach the caller as our error
	}
	opts = append(opts, hh.natOptions()...)
	// Advertised addresses first; never link-local, loopback only when there is nothing
	// else (identify and the relay hand these to other hosts).
	adv := slices.Clone(cfg.Advertise)
	opts = append(opts, libp2p.AddrsFactory(func(in []ma.Multiaddr) []ma.Multiaddr {
		out := slices.Clone(adv)
		for _, a := range in {
			if !slices.ContainsFunc(out, a.Equal) {
				out = append(out, a)
			}
		}
		return advertised(out)
	}))
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: listen on %v: %w", cfg.Listen, err)
	}
	if missing := unboundListens(cfg.Listen, h.Network().ListenAddresses()); len(missing) > 0 {
		h.Close()
		return nil, fmt.Errorf("%w: cannot listen on %v: the port is in use (another constellation node?); pick another with --bind HOST:PORT",
			ErrConfig, missing)
	}
	hh.h = h
	hh.mh = newMemberHost(hh)
	hh.pub.init(hh)
	return hh, nil
}

// Start registers the cluster protocols and starts discovery (join, mDNS, DHT),
// admission, gossip and anti-entropy. r may be nil (nothing is replicated). ctx is
// checked once (an ended ctx fails Start); the host runs until Close. On error, Close.
func (h *Host) Start(ctx context.Context, r Replica) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.closeMu.Lock()
	if h.closed {
		h.closeMu.Unlock()
		return ErrClosed
	}
	if h.started {
		h.closeMu.Unlock()
		return fmt.Errorf("p2p: already started")
	}
	h.started = true
	h.closeMu.Unlock()

	h.mu.Lock()
	h.replica = r
	h.mu.Unlock()

	h.goRun(h.events.run)
	if err := h.mh.start(); err != nil {
		return err
	}
	h.h.SetStreamHandler(h.protoAdmit, h.handleAdmit)
	h.h.SetStreamHandler(protoAdmitV1, h.handleAdmitV1)
	h.h.SetStreamHandler(h.protoSync, h.Guard(h.handleSync))
	var err error
	h.msgSvc, err = h.NewService(msgService, ServiceConfig{MaxFrame: h.cfg.MaxMessageBytes, ReadTimeout: msgAttemptTimeout, WriteTimeout: msgAttemptTimeout}, h.handleMessage)
	if err != nil {
		return err
	}
	h.h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			h.notePath(c)
			h.onConnected(c)
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			h.forgetConn(c)
			h.onDisconnected(c)
		},
	})
	if err := h.startNAT(); err != nil {
		return err
	}

	if err := h.startPubsub(); err != nil {
		return err
	}
	if !h.cfg.DisableDHT {
		if err := h.startDHT(); err != nil {
			return err
		}
	}
	h.goRun(h.pub.run)
	h.goRun(h.rejectLogLoop)
	h.goRun(h.antiEntropyLoop)
	for _, j := range h.cfg.Join {
		h.goRun(func() { h.joinLoop(j) })
	}
	if h.cfg.MDNS {
		if err := h.startMDNS(); err != nil {
			// mDNS is a convenience: log and continue (e.g. no multicast interface).
			h.log.Warn("mDNS discovery unavailable", "err", err)
		}
	}
	if h.cfg.ClusterKey != "" {
		if weak, reason := KeyStrength(h.cfg.ClusterKey); weak {
			h.log.Warn("weak cluster key: "+reason, "cluster", h.cfg.Cluster)
		}
	}
	h.log.Info("p2p host started", "id", h.ID(), "cluster", h.cfg.Cluster, "keyed", h.cfg.ClusterKey != "", "addrs", h.Addrs())
	return nil
}

// goRun starts f on a goroutine owned by the host, unless the host is closed.
func (h *Host) goRun(f func()) bool {
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// Close stops every goroutine and closes the libp2p host. It is safe to call twice.
func (h *Host) Close() error {
	h.closeMu.Lock()
	if h.closed {
		h.closeMu.Unlock()
		return nil
	}
	h.closed = true
	h.closeMu.Unlock()

	h.mu.Lock()
	svcs := make([]*Service, 0, len(h.services))
	for _, s := range h.services {
		svcs = append(svcs, s)
	}
	h.mu.Unlock()
	for _, s := range svcs {
		s.Close() // waits for in-flight handlers, which see their contexts end
	}
	h.cancel()
	if h.mdns != nil {
		h.mdns.Close()
	}
	if h.dht != nil {
		h.dht.Close()
	}
	h.closeNAT()
	err := h.h.Close()
	h.events.close()
	h.wg.Wait()
	h.mh.close()
	return err
}

func (h *Host) isClosed() bool {
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	return h.closed
}

// ID is this host's peer ID.
func (h *Host) ID() peer.ID { return h.h.ID() }

// Libp2p exposes the underlying libp2p host for protocols that must speak to it
// directly (e.g. bitswap); wrap their handlers with Guard.
func (h *Host) Libp2p() host.Host { return h.mh }

// Addrs returns this host's full multiaddrs (with /p2p/<id>) for other members: the
// advertised and listen addresses (unspecified ones expanded to the interface addresses;
// no link-local, loopback only when there is nothing else), the addresses members
// observed for it behind a NAT, then its relayed addresses.
func (h *Host) Addrs() []ma.Multiaddr {
	id, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		return nil
	}
	all := h.h.Addrs()
	for _, a := range slices.Concat(h.observedAddrs(), h.relayAddrs()) {
		if !slices.ContainsFunc(all, a.Equal) {
			all = append(all, a)
		}
	}
	var out []ma.Multiaddr
	for _, a := range all {
		out = append(out, a.AppendComponent(id))
	}
	// QUIC first, TCP as fallback, relayed last: peers dial the addresses in this order.
	// The sort is stable, so advertised addresses stay ahead of bound ones.
	slices.SortStableFunc(out, func(a, b ma.Multiaddr) int { return quicRank(a) - quicRank(b) })
	return out
}

func quicRank(a ma.Multiaddr) int {
	if isRelayed(a) {
		return 2
	}
	if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		return 0
	}
	return 1
}

// Admitted lists the peers that passed admission and are connected.
func (h *Host) Admitted() []peer.ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]peer.ID, 0, len(h.admitted))
	for p := range h.admitted {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// IsAdmitted reports whether p passed admission on its current connection.
func (h *Host) IsAdmitted(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.admitted[p]
	return ok
}

// PeerAddrs returns the known addresses of p.
func (h *Host) PeerAddrs(p peer.ID) []ma.Multiaddr { return h.h.Peerstore().Addrs(p) }

// AddAddrs records addresses for p (e.g. learned from its membership record) so that
// later dials (Connect, SendPacket, anti-entropy) can reach it. Addresses this node
// cannot use are dropped (see usablePeerAddrs): link-local, loopback of a member that has
// other addresses, private ranges when this node has none, circuits through itself.
func (h *Host) AddAddrs(p peer.ID, addrs []ma.Multiaddr) {
	if p == h.ID() || p == "" {
		return
	}
	h.h.Peerstore().AddAddrs(p, h.usablePeerAddrs(addrs), peerstore.RecentlyConnectedAddrTTL)
}

type counters struct {
	gossipSent, gossipReceived atomic.Uint64
	syncs, syncFailures        atomic.Uint64
}

// Stats are cumulative counters for telemetry.
type Stats struct {
	GossipSent     uint64 // gossip messages published (batches and pull notices)
	GossipReceived uint64 // gossip messages received from other members
	Syncs          uint64 // anti-entropy exchanges completed (either role)
	SyncFailures   uint64 // anti-entropy exchanges that failed
	BytesIn        int64  // all libp2p traffic received
	BytesOut       int64  // all libp2p traffic sent
	Admitted       int    // currently admitted peers
}

// Stats returns the host's counters.
func (h *Host) Stats() Stats {
	in, out := h.Bandwidth()
	return Stats{
		GossipSent:     h.stats.gossipSent.Load(),
		GossipReceived: h.stats.gossipReceived.Load(),
		Syncs:          h.stats.syncs.Load(),
		SyncFailures:   h.stats.syncFailures.Load(),
		BytesIn:        in,
		BytesOut:       out,
		Admitted:       len(h.Admitted()),
	}
}

// Bandwidth returns the total bytes received and sent by this host.
func (h *Host) Bandwidth() (in, out int64) {
	t := h.bw.GetBandwidthTotals()
	return t.TotalIn, t.TotalOut
}

// Connected reports whether there is a live connection to p.
func (h *Host) Connected(p peer.ID) bool {
	c := h.h.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// randomAdmitted picks a random admitted peer, or "" when there is none.
func (h *Host) randomAdmitted() peer.ID {
	ps := h.Admitted()
	if len(ps) == 0 {
		return ""
	}
	return ps[rand.IntN(len(ps))]
}

func (h *Host) getReplica() Replica {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replica
}

// unboundListens returns the requested listen addresses that got no listener: libp2p keeps
// going when only some of them bind, which would leave a node silently without QUIC (or TCP).
func unboundListens(want, got []ma.Multiaddr) []ma.Multiaddr {
	var missing []ma.Multiaddr
	for _, w := range want {
		wt, wp := listenKey(w)
		found := false
		for _, g := range got {
			gt, gp := listenKey(g)
			if gt == wt && (wp == "0" || gp == wp) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}

// listenKey is an address's transport ("quic" or "tcp") and port.
func listenKey(a ma.Multiaddr) (transport, port string) {
	if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		p, _ := a.ValueForProtocol(ma.P_UDP)
		return "quic", p
	}
	p, _ := a.ValueForProtocol(ma.P_TCP)
	return "tcp", p
}

// tcpPortsFree fails when a fixed TCP listen port is taken. The TCP transport binds with
// SO_REUSEPORT, which would let a second node share the port silently (the kernel splitting
// connections between them); a plain bind fails on a port held by anyone, reuse or not.
func tcpPortsFree(listen []ma.Multiaddr) error {
	for _, a := range listen {
		if t, port := listenKey(a); t != "tcp" || port == "0" {
			continue
		}
		na, err := manet.ToNetAddr(a)
		if err != nil {
			continue // not an IP address: libp2p reports it
		}
		l, err := net.Listen("tcp", na.String())
		if err != nil {
			return fmt.Errorf("%w: cannot listen on %v: the port is in use (another constellation node?); pick another with --bind HOST:PORT", ErrConfig, a)
		}
		l.Close()
	}
	return nil
}
