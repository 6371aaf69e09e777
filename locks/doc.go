// Package locks is constellation's lock service: a small Raft group (hashicorp/raft, log
// and stable store in bbolt under <data-dir>/locks, file snapshots beside them) that grants
// leases with fencing tokens and keeps a compare-and-set map for strongly consistent DFS
// trees. It holds nothing else: general cluster state stays in the CRDTs.
//
// # State machine
//
// The FSM (fsm.go) is pure: every log entry carries the leader's clock (Now) and its
// lock-delay, and the FSM never reads a clock, so every replica computes the same state.
// It holds the locks (path -> holder, token, TTL, granted, expires), the lock-delay that
// follows an expiry per path, the cluster-wide token counter (every grant takes the next
// token: strictly increasing, Chubby's sequencer), and the CAS map (key -> value, revision
// from a cluster-wide counter, highest fencing token seen). Entries: acquire, renew,
// release, expire, leader (takeover) and cas.
//
// Leases: only the leader expires a lease, by proposing an expire entry once the lease's
// end passed on its clock; the FSM accepts it only if the token still holds the lock and
// the entry's time is past the end. A new leader first commits a takeover entry that makes
// every lease last at least its full TTL from the takeover (Chubby): a leader change
// never shortens a lease. Holders count their lease from the time they sent the request,
// so a holder's own view always ends before the leader's.
//
// # Group membership
//
// Plan (voters.go) is a pure function from the configuration, the members (alive, stable,
// zone) and the time to the one change to make: remove servers dead past the grace
// (voters only while the rest keep a quorum), add voters up to the target (3, or 5 with 7
// stable members; odd) from the least represented zone, demote extra voters, swap a
// voter that shares its zone for a candidate of an empty zone, and add every other stable
// member as a non-voter. The leader's loop applies one change at a time.
//
// Bootstrap: a node in no configuration bootstraps a one-voter group only when it has
// been up StableAfter, has the lowest peer ID among every member it knows (alive or not,
// except those that left), and every one of them answers that it is in no group and
// knows no leader; a node started with --join also waits until it knows another member.
// Anything else waits for the leader to add it. So a group is never bootstrapped twice
// unless two nodes that do not know of each other both start alone (two clusters).
//
// # Requests
//
// Every node serves the API. A request goes to the leader: applied locally there,
// otherwise forwarded over the member-only protocol locks/1.0.0 (one bounded CBOR frame
// each way, decoded with limits, deadlines) to the leader Raft names, or, by a node not in
// the group yet, to any alive member which forwards it once. Reads (Get, List) use the
// read index: remember the commit index, confirm leadership with a quorum, wait for the FSM
// to apply that far. Raft's RPCs travel over libp2p streams on locks-raft/1.0.0 through the
// member-only host (raft.NetworkTransport over p2p.Listener); addresses are peer IDs.
//
// Errors are *httpapi.Error: 503 unavailable (naming the unreachable voters), 409 held,
// not_held (naming the holder and token), conflict (both revisions), stale_token (both
// tokens), 408 timeout for a blocking acquire that ran out, 400 for bad paths or TTLs.
package locks
