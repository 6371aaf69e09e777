package liveness

import (
	"fmt"
	"time"
)

// Profile names, for Profile.
const (
	ProfileLAN   = "lan"
	ProfileWAN   = "wan"
	ProfileLocal = "local"
)

// Profiles lists the names Profile accepts, the default first.
func Profiles() []string { return []string{ProfileLAN, ProfileWAN, ProfileLocal} }

// Profile returns a complete, valid Config for a kind of network, after
// memberlist's DefaultLANConfig, DefaultWANConfig and DefaultLocalConfig.
// Detection times below are from the simulated network (BenchmarkDetection:
// every other node marks a killed one dead; 5 to 20 members) and traffic is
// payload per idle node (BenchmarkIdleTraffic), whatever the cluster size.
//
// lan (the default, DefaultConfig) is one data centre or office network with
// round trips far below 100 ms. Detection 2.2 to 3 s, at most about 10 s
// when nobody confirms the suspicion. One ping and one ack per 500 ms:
// 4 packets/s, 12 B/s sent per node. A round trip above the 500 ms probe
// interval is a suspicion, so nodes behind slow links flap.
//
// wan is for members behind slow or congested links: edge sites on cellular,
// satellite or long-haul paths with round trips up to about 2 s. It applies
// memberlist's WAN/LAN ratios to the LAN values: probe interval x5 (2.5 s),
// probe timeout x6 (1.2 s), suspicion multiplier up from 3 to 4, gossip every
// 500 ms (x2.5) to 4 members, dead members re-pinged every 10 s. A probe
// fails only when no ack arrived within the whole interval, so a round trip
// below 2.5 s never raises a suspicion (one above the 1.2 s timeout costs
// the indirect round as well), and a falsely suspected member has at least
// 10 s (4 x 2.5 s), 40 s when nobody confirms, to refute. The price is
// slower detection: 13 to 18 s, about a minute when nobody confirms
// (memberlist's WAN defaults take 30 s or more). Traffic is a fifth of lan's:
// 0.8 packets/s, 2.4 B/s sent per node.
//
// local is for members on one host (loopback, containers on one machine,
// tests), where round trips are microseconds and a silent member is a dead
// or stalled process: probes every 250 ms with a 100 ms timeout, one
// indirect helper (as memberlist's Local: a helper on the same host proves
// little), gossip every 100 ms, suspicions capped at 4 s. Detection 1.1 to
// 1.5 s, at most about 4 s unconfirmed; 8 packets/s, 24 B/s sent per node.
// Lifeguard's local health still stretches the timeouts of a starved process.
//
// Tune single fields of the result for anything else.
func Profile(name string) (Config, error) {
	c := DefaultConfig()
	switch name {
	case ProfileLAN:
	case ProfileWAN:
		c.ProbeInterval = 5 * c.ProbeInterval // 2.5 s
		c.ProbeTimeout = 6 * c.ProbeTimeout   // 1.2 s
		c.SuspicionMult = 4
		c.SuspicionMaxTimeout = time.Minute
		c.GossipInterval = 500 * time.Millisecond
		c.GossipNodes = 4
		c.ReconnectInterval = 10 * time.Second
	case ProfileLocal:
		c.ProbeInterval = 250 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.IndirectChecks = 1
		c.SuspicionMaxTimeout = 4 * time.Second
		c.GossipInterval = 100 * time.Millisecond
		c.ReconnectInterval = time.Second
	default:
		return Config{}, fmt.Errorf("%w: unknown profile %q: want %s (LAN, default), %s (slow links) or %s (one host)",
			ErrInvalidConfig, name, ProfileLAN, ProfileWAN, ProfileLocal)
	}
	return c, nil
}
