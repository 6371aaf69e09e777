// Package sched is constellation's leaderless scheduler: deployments owned by the rendezvous
// winner among alive nodes, a pure placement function (filter by constraints, resources,
// reservations and quotas; score by binpack, spread or random plus affinity terms), claims
// admitted by the target node, and quotas on CRDT bounded counters. See docs/design.md
// ("Scheduling without a leader"). The package is scheduled by the scheduling issue and holds
// no code yet.
package sched
