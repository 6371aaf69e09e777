package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPort is the port used for QUIC (udp) and TCP when an address names none.
const DefaultPort = 7946

// DefaultCluster is the cluster name used when Config.Cluster is empty.
const DefaultCluster = "default"

// Message is one application message delivered by Send or Broadcast.
type Message struct {
	ID   string    // random ID chosen by the sender; the same for every target of a Broadcast
	Type string    // application type, e.g. "deploy"
	From peer.ID   // the sending peer (authenticated by the secure channel and admission)
	Data []byte    // opaque payload
	At   time.Time // sender's clock when the message was created
}

// Config configures a Host. The zero value plus Listen is usable; New fills defaults
// (see Config.withDefaults) and rejects invalid values (Config.Validate).
type Config struct {
	// Cluster is the cluster name (default "default"). Protocol IDs, the DHT protocol
	// prefix, the mDNS service name and the gossip topic derive from a hash of it.
	Cluster string
	// ClusterKey is the shared secret proving membership. "" is an open cluster: a
	// keyless node admits and joins only keyless peers of the same cluster name.
	ClusterKey string
	// NodeName is informational (logs); the node package owns naming.
	NodeName string

	// Listen addresses, typically from ParseBind("0.0.0.0:7946"). Empty means
	// ParseBind("0.0.0.0:7946").
	Listen []ma.Multiaddr
	// Advertise addresses are announced before the listen addresses (from --advertise).
	Advertise []ma.Multiaddr
	// Join lists peers to connect to, typically from ParseJoin. Unreachable ones are
	// retried with backoff (JoinBackoffMin..JoinBackoffMax) for the life of the host; a
	// join peer is also re-dialled whenever the connection to it is lost.
	Join []JoinAddr
	// MDNS enables zero-config LAN discovery of peers of the same cluster name.
	MDNS bool
	// DisableDHT turns off the cluster's private Kademlia DHT (on by default), which
	// finds members beyond the join list.
	DisableDHT bool
	// IdentityFile holds the private key, created (mode 0600) if missing. "" = a fresh
	// random identity each run (tests).
	IdentityFile string
	// Logger receives the host's logs (default slog.Default()).
	Logger *slog.Logger

	// OnPeerAdmitted is called (from one event goroutine, in order) when a peer passes
	// admission. OnPeerGone when the last connection to an admitted peer closes.
	// OnAdmissionRejected when admission with a peer fails (either side's verdict).
	// OnMessage receives Send/Broadcast messages exactly once per (sender, ID) within
	// MessageDedupeWindow; it runs on the receiving stream's goroutine and the sender
	// gets its ack after it returns, so it should not block for long.
	OnPeerAdmitted      func(peer.ID)
	OnPeerGone          func(peer.ID)
	OnAdmissionRejected func(p peer.ID, reason string)
	OnMessage           func(Message)
	// Metrics, when set, receives the resource manager's metrics (connections, streams,
	// memory and file descriptors per scope, blocked resources, limits:
	// libp2p_rcmgr_*); nil turns them off.
	Metrics prometheus.Registerer
	// OnAddrsChanged is called (from the event goroutine) when Addrs may have changed: a
	// relay reservation was made or lost, or members observed a new address for this node.
	OnAddrsChanged func()

	// GossipBatch is how long Publish collects deltas before one gossip message is sent
	// (default 5ms). Lower means lower latency and more messages.
	GossipBatch time.Duration
	// MaxGossipBytes bounds a gossip message body (default 64 KiB). A delta bigger than
	// this is not gossiped: a small "pull from me" notice is, and receivers run an
	// anti-entropy exchange with the publisher over a stream.
	MaxGossipBytes int
	// AntiEntropyInterval is the period of push-pull exchanges with a random admitted
	// peer (default 5s). Each exchange first compares a 32-byte digest of the version,
	// so an idle cluster costs a few hundred bytes per interval per node.
	AntiEntropyInterval time.Duration
	// MaxSyncBytes bounds one anti-entropy frame (version or delta/full state; default 256 MiB).
	MaxSyncBytes int
	// SyncTimeout bounds one anti-entropy exchange (default 60s).
	SyncTimeout time.Duration
	// AdmitTimeout bounds the admission exchange; a connection whose peer is not
	// admitted within it is closed, and a peer that stalled (opened admission, or
	// connected, and did not finish) is blocklisted (default 10s).
	AdmitTimeout time.Duration
	// RejectBackoff is how long a peer that failed admission is refused (no dials, its
	// connections gated); doubled on each repeated failure up to 16x (default 30s).
	RejectBackoff time.Duration
	// RejectLogWindow and RejectLogBurst rate-limit the "peer X failed cluster admission"
	// log lines: at most one per peer per window and RejectLogBurst per window in all; a
	// summary line counts the rest once per window (defaults 1m and 10).
	RejectLogWindow time.Duration
	RejectLogBurst  int
	// JoinBackoffMin/Max bound the retry backoff for join peers (default 500ms, 30s).
	JoinBackoffMin time.Duration
	JoinBackoffMax time.Duration
	// DiscoveryInterval is the period of DHT rendezvous lookups (default 30s; the first
	// runs shortly after start).
	DiscoveryInterval time.Duration
	// MaxPacketBytes bounds one packet (default 64 KiB).
	MaxPacketBytes int
	// MaxMessageBytes bounds one Send/Broadcast message (default 1 MiB).
	MaxMessageBytes int
	// MessageDedupeWindow is how long received message IDs are remembered (default 10m);
	// at most MessageDedupeMax IDs are kept (default 100000).
	MessageDedupeWindow time.Duration
	MessageDedupeMax    int
	// ConnLow/ConnHigh are the connection manager watermarks (default 64/256). Admitted
	// members are protected and never trimmed.
	ConnLow, ConnHigh int

	// NAT traversal (see doc.go, "Across NATs").
	//
	// NoPortMap turns off UPnP/NAT-PMP port mapping on the router (on by default).
	NoPortMap bool
	// DisableRelayService stops this node from relaying connections between members
	// (on by default; it relays for admitted members only).
	DisableRelayService bool
	// DisableHolePunching turns off DCUtR hole punching of relayed connections.
	DisableHolePunching bool
	// MaxRelays is how many members this node reserves a relay slot with while it is not
	// publicly reachable (default 2; -1: none). Its relayed addresses are announced.
	MaxRelays int
	// Relay service limits: reservations held for members (default 128), relayed
	// connections per member (default 64), buffer per relayed stream direction (default
	// 64 KiB). RelayLimitData (bytes per direction) and RelayLimitDuration cut a relayed
	// connection; 0 (the default) means no cut: only members use the relay.
	RelayMaxReservations int
	RelayMaxCircuits     int
	RelayBufferSize      int
	RelayLimitData       int64
	RelayLimitDuration   time.Duration
}

