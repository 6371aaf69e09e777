package liveness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Config tunes a Detector. Start from DefaultConfig and change single fields;
// Validate reports the first invalid one.
//
// The defaults target a LAN with 5 to 20 nodes: a killed node is typically
// marked dead everywhere within about 2.3 to 2.9 seconds, never later than about
// 10 seconds even when no peer confirms the suspicion, while a node that only
// answers late (a saturated CPU) is protected by the Lifeguard extensions: its
// own probes slow down (local health) and a lone suspicion waits for the long
// timeout, giving the suspected node time to refute.
type Config struct {
	// ProbeInterval is the time between two probes started by this node, one
	// random member each (round robin over a shuffled list). Default 500 ms.
	// Shorter detects faster and costs proportionally more packets: steady
	// state is one ping and one ack sent per interval per node (about 3 bytes
	// of payload each), independent of the cluster size. memberlist's LAN
	// default is 1 s.
	ProbeInterval time.Duration

	// ProbeTimeout is how long to wait for the direct ack before asking
	// IndirectChecks other members to probe the target. It must leave room for
	// the indirect round trip inside ProbeInterval. Default 200 ms: far above a
	// LAN round trip, so only a lost packet or a busy process exceeds it. Both
	// ProbeInterval and ProbeTimeout are multiplied by (LocalHealth()+1).
	ProbeTimeout time.Duration

	// IndirectChecks is the number of members asked to probe a target that did
	// not answer directly (SWIM's ping-req). They also answer with a nack when
	// the target stays silent, which feeds local health (Lifeguard). Default 3:
	// more makes a lossy path less likely to cause a suspicion at the price of
	// more packets per failed probe.
	IndirectChecks int

	// SuspicionMult scales the minimum suspicion timeout:
	//   min = SuspicionMult * max(1, log10(n)) * ProbeInterval * (LocalHealth()+1)
	// with n the number of live members including this node. Default 3, so
	// a healthy node uses min = 1.5 s up to 10 nodes and 1.95 s with 20. The
	// suspicion shrinks to this minimum once SuspicionMult-2 other members
	// independently confirmed it (Lifeguard's dynamic suspicion); with fewer
	// possible confirmers the minimum is used directly. Higher values mean
	// fewer false positives and slower detection (memberlist uses 4 with a
	// 1 s interval: 4 s). Scaling by local health goes beyond Lifeguard: when
	// the whole machine is saturated every node's health rises, so suspicions
	// wait longer instead of turning slow answers into deaths.
	SuspicionMult int

	// SuspicionMaxTimeoutMult gives the suspicion timeout used when nobody
	// confirms: max = SuspicionMaxTimeoutMult * min. Default 4, so 6 s up to
	// 10 nodes and 7.8 s with 20, which keeps even an unconfirmed detection by
	// healthy nodes under 10 s. It is the time a falsely suspected node has to
	// refute when only one (possibly overloaded) member accuses it. memberlist
	// uses 6.
	SuspicionMaxTimeoutMult int

	// SuspicionMaxTimeout caps every suspicion timeout, however far local
	// health stretched it. Default 8 s: above the unstretched maximum (7.8 s
	// with 20 nodes), so it only bites on an overloaded or partly cut-off
	// observer, and it keeps the promise that a failed node is dead everywhere
	// within about 10 s (a partition raises local health, because helpers on
	// the far side never nack, and without the cap a suspicion could last
	// close to a minute).
	SuspicionMaxTimeout time.Duration

	// AwarenessMaxMultiplier bounds local health: the score runs from 0 to
	// AwarenessMaxMultiplier-1 and probe interval and timeout are multiplied
	// by score+1. Failed probes with missing nacks and having to refute raise
	// the score, successful probes lower it. Default 8 (probing backs off to
	// 4 s on a node that cannot keep up).
	AwarenessMaxMultiplier int

	// GossipInterval is how often queued membership changes are pushed to
	// GossipNodes random members in addition to riding on probes. Nothing is
	// sent when the queue is empty. Default 200 ms.
	GossipInterval time.Duration

	// GossipNodes is the number of members each gossip round sends to.
	// Default 3.
	GossipNodes int

	// RetransmitMult sets how many times a change is sent before it is dropped
	// from the queue: RetransmitMult * ceil(log10(n+1)). Default 4 (8 sends in
	// a cluster of 10 to 99 nodes).
	RetransmitMult int

	// ReconnectInterval is how often a random dead (not left) member is pinged
	// together with the claim that it is dead, so that a node which was only
	// unreachable (a partition, a long pause) refutes and becomes alive again
	// after the network heals. Default 2 s; 0 disables it. Costs one tiny
	// packet per interval only while dead members exist.
	ReconnectInterval time.Duration

	// ShuffledProbes selects SWIM's original schedule: each node walks its
	// own shuffled list of members. The default (false) is a time-slotted
	// rotation: slots of ProbeInterval aligned on the clock, and in each slot
	// the sorted live members probe each other shifted by a slot-dependent
	// offset, so every member is probed once per slot (if clocks agree within
	// a fraction of ProbeInterval, as NTP gives on a LAN). That bounds the
	// time until a crashed member is first probed by one interval instead of
	// a long random tail (p99 ~2 s with 5 to 20 nodes), and each failed probe
	// is confirmed by a different member in the next slot. With skewed
	// clocks the rotation still probes everybody, only less evenly.
	ShuffledProbes bool

	// MaxPacketSize bounds every encoded packet, piggybacked changes included.
	// Default 1400 bytes; at most MaxWirePacket.
	MaxPacketSize int

	// Rand is the source of every random choice (probe order, indirect
	// helpers, gossip targets, start stagger). Nil means a generator seeded
	// from the node ID and incarnation, which is deterministic per node.
	// Tests inject one to replay runs.
	Rand *rand.Rand
}

