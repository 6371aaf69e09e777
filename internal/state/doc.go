// Package state owns the node's replicated document (a crdt.Document): the one lock around
// it, its persistence in <data-dir>/state.db (bbolt: a snapshot plus a log of deltas,
// compacted periodically), and the publishing of local changes to the cluster.
//
// Features never take the document's lock themselves. They read inside View, change inside
// Update (every change of one Update becomes one delta, published under the lock so deltas
// leave in order, and persisted after the lock is released), and learn of remote changes by
// Watch: watchers run after the change is committed, in commit order, on one goroutine,
// with no lock held, so a watcher may read and update the store.
//
// The Store also implements p2p.Replica (Version, MissingFor, Apply) for anti-entropy and
// gossip. Remote input is decoded with crdt.DefaultLimits.
package state