// JoinAddr is one --join target: the addresses to dial and, when the address named
// it with /p2p/, the expected peer ID (empty: learned from the connection).
type JoinAddr struct {
	Raw   string // as given by the user, for log lines
	ID    peer.ID
	Addrs []ma.Multiaddr
}

func (j JoinAddr) String() string {
	if j.Raw != "" {
		return j.Raw
	}
	if j.ID != "" {
		return j.ID.String()
	}
	return fmt.Sprint(j.Addrs)
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if len(c.Listen) == 0 {
		c.Listen, _ = ParseBind("0.0.0.0")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.GossipBatch, 5*time.Millisecond)
	defi(&c.MaxGossipBytes, 64<<10)
	def(&c.AntiEntropyInterval, 5*time.Second)
	defi(&c.MaxSyncBytes, 256<<20)
	def(&c.SyncTimeout, 60*time.Second)
	def(&c.AdmitTimeout, 10*time.Second)
	def(&c.RejectBackoff, 30*time.Second)
	def(&c.RejectLogWindow, time.Minute)
	defi(&c.RejectLogBurst, 10)
	def(&c.JoinBackoffMin, 500*time.Millisecond)
	def(&c.JoinBackoffMax, 30*time.Second)
	def(&c.DiscoveryInterval, 30*time.Second)
	defi(&c.MaxPacketBytes, 64<<10)
	defi(&c.MaxMessageBytes, 1<<20)
	def(&c.MessageDedupeWindow, 10*time.Minute)
	defi(&c.MessageDedupeMax, 100000)
	defi(&c.ConnLow, 64)
	defi(&c.ConnHigh, 256)
	defi(&c.MaxRelays, 2)
	defi(&c.RelayMaxReservations, 128)
	defi(&c.RelayMaxCircuits, 64)
	defi(&c.RelayBufferSize, 64<<10)
	return c
}