// DefaultConfig returns the documented LAN defaults (the lan Profile; wan and
// local suit slow links and a single host).
func DefaultConfig() Config {
	return Config{
		ProbeInterval:           500 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 4,
		SuspicionMaxTimeout:     8 * time.Second,
		AwarenessMaxMultiplier:  8,
		GossipInterval:          200 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		ReconnectInterval:       2 * time.Second,
		MaxPacketSize:           1400,
	}
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("liveness: invalid config")

// Validate checks every field and returns an error wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case c.ProbeInterval <= 0:
		return bad("ProbeInterval %v must be positive", c.ProbeInterval)
	case c.ProbeTimeout <= 0 || c.ProbeTimeout >= c.ProbeInterval:
		return bad("ProbeTimeout %v must be positive and below ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	case c.IndirectChecks < 0 || c.IndirectChecks > 16:
		return bad("IndirectChecks %d must be within 0..16", c.IndirectChecks)
	case c.SuspicionMult < 1:
		return bad("SuspicionMult %d must be at least 1", c.SuspicionMult)
	case c.SuspicionMaxTimeoutMult < 1:
		return bad("SuspicionMaxTimeoutMult %d must be at least 1", c.SuspicionMaxTimeoutMult)
	case c.SuspicionMaxTimeout <= 0:
		return bad("SuspicionMaxTimeout %v must be positive", c.SuspicionMaxTimeout)
	case c.AwarenessMaxMultiplier < 1:
		return bad("AwarenessMaxMultiplier %d must be at least 1", c.AwarenessMaxMultiplier)
	case c.GossipInterval <= 0:
		return bad("GossipInterval %v must be positive", c.GossipInterval)
	case c.GossipNodes < 1:
		return bad("GossipNodes %d must be at least 1", c.GossipNodes)
	case c.RetransmitMult < 1:
		return bad("RetransmitMult %d must be at least 1", c.RetransmitMult)
	case c.ReconnectInterval < 0:
		return bad("ReconnectInterval %v must not be negative", c.ReconnectInterval)
	case c.MaxPacketSize < minPacketSize || c.MaxPacketSize > MaxWirePacket:
		return bad("MaxPacketSize %d must be within %d..%d", c.MaxPacketSize, minPacketSize, MaxWirePacket)
	}
	return nil
}
