// Package p2p is constellation's networking layer: a libp2p host (QUIC first, TCP
// fallback) that finds peers (join addresses, mDNS, a private Kademlia DHT), admits
// only members of its cluster, and replicates opaque state among them.
//
// # Admission
//
// libp2p private networks do not work over QUIC, so membership is enforced above the
// transport: right after a connection is made, a mutual challenge-response
// (/constellation/admit/1.0.0, see admit.go) proves knowledge of the cluster key and
// binds both peer IDs. Until a peer passes, every cluster protocol resets its streams
// (state sync, packets, messages, and - through the member-only host view given to
// them - gossipsub and the DHT), and the gossip topic validator rejects its messages.
// A peer that fails is logged on both sides ("peer X failed cluster admission: ..."),
// disconnected and refused for RejectBackoff (doubling on repeats). A keyless node runs
// the same exchange with an empty key, so it only ever admits keyless peers.
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
// Other cluster protocols (bitswap, mesh, locks) use the member-only host view returned
// by Libp2p: its SetStreamHandler resets streams from non-members, its NewStream waits
// for admission, and its event bus only reports members; name them with ProtocolID.
// Guard wraps a single handler the same way.
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
//   - libp2p's identify and ping answer any connected peer (they reveal the listen
//     addresses and protocol list, which include the cluster hash, not the name or key).
package p2p