// Validate reports the first invalid value of a defaulted config.
func (c Config) Validate() error {
	switch {
	case c.GossipBatch < 0:
		return fmt.Errorf("%w: GossipBatch %v < 0", ErrConfig, c.GossipBatch)
	case c.MaxGossipBytes < 1024:
		return fmt.Errorf("%w: MaxGossipBytes %d < 1024", ErrConfig, c.MaxGossipBytes)
	case c.MaxGossipBytes > 1<<20:
		return fmt.Errorf("%w: MaxGossipBytes %d > 1 MiB (large state moves over streams)", ErrConfig, c.MaxGossipBytes)
	case c.AntiEntropyInterval < 0:
		return fmt.Errorf("%w: AntiEntropyInterval %v < 0", ErrConfig, c.AntiEntropyInterval)
	case c.MaxSyncBytes < c.MaxGossipBytes:
		return fmt.Errorf("%w: MaxSyncBytes %d < MaxGossipBytes %d", ErrConfig, c.MaxSyncBytes, c.MaxGossipBytes)
	case c.RejectLogWindow < 0 || c.RejectLogBurst < 0:
		return fmt.Errorf("%w: RejectLogWindow %v and RejectLogBurst %d must be >= 0", ErrConfig, c.RejectLogWindow, c.RejectLogBurst)
	case c.AdmitTimeout <= 0, c.SyncTimeout <= 0, c.RejectBackoff <= 0:
		return fmt.Errorf("%w: timeouts must be > 0", ErrConfig)
	case c.JoinBackoffMin <= 0 || c.JoinBackoffMax < c.JoinBackoffMin:
		return fmt.Errorf("%w: join backoff %v..%v", ErrConfig, c.JoinBackoffMin, c.JoinBackoffMax)
	case c.MaxPacketBytes <= 0 || c.MaxMessageBytes <= 0:
		return fmt.Errorf("%w: packet and message limits must be > 0", ErrConfig)
	case c.MaxMessageBytes > MaxServiceFrame:
		return fmt.Errorf("%w: MaxMessageBytes %d > %d (the memory one stream may reserve)", ErrConfig, c.MaxMessageBytes, MaxServiceFrame)
	case c.ConnLow <= 0 || c.ConnHigh < c.ConnLow:
		return fmt.Errorf("%w: connection watermarks %d/%d", ErrConfig, c.ConnLow, c.ConnHigh)
	case c.MaxRelays < -1:
		return fmt.Errorf("%w: MaxRelays %d: want -1 (no reservations) or more", ErrConfig, c.MaxRelays)
	case c.RelayMaxReservations < 0 || c.RelayMaxCircuits < 0 || c.RelayBufferSize < 0:
		return fmt.Errorf("%w: relay limits must be > 0 (reservations %d, circuits %d, buffer %d)", ErrConfig, c.RelayMaxReservations, c.RelayMaxCircuits, c.RelayBufferSize)
	case c.RelayBufferSize > 1<<20:
		return fmt.Errorf("%w: RelayBufferSize %d > 1 MiB", ErrConfig, c.RelayBufferSize)
	case c.RelayLimitData < 0 || c.RelayLimitDuration < 0:
		return fmt.Errorf("%w: RelayLimitData %d and RelayLimitDuration %v must be >= 0 (0: no limit)", ErrConfig, c.RelayLimitData, c.RelayLimitDuration)
	case len(c.Listen) == 0:
		return fmt.Errorf("%w: no listen address", ErrConfig)
	}
	for _, j := range c.Join {
		if len(j.Addrs) == 0 {
			return fmt.Errorf("%w: join %s has no address", ErrConfig, j)
		}
	}
	return nil
}

const acceptedBind = `accepted forms: HOST, HOST:PORT, :PORT, [IPv6]:PORT (default port 7946), or a multiaddr like /ip4/0.0.0.0/udp/7946/quic-v1`

const acceptedJoin = `accepted forms: HOST:PORT, HOST (port 7946), [IPv6]:PORT, /ip4/1.2.3.4/udp/7946/quic-v1/p2p/12D3Koo..., /ip4/1.2.3.4/tcp/7946, /dns4/host.example/udp/7946/quic-v1`

// ParseBind turns "HOST", "HOST:PORT", ":PORT" or "[IPv6]:PORT" into a QUIC listen
// multiaddr followed by a TCP one on the same port (QUIC first, TCP fallback). A string
// starting with "/" is parsed as one multiaddr and returned alone. An empty host means
// 0.0.0.0; a DNS name is not a valid bind address.
func ParseBind(s string) ([]ma.Multiaddr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty bind address; %s", ErrBadAddress, acceptedBind)
	}
	if strings.HasPrefix(s, "/") {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: bind %q: %v; %s", ErrBadAddress, s, err, acceptedBind)
		}
		return []ma.Multiaddr{m}, nil
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bind %q: %v; %s", ErrBadAddress, s, err, acceptedBind)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%w: bind %q: %q is not an IP address; %s", ErrBadAddress, s, host, acceptedBind)
	}
	return ipMultiaddrs("", ip, port)
}

