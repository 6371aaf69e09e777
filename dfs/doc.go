// Package dfs is constellation's distributed file system: files chunked into UnixFS DAGs
// (boxo), stored in each node's block store, exchanged with bitswap among admitted peers only,
// announced in the cluster's private DHT, with the namespace (path -> CID, size, mtime,
// writer, history) held as a CRDT collection and strongly consistent locks in a small Raft
// group. See docs/design.md ("Distributed file system"). The package is scheduled by the DFS
// issue and holds no code yet.
package dfs
