package sandbox

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Network modes (Spec.Network).
const (
	// NetworkBridge (the default): the instance has its own network namespace with
	// loopback and eth0, a veth pair whose other end is on the node's bridge
	// (Config.Bridge), an address from Config.BridgeSubnet, a default route through
	// the bridge and NAT for egress. Spec.Publish forwards host ports to it.
	NetworkBridge = "bridge"
	// NetworkNone: a network namespace with only loopback.
	NetworkNone = "none"
	// NetworkHost: the host's network namespace (the instance serves on the node's
	// ports and can bind any free one). Only when asked for explicitly.
	NetworkHost = "host"
	// NetworkIsolated is the former name of NetworkNone, still accepted.
	NetworkIsolated = "isolated"
)

// Defaults of the node bridge (Config.Bridge, Config.BridgeSubnet).
const (
	DefaultBridge       = "c7n0"
	DefaultBridgeSubnet = "10.213.0.0/16"
)

// maxPublish bounds Spec.Publish.
const maxPublish = 64

// Publish forwards a host port to a port of a bridge-mode instance, like `docker run
// -p HOSTPORT:PORT/PROTO`: connections to HostPort on any of the node's addresses
// (127.0.0.1 included) reach Port on the instance's eth0.
type Publish struct {
	HostPort uint16 `json:"host_port"`
	Port     uint16 `json:"port"`
	// Protocol is "tcp" (default) or "udp".
	Protocol string `json:"protocol,omitempty"`
}

// String renders p as HOSTPORT:PORT/PROTO.
func (p Publish) String() string { return fmt.Sprintf("%d:%d/%s", p.HostPort, p.Port, p.proto()) }

func (p Publish) proto() string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// ParsePublish parses "HOSTPORT:PORT[/tcp|/udp]" (the --publish syntax).
func ParsePublish(s string) (Publish, error) {
	bad := func(why string) (Publish, error) {
		return Publish{}, fmt.Errorf("publish %q: %s; want HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 5353:53/udp", s, why)
	}
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return bad("protocol must be tcp or udp")
	}
	hp, cp, ok := strings.Cut(spec, ":")
	if !ok {
		return bad("missing ':'")
	}
	port := func(v string) (uint16, bool) {
		n, err := strconv.ParseUint(v, 10, 16)
		return uint16(n), err == nil && n > 0
	}
	h, ok1 := port(hp)
	c, ok2 := port(cp)
	if !ok1 || !ok2 {
		return bad("ports must be numbers in 1..65535")
	}
	if !hasProto {
		proto = "tcp"
	}
	return Publish{HostPort: h, Port: c, Protocol: proto}, nil
}

// validateNetwork checks Spec.Network and Spec.Publish.
func (s *Spec) validateNetwork() error {
	switch s.Network {
	case "", NetworkBridge, NetworkNone, NetworkHost, NetworkIsolated:
	default:
		return fieldErr("network", ErrInvalidSpec, "%q is not a network mode: want %q (own address on the node bridge, NAT, --publish), %q (loopback only) or %q (the node's network, explicitly)", s.Network, NetworkBridge, NetworkNone, NetworkHost)
	}
	if len(s.Publish) == 0 {
		return nil
	}
	if s.Network != "" && s.Network != NetworkBridge {
		return fieldErr("publish", ErrInvalidSpec, "published ports need network %q (network %q: %s)", NetworkBridge, s.Network, map[bool]string{true: "the program binds the node's ports itself", false: "the instance has no network"}[s.Network == NetworkHost])
	}
	if len(s.Publish) > maxPublish {
		return fieldErr("publish", ErrInvalidSpec, "more than %d published ports", maxPublish)
	}
	seen := map[string]bool{}
	for _, p := range s.Publish {
		if p.HostPort == 0 || p.Port == 0 {
			return fieldErr("publish", ErrInvalidSpec, "%s: ports must be in 1..65535", p)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fieldErr("publish", ErrInvalidSpec, "%s: protocol must be tcp or udp", p)
		}
		k := p.hostKey()
		if seen[k] {
			return fieldErr("publish", ErrInvalidSpec, "host port %s is published twice", k)
		}
		seen[k] = true
	}
	return nil
}

// hostKey names the host side of p: "8080/tcp".
func (p Publish) hostKey() string { return fmt.Sprintf("%d/%s", p.HostPort, p.proto()) }

// effectiveNetwork is the mode an instance runs with. Create stores the mode
// explicitly; an empty one comes from a runtime older than bridge networking, whose
// default was the host network.
func effectiveNetwork(s *Spec) string {
	switch s.Network {
	case "":
		return NetworkHost
	case NetworkIsolated:
		return NetworkNone
	}
	return s.Network
}

// parseBridgeSubnet checks Config.BridgeSubnet: an IPv4 prefix of /8 to /29 with room
// for the gateway and instances.
func parseBridgeSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("sandbox: config: BridgeSubnet %q is not an IPv4 prefix such as %s", s, DefaultBridgeSubnet)
	}
	if p.Bits() < 8 || p.Bits() > 29 {
		return netip.Prefix{}, fmt.Errorf("sandbox: config: BridgeSubnet %q: prefix length must be 8..29", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("sandbox: config: BridgeSubnet %q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// bridgeGateway is the bridge's own address: the first host address of the subnet.
func bridgeGateway(p netip.Prefix) netip.Addr { return p.Addr().Next() }

// allocAddr returns the lowest address of p that is not the network address, the
// gateway, the broadcast address or in used.
func allocAddr(p netip.Prefix, used map[netip.Addr]bool) (netip.Addr, bool) {
	a := bridgeGateway(p).Next()
	for ; p.Contains(a); a = a.Next() {
		if !p.Contains(a.Next()) { // broadcast
			break
		}
		if !used[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}