// ParseJoin parses one --join value. HOST[:PORT] (IP or DNS name) yields a QUIC and a
// TCP address with an unknown peer ID, which is learned when the connection is made. A
// multiaddr may carry /p2p/<id>; without it the peer ID is learned the same way.
func ParseJoin(s string) (JoinAddr, error) {
	raw := s
	s = strings.TrimSpace(s)
	if s == "" {
		return JoinAddr{}, fmt.Errorf("%w: empty join address; %s", ErrBadAddress, acceptedJoin)
	}
	if strings.HasPrefix(s, "/") {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return JoinAddr{}, fmt.Errorf("%w: join %q: %v; %s", ErrBadAddress, raw, err, acceptedJoin)
		}
		tr, id := peer.SplitAddr(m)
		if tr == nil || len(tr) == 0 {
			return JoinAddr{}, fmt.Errorf("%w: join %q: no transport address before /p2p; %s", ErrBadAddress, raw, acceptedJoin)
		}
		if !dialable(tr) {
			return JoinAddr{}, fmt.Errorf("%w: join %q: not a udp/quic-v1 or tcp address; %s", ErrBadAddress, raw, acceptedJoin)
		}
		return JoinAddr{Raw: raw, ID: id, Addrs: []ma.Multiaddr{tr}}, nil
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return JoinAddr{}, fmt.Errorf("%w: join %q: %v; %s", ErrBadAddress, raw, err, acceptedJoin)
	}
	if host == "" {
		return JoinAddr{}, fmt.Errorf("%w: join %q: missing host; %s", ErrBadAddress, raw, acceptedJoin)
	}
	var addrs []ma.Multiaddr
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return JoinAddr{}, fmt.Errorf("%w: join %q: cannot join the unspecified address; %s", ErrBadAddress, raw, acceptedJoin)
		}
		addrs, err = ipMultiaddrs("", ip, port)
	} else {
		if !validDNSName(host) {
			return JoinAddr{}, fmt.Errorf("%w: join %q: %q is neither an IP address nor a DNS name; %s", ErrBadAddress, raw, host, acceptedJoin)
		}
		addrs, err = ipMultiaddrs(host, nil, port)
	}
	if err != nil {
		return JoinAddr{}, fmt.Errorf("%w: join %q: %v; %s", ErrBadAddress, raw, err, acceptedJoin)
	}
	return JoinAddr{Raw: raw, Addrs: addrs}, nil
}

// splitHostPort accepts HOST, HOST:PORT, :PORT, [V6]:PORT, [V6] and a bare IPv6 address.
func splitHostPort(s string) (string, int, error) {
	if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		// Bare IPv6 address without port.
		if net.ParseIP(s) == nil {
			return "", 0, errors.New("invalid IPv6 address (use [addr]:port)")
		}
		return s, DefaultPort, nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return s[1 : len(s)-1], DefaultPort, nil
	}
	if !strings.Contains(s, ":") {
		return s, DefaultPort, nil
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port %q", ps)
	}
	return host, port, nil
}

func ipMultiaddrs(dns string, ip net.IP, port int) ([]ma.Multiaddr, error) {
	var base string
	switch {
	case dns != "":
		base = "/dns/" + dns
	case ip.To4() != nil:
		base = "/ip4/" + ip.To4().String()
	default:
		base = "/ip6/" + ip.String()
	}
	q, err := ma.NewMultiaddr(fmt.Sprintf("%s/udp/%d/quic-v1", base, port))
	if err != nil {
		return nil, err
	}
	t, err := ma.NewMultiaddr(fmt.Sprintf("%s/tcp/%d", base, port))
	if err != nil {
		return nil, err
	}
	return []ma.Multiaddr{q, t}, nil
}

func validDNSName(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// dialable reports whether m is a QUIC-v1 or TCP address we can dial.
func dialable(m ma.Multiaddr) bool {
	hasTCP, hasQUIC := false, false
	for _, c := range m {
		switch c.Protocol().Code {
		case ma.P_TCP:
			hasTCP = true
		case ma.P_QUIC_V1:
			hasQUIC = true
		case ma.P_QUIC, ma.P_WEBTRANSPORT, ma.P_WS, ma.P_WSS, ma.P_WEBRTC_DIRECT, ma.P_CIRCUIT:
			return false
		}
	}
	return hasTCP || hasQUIC
}
