// Package liveness is the cluster's failure detector: SWIM (Das, Gupta and
// Motivala, 2002) with the Lifeguard extensions (Dadgar et al., 2017), after
// hashicorp/memberlist but with LAN defaults that detect in 2 to 3 seconds.
// Profile gives memberlist-style presets: lan (the defaults), wan for members
// behind slow links (round trips up to 2.5 s are never suspected; detection
// in 13 to 18 s) and local for one host (detection in about 1.5 s).
//
// Every ProbeInterval a node pings one member (round robin over a shuffled
// list). Without an ack within ProbeTimeout it asks IndirectChecks other
// members to ping the target for it; they answer with the ack or, when the
// target stays silent, a nack. Without any ack by the end of the interval the
// target becomes suspect. The suspicion is gossiped, piggybacked on pings and
// acks and pushed to a few random members every GossipInterval; a suspect
// member refutes by raising its incarnation, otherwise it is declared dead
// when the suspicion times out. A graceful Leave makes a member left, not
// dead. Steady-state traffic per node is one 3-byte ping and one 3-byte ack
// per interval whatever the cluster size.
//
// Lifeguard keeps an overloaded node from accusing healthy ones:
//   - local health: failed probes whose helpers did not even nack, and
//     having to refute, raise a score that stretches this node's probe
//     interval, probe timeout and suspicion timeouts; successful probes
//     lower it;
//   - dynamic suspicion: a suspicion starts with a long timeout and only
//     shrinks to the short one as other members independently confirm it;
//   - buddy system: a suspect member is told so in the pings it receives.
//
// Member IDs are opaque strings (libp2p peer ID strings in constellation);
// the member set is controlled by the caller (admitted peers), and messages
// about unknown members are ignored.
//
// The Detector is a deterministic state machine: no clock, goroutines or
// I/O. The caller feeds it time and packets and sends what it returns:
//
//	d, err := liveness.New(selfID, uint64(start.UnixMilli()), liveness.DefaultConfig())
//	for _, p := range admittedPeers {
//		d.AddMember(p, now)
//	}
//	for {
//		// wait until d.NextDeadline() or until a packet arrives
//		var out []liveness.Packet
//		if packetArrived {
//			out, err = d.Handle(from, payload, now) // err: malformed packet, dropped
//		} else {
//			out = d.Tick(now)
//		}
//		for _, p := range out {
//			send(p.To, p.Data)
//		}
//		for _, e := range d.Events() {
//			log(e.ID, e.Prev, "->", e.State)
//		}
//	}
//
// Runner is that loop with the real clock over a Transport:
//
//	r, err := liveness.NewRunner(d, liveness.RunnerConfig{Transport: t, OnEvent: publish})
//	r.Start(ctx)
//	host.HandlePackets("liveness", r.HandlePacket) // inbound
//	r.AddMember(peerID)                             // on admission
//	...
//	r.Leave(ctx) // on SIGTERM: members see us left, not dead
//	r.Close()
package liveness
