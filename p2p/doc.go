// Package p2p is constellation's networking layer: a libp2p host (QUIC first, TCP
// fallback) that finds peers (join addresses, mDNS, a private Kademlia DHT), admits
// only members of its cluster, and replicates opaque state among them.
//
// # Admission
//
// libp2p private networks do not work over QUIC, so membership is enforced above the
// transport: right after a connection is made, the side that dialled runs a challenge-
// response (/constellation/admit/2.0.0, see admit.go) proving knowledge of the cluster
// key, bound to both peer IDs (authenticated by the secure channel) and a fresh nonce
// from each side. Until a peer passes, every cluster protocol resets its streams (state
// sync, packets, every Service and Listener, and - through the member-only host view
// given to them - gossipsub and the DHT), and the gossip topic validator rejects its
// messages. A node without a key runs the same exchange with an empty key, so it only
// ever admits keyless peers.
//
// No oracle for non-members. The initiator proves first; the responder answers a hello
// with a status and a random nonce only, and sends its own MAC only after the
// initiator's proof verified. A host that connects to a member and runs admission
// therefore receives nothing that depends on the key: guessing the key costs it one
// online exchange per guess, and every failure blocklists its identity. The accepting
// side never initiates admission itself (it waits for the dialler's hello), so
// connecting to a member and waiting does not make the member prove anything either.
//
// What a malicious responder learns. A fake node that a member dials (a --join address
// without /p2p/ID that someone else answers, an mDNS announcement on the LAN, a peer a
// member's DHT returns) receives the initiator's proof: HMAC(K, transcript) over nonces
// it partly chose. It cannot answer with a valid MAC, so the member refuses and
// blocklists it, but it can take the proof away and test key guesses offline. That is
// the price of not using a PAKE. K is therefore not the key itself but
// argon2id(key, salt = protocol label and cluster name; t=3, 64 MiB, 4 lanes: RFC 9106's
// second recommendation; 0.11 s per derivation on this project's 2-core test machine,
// and 64 MiB per parallel guess, which keeps GPUs from multiplying the rate), then HKDF.
// One of the 10,000 commonest passwords still falls in about 10,000 x 0.1 s = 17
// minutes; a 40-bit passphrase takes ~3,500 core-years and 4 random common words (~50
// bits) millions, per cluster name; a key from `constellation keygen` (256 random bits,
// 64 hex digits) is out of reach. KeyStrength flags keys below ~80
// estimated bits (and any under 16 characters), and the host logs that warning at Start.
// The derived key is cached per process, so admission costs two round trips and four
// HMACs (~0.3 ms on loopback, the same as before the stretch); the derivation itself
// runs once, in New.
//
// Why not a PAKE. CPace or SPAKE2 would leave even a fake responder nothing to test
// offline. The Go implementations available (filippo.io/cpace, an experimental draft
// implementation; backkem/spake2-go, unaudited and not constant-time) are not ones to
// trust with the cluster's admission, and writing one here is out of scope. The
// exchange keeps the room to switch: a new protocol version would run the PAKE in
// place of the MACs.
//
// Failures. A peer that fails (wrong key, other cluster name, a bad MAC, malformed
// messages), stalls (opened admission or connected and did not finish within
// AdmitTimeout) or speaks only admission 1.0.0 (an older constellation: the log line
// says to upgrade it) is disconnected and refused for RejectBackoff, doubling on each
// repeat up to 16x; 3 exchanges in a row that end without a verdict (resets) count as a
// failure. "peer X failed cluster admission: REASON" is logged at most once per peer per
// RejectLogWindow and RejectLogBurst times per window in all, with a summary line
// counting the rest, so many identities cannot flood the log.
//
// Services that answer before admission: only identify (it reveals the listen addresses
// and the protocol list, which include the cluster hash, not the name or key) and
// admission itself. Circuit relay (the HOP service and the client's STOP handler), hole
// punching (DCUtR) and ping answer admitted members only; AutoNAT is off. A test lists
// every registered protocol and fails on anything else, and another checks that a
// non-member gets nothing from the relay, STOP, DCUtR and ping protocols.
//
// # Across NATs
//
// nat.go makes every member reach every member through NATs (docs/design.md has the
// measurements):
//
//   - Every member relays for members (circuit relay v2): HOP through the member-only host
//     and an ACL that needs both ends admitted; STOP guarded, so only a member relay can
//     hand this node a connection. Member circuits are not cut; Config.Relay* sets the
//     limits (RelayLimitData/RelayLimitDuration make the circuits "limited", which every
//     cluster stream accepts: memberCtx).
//   - A node that is not publicly reachable reserves slots on up to MaxRelays members it
//     dialled directly and adds relayed addresses to Addrs (OnAddrsChanged tells the owner
//     to republish them).
//   - Identify's observed addresses, from admitted members on direct connections, give
//     the NAT's mapping of the QUIC listen port (announced in Addrs), Reachability and the
//     NAT type (NAT()).
//   - DCUtR upgrades a relayed connection to a direct one (QUIC, and TCP: dials leave from
//     the listen port, SO_REUSEPORT, after tcpPortsFree checked nobody holds it); the
//     relayed one is closed once idle. Path(p) tells direct, relayed or hole-punched, and
//     the transport.
//   - A member-only ping measures RTT(p) every 10 s.
//   - Addresses: no link-local, loopback only when nothing else; AddAddrs drops what this
//     node cannot use (usablePeerAddrs). NATPortMap unless NoPortMap.
//
// # Protocols: Service and Listener
//
// Every cluster protocol is a Service (service.go): NewService(name, cfg, handler)
// registers ProtocolID(name) through the member-only host, and both sides exchange
// frames (uvarint length, then the bytes; at most cfg.MaxFrame, itself at most 16 MiB)
// of raw bytes or strictly decoded CBOR (WriteMsg/ReadMsg). Each frame read and write
// has a deadline; each stream joins the resource manager's service scope
// "constellation/NAME" and reserves each inbound frame's memory while it is held.
// Close removes the handler, cancels the in-flight handlers' contexts, resets their
// streams and waits for them. Call is one request and one response; Open gives a stream
// for streamed responses (CancelOnRemoteClose lets a follower stop when its caller goes
// away). Messages (msg/2.0.0) run on it; state sync keeps its own stream code because its
// frames may reach MaxSyncBytes (256 MiB), beyond what one stream may reserve.
//
// Libraries that want sockets (raft's StreamLayer, a mesh) get Listen(name): a
// net.Listener whose connections are member streams, with Dial(peerID, timeout) and
// DialStream; Conn is a net.Conn with deadlines and Addr{Peer, Protocol} addresses.
//
// # Replication
//
// The node implements Replica over its CRDT document. Local changes are handed to
// Publish, which batches them for GossipBatch and publishes them on the cluster's
// gossipsub topic; changes bigger than MaxGossipBytes are announced with a tiny "pull
// from me" notice and fetched over a stream. Every AntiEntropyInterval, and right
// after a peer is admitted (bootstrap), a push-pull exchange with a random admitted
// peer compares version digests and then swaps MissingFor deltas.
//
// # Usage
//
//	cfg := p2p.Config{Cluster: "prod", ClusterKey: key, MDNS: true,
//		IdentityFile: filepath.Join(dataDir, "identity.key"), Logger: log,
//		OnPeerAdmitted: node.peerUp, OnPeerGone: node.peerDown, OnMessage: node.message}
//	cfg.Listen, _ = p2p.ParseBind("0.0.0.0:7946")
//	j, err := p2p.ParseJoin("10.0.0.5:7946") // error names the address and the accepted forms
//	cfg.Join = append(cfg.Join, j)
//	h, err := p2p.New(cfg)           // listens; refuses connections until Start
//	err = h.Start(ctx, replica)      // discovery, admission, gossip, anti-entropy
//	defer h.Close()                  // stops every goroutine; safe twice
//
//	h.Publish(delta)                               // after joining delta locally
//	h.HandlePackets("liveness", onPacket)          // small framed packets, members only
//	err = h.SendPacket(ctx, peerID, "liveness", b)
//	id, err := h.Send(ctx, peerID, "deploy", data) // at-least-once, deduplicated by ID
//	h.AddAddrs(peerID, addrsFromMembership)        // addresses learned from state
//	err = h.Connect(ctx, peer.AddrInfo{ID: peerID})
//
//	svc, err := h.NewService("sched/2.0.0", p2p.ServiceConfig{MaxFrame: 4 << 20},
//		func(ctx context.Context, s *p2p.Stream) error {
//			var req Request
//			if err := s.ReadMsg(&req); err != nil { return err }
//			return s.WriteMsg(handle(ctx, s.Peer(), req))
//		})
//	err = svc.CallMsg(ctx, peerID, req, &resp)     // or svc.Open for streamed answers
//	defer svc.Close()                              // before h.Close (which also closes it)
//
//	l, err := h.Listen("raft/1.0.0")               // net.Listener, members only
//	conn, err := l.Dial(peerID.String(), time.Second)
//
// Libraries that register their own handlers (gossipsub, the DHT, bitswap) use the
// member-only host view returned by Libp2p: its SetStreamHandler resets streams from
// non-members, its NewStream waits for admission, and its event bus only reports
// members; name their protocols with ProtocolID. Guard wraps a single handler the same
// way.
//
//	if weak, why := p2p.KeyStrength(key); weak { log.Warn(why) } // also logged by Start
//	key := p2p.GenerateKey()                        // what `constellation keygen` prints
//
// # Notes
//
//   - Admission state is per connection: when the last connection to a peer closes it
//     is no longer admitted (OnPeerGone) and must pass again on the next connection.
//   - Join peers are re-dialled whenever disconnected, the DHT loop re-dials routing
//     table members, and what anti-entropy brings in is relayed on gossip when small:
//     together they heal partitions without the node doing anything.
//   - Stats().BytesIn/Out count libp2p stream payload (protocol negotiation included),
//     not QUIC/TCP/IP headers.
//   - libp2p's identify answers any connected peer (see Admission).
package p2p
