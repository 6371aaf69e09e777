// Package dfs is the namespace of constellation's distributed file system and everything
// users see of it: paths, trees and their settings, writes acknowledged by holders,
// versions, watch, snapshots, the replication runner and the /v1/fs API. The content
// (UnixFS DAGs in a block store, bitswap and the bulk transfer between members) is the
// content layer's (dfs/content); this package reaches it through the Content interface.
//
// The namespace is the collection fs_entries of the replicated document. Each node writes
// only its own entry of a path (key path + NUL + its peer ID): the version it wrote, the
// HLC time of the write, the other writers' entries it saw (Seen) and the path's kept
// history. What a path shows is computed by Resolve from every writer's entry, the same
// on every node: an entry seen by a later write is superseded; of the concurrent heads the
// latest HLC wins, and with the keep_both policy the others stay visible as
// NAME.conflict-<node>-<time>. Deletions are entries too (tombstones with history).
//
// A write (Put) goes: content.Add locally; holders chosen by Place (weighted rendezvous
// hashing over the alive members' free room, spread over zones); each holder asked to pin
// over the pin protocol (it fetches from the writer and fsyncs) and records its pin in
// fs_pins; once AckCount holders confirmed, the entry is written. A failed write writes no
// entry. The runner (Repair) restores R good copies when a holder stays dead longer than
// the grace or leaves, each node pinning only for itself when the rendezvous hash names
// it, and drops its own pins nothing references after GCDelay.
//
// Strong trees (fs init --consistency strong, strong.go) commit every version through the
// lock service, reached through the Consensus interface (Config.Consensus; package locks
// implements it): Put reads the committed record of path+"#fs" linearizably, pins the
// content with the writer's fencing token in the pin requests (holders refuse a token
// older than the newest they saw for the path: StaleTokenError, 409 stale_token), commits
// the StrongRecord by compare-and-set expecting the revision read, and only then publishes
// the namespace entry (with the commit's revision: Resolve's committed policy makes the
// latest revision win). Open and Stat of a strong path read the committed record. Without
// Consensus, or on the minority side of a partition, strong trees answer 503 unavailable
// with the reason; eventual trees are not affected.
//
// Usage, as node wires it:
//
//	store, _ := content.New(ctx, content.Config{Dir: dir}, host)
//	svc, _ := dfs.New(ctx, dfs.Config{Self: id, NodeName: name}, dfs.StoreContent{S: store}, members, nil, st, log)
//	pins, _ := dfs.NewPinProtocol(host, svc)
//	svc.SetPeers(pins)
//	svc.Register(srv, store.Gateway()) // the /v1/fs routes and GET /ipfs/{cid}
//	svc.Start()
//	defer svc.Close()
//
// See docs/dfs.md.
package dfs
