// Package crdt holds the cluster's replicated state as delta-state CRDTs
// (Almeida, Shoker, Baquero, "Delta state replicated data types", 2016),
// stamped by a hybrid logical clock. It is pure: no I/O, no goroutines, no
// global state; time is injected. The caller (the node's replication loop)
// does the I/O and serializes access to a Document.
//
// # The usage loop
//
//	clock := crdt.NewClock(crdt.ReplicaIDFromBytes(peerID), time.Now, 0)
//	doc := crdt.NewDocument(clock.ID(), clock)
//
//	// Restart: restore the persisted full state; the own sequence resumes.
//	if b, ok := load(); ok {
//		st, err := crdt.DecodeDelta(b, crdt.DefaultLimits)
//		...
//		doc.Join(st)
//	}
//
//	// Local mutation -> delta -> publish (gossip), persist.
//	d, err := doc.PutLWW("nodes", self, record)
//	b, _ := crdt.EncodeDelta(d)
//	publish(b)
//
//	// Remote delta -> decode with limits -> join -> react to changed keys.
//	d, err := crdt.DecodeDelta(msg, crdt.DefaultLimits)
//	changes, err := doc.Join(d) // *ClockOffsetError: peer's clock too far ahead
//	for _, c := range changes { notify(c.Collection, c.Key, c.Removed) }
//
//	// Anti-entropy with a random peer: exchange version vectors, send what
//	// the peer lacks (logged deltas, or the full state if they are gone).
//	v, _ := crdt.EncodeVersion(doc.Version())
//	peerV, _ := crdt.DecodeVersion(reply, crdt.DefaultLimits)
//	if d := doc.DeltaFor(peerV); d != nil { send(crdt.EncodeDelta(d)) }
//
//	// Persist: crdt.EncodeDelta(doc.State()).
//
// # Clock
//
// Clock is a hybrid logical clock (Kulkarni et al., 2014). Timestamps are
// (Wall ns, Logical, Replica), totally ordered in that order. Now never
// goes backwards when the wall clock does (it bumps Logical; when Logical
// would overflow it advances Wall by 1 ns). Observe merges a remote
// timestamp and fails with *ClockOffsetError if it is more than MaxOffset
// (default 500 ms) ahead of the local wall clock; Document.Join observes the
// newest timestamp of every delta and rejects the whole delta on that error.
//
// # Dots, causal context, versions
//
// Every local mutation consumes one Dot (replica, counter); the counter is
// also the delta's sequence number. A CausalContext is a set of dots kept as
// a version vector plus a dot cloud for dots past a gap; adding the missing
// dot folds the cloud back into the vector, so after replicas sync the
// context is just a vector (one uint64 per replica), whatever the history.
// A Document keeps two: the causal context of its entries (every dot whose
// effect is included, including dots superseded by a remove) and the set of
// operation deltas applied, whose compact part is Version(): per origin the
// highest seq with no gap below it. A delta received past a gap (seq 5
// before 4) is applied but does not advance Version; anti-entropy fills it.
//
// # Document
//
// A Document is a set of named collections; each collection is an
// observed-remove map from string keys to CRDT values. An entry can hold a
// value of each Kind (as Riak maps key fields by name and type); most
// entries hold one. Keys and Len list entries holding any value. Every
// mutator returns the *Delta to replicate; it is already applied locally.
//
// LWW register (KindLWW): PutLWW/GetLWW. A write supersedes every write the
// writer has seen; writes that are concurrent are all kept as siblings and
// the read returns the one with the greatest HLC timestamp (ties broken by
// replica ID), so every replica reads the same value. A later write removes
// the siblings, so metadata is bounded by concurrency, not history. Most
// cluster state (membership records, placements, service records) is LWW
// records of opaque CBOR/JSON bytes written by one owner.
//
//	d.PutLWW("nodes", "n1", []byte(`{"addr":"10.0.0.1"}`))
//	v, ts, ok := d.GetLWW("nodes", "n1")
//
// Multi-value register (KindMV): PutMV/GetMV. Like LWW but the read returns
// every concurrent value (ordered by timestamp), so the application can
// merge them; the next write supersedes all it has seen.
//
//	a.PutMV("cfg", "x", []byte("1")); b.PutMV("cfg", "x", []byte("2"))
//	// after exchanging deltas both read [1 2]; a.PutMV("cfg","x",[]byte("3")) -> [3]
//
// Add-wins observed-remove set (KindSet): AddToSet, RemoveFromSet,
// SetMembers, SetContains. A remove cancels the adds of that element it has
// observed; an add concurrent with the remove survives. Removed elements
// leave no tombstone: only their dots, which compact into the version vector.
//
//	a.AddToSet("labels", "n1", "gpu"); b.RemoveFromSet("labels", "n1", "gpu") // concurrent
//	// after exchange: "gpu" is present on both (add wins)
//
// G-counter (KindGCounter: IncGCounter, GCounter) and PN-counter
// (KindPNCounter: AddPNCounter, PNCounter): each replica owns one row with
// its cumulative increments (and decrements); the value is the sum of rows.
//
//	a.AddPNCounter("stats", "running", 3); b.AddPNCounter("stats", "running", -1) // -> 2
//
// Bounded counter (KindBounded; Balegas et al., "Putting consistency back
// into eventual consistency", 2015): a counter whose value never drops below
// zero, even under partition. IncBounded creates rights held by the
// incrementing replica; DecBounded consumes local rights and fails with a
// *BoundError (errors.Is ErrInsufficientRights) when the replica holds too
// few, whatever others do concurrently; TransferBounded moves rights to
// another replica; BoundedRights reports a replica's rights. Quotas are
// built on it: the quota owner increments the limit, and transfers rights
// to the nodes that will consume them.
//
//	a.IncBounded("quota", "cpu", 8)      // a holds 8 rights
//	a.TransferBounded("quota", "cpu", b.ID(), 3)
//	b.DecBounded("quota", "cpu", 4)       // *BoundError: b holds 3
//
// Remove (any kind): Remove deletes the entry as this replica has observed
// it. Semantics of a remove concurrent with an update of the entry (the
// OR-map's nested update) are update-wins, as in Riak maps and Akka's
// ORMap: the remove cancels exactly the updates it observed, and the
// concurrent update survives, so the entry exists afterwards holding:
//   - LWW/MV: the concurrent write (the observed older value is gone);
//   - set: only the elements added concurrently (observed ones are gone);
//   - counters: the concurrently updating replica's whole row (rows are
//     cumulative, so its earlier, observed contribution reappears with it);
//     rows of replicas that did not update concurrently stay removed.
//
// Because of the last point, do not Remove a bounded counter that may be
// decremented concurrently: the bound can then be crossed. Delete quotas
// once quiescent, or keep them and reset the limit with transfers.
//
// # Replication
//
// Join accepts an operation batch or a full state; it is idempotent,
// commutative and associative, so deltas may arrive in any order, twice, or
// not at all (anti-entropy repairs loss). Join returns the entries whose
// state changed (Removed when the entry is gone). Operation deltas joined
// from peers are kept in a bounded log (Config.LogMaxDeltas/LogMaxBytes) and
// forwarded by DeltaFor to peers that lack them (delta-interval
// anti-entropy, §6 of the paper); when the log no longer holds a needed
// delta, or the batch would be larger than the state, DeltaFor returns the
// full state. Version vectors cannot express dots past a gap, so a peer may
// receive some deltas twice; that is harmless.
//
// # Encoding
//
// EncodeDelta/DecodeDelta and EncodeVersion/DecodeVersion use canonical
// CBOR arrays with a format version (FormatVersion). The same state always
// encodes to the same bytes, and EncodeDelta(State()) joined into a fresh
// Document with the same ReplicaID restores it exactly, including the next
// sequence number. Decoders enforce Limits (bytes, nesting depth, total
// elements) and reject malformed input with errors wrapping ErrMalformed or
// ErrLimit, never panicking.
//
// # Bounded metadata
//
// Removed entries and elements leave no payload; superseded writes are
// dropped; counters keep one row per replica; the causal contexts compact
// to one vector entry per replica once gaps are filled; the delta log is
// bounded. A one-entry delta is about 100 bytes plus key and value, whatever
// the document size.
package crdt
