// Package content is the content layer of the distributed file system: it stores files
// as content-addressed blocks on a node's disk and moves blocks between members. The
// namespace (package dfs: paths, versions, holders, replication) decides what to store
// where; this package does the storing and the moving.
//
// # Storage
//
// A Store keeps blocks in append-only segment files in Config.Dir/packs (pack.go: an
// in-memory index rebuilt from the record headers at start, tombstones for deletions, a
// compactor for mostly-dead segments); a store written by an earlier version (flatfs in
// Config.Dir/blocks) is migrated at start. Add, Pin and ImportCAR return only once their
// blocks are durable (one fdatasync per segment written, not one per block); pins are a
// snapshot and a journal (pinlog.go). Add chunks a file (fixed 256 KiB chunks by default, or
// content-defined "buzhash" chunks) into a UnixFS balanced DAG with CIDv1 and raw
// leaves, so identical content has the same CID and is stored once, and any IPFS
// implementation computes the same root. Every block read from disk is checked against
// its CID: a corrupt block is deleted, counted (constellation_dfs_corrupt_blocks_total)
// and fetched again from a holder.
//
// Every block present is either protected or cached:
//
//   - pinned: reached by a pinned root. Pin fetches the whole DAG, syncs it and records
//     the pin in Dir/pins.json; pins are counted per root.
//   - leased: written by an Add that was neither released nor pinned yet (a write
//     lease, ended by Release, Pin or Config.LeaseTTL), or fetched by a Pin in progress.
//     GC and the LRU never delete a leased block, so a write's blocks survive until the
//     namespace entry that references them is pinned.
//   - cached: anything else (read by a non-holder, unpinned), in an LRU bounded by
//     Config.CacheBytes.
//
// GC deletes what is neither pinned, leased, nor reached from a root the caller keeps.
// Config.Capacity bounds the whole store (the node's disk ledger); Add and Pin fail with
// ErrDiskFull saying how many bytes were missing on which node, after evicting the
// cache, and leave nothing of the failed write behind.
//
// # Transfer
//
// All transfer runs over the member-only p2p host (Network): a peer that did not pass
// admission can neither open a stream to the store nor be sent a want-list.
//
//   - The bulk protocol ("dfs-blocks/1.0.0", see bulk.go) fetches blocks from the
//     holders the namespace names: want lists in batches, one frame per block, every
//     block verified against its CID before it is stored, several holders and several
//     streams per holder in parallel; what a holder does not send (missing, dead, bad
//     data) goes to the other holders.
//   - bitswap, under the cluster's private protocol prefix and with a request filter
//     admitting members only, is the fallback and serves the IPFS protocol to members.
//
// # Interoperability
//
// ExportCAR and ImportCAR write and read CAR files (v1 and v2, every block verified,
// bounded), and Gateway serves boxo's trustless gateway (GET /ipfs/{cid}?format=car|raw)
// from the store, read-only.
package content
