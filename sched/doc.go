// Package sched is the pure, deterministic core of constellation's leaderless scheduler: no
// I/O, no goroutines, no clocks. The node wiring (claims in the CRDT document, admission by
// the target node, owners, drains, reschedules) feeds it snapshots and acts on its answers.
// See docs/design.md ("Scheduling without a leader").
//
// It provides:
//
//   - Owner and Rank: rendezvous (highest random weight) hashing. The alive node with the
//     highest weight for a deployment ID owns it; when it leaves, only its deployments move.
//     NewRendezvous precomputes a membership for deciding many owners at once.
//   - ParseConstraint and ParseTerm: the constraint language over node attributes
//     (node.name=n1, node.region!=eu, node.type in (database,cache), node.type not in (gpu))
//     and affinity / anti-affinity terms over the labels of instances already on a node
//     (service=cache, service=cache;weight=80, service=db-replica;hard).
//   - Cluster and Place: an incrementally maintained snapshot (per-node usage, per-label
//     instance counts) and the placement function: filter (draining, constraints, hard terms,
//     free resources after reservations, per-node instance caps), rank (avoided nodes last,
//     soft affinity score, strategy spread / binpack / random, rendezvous tie-break) and
//     preempt (victims at least PreemptionGap priority levels lower) when nothing fits.
//   - CheckQuota and MaxFit: namespace quotas (max_cpu_cores, max_ram_gb, max_instances,
//     allow_cpu_burst, allow_ram_borrow, max_burst_percent) as a pure check of one view; the
//     distributed enforcement sizes CRDT bounded counters from Quota.Limits.
//   - Reconcile: after a partition heals, which duplicate instances to keep and which to stop,
//     the same answer on every node.
//   - Backoff: restart delays with jitter, and which nodes a reschedule should avoid after
//     repeated failures there (Request.Avoid).
//
// Conventions the wiring relies on: CPU is in millicores (CPUPercent, CPUCores convert the
// API's fields), RAM and disk in MiB; Request.Priority is taken as given (0 is lowest; use
// ParsePriority, whose empty input is DefaultPriority); a reservation is Node.Reserved on the
// node that holds it (place the reservation itself as a one-instance Request), and a create
// that consumes it lowers Reserved and pins node.name; a drain sets Node.Draining, places
// replacements under new instance IDs, and removes the old ones once the new ones
// run (make-before-break); a dead node's instances come back from RemoveNode for re-placement.
//
// Every result depends only on the inputs (never on map order, insertion order or the
// machine: all arithmetic is integer), so two nodes computing the same plan from the same
// state agree. StrategyRandom draws from the injected Options.Rand.
//
// The owner's loop, roughly:
//
//	c, _ := sched.NewCluster(snapshot)              // alive nodes with capacity, reservations, instances
//	if sched.Owner(dep.ID, aliveIDs) != self { return }
//	used := c.NamespaceUsage(dep.Namespace)
//	n := min(missing, sched.MaxFit(quota, used, dep.Resources)) // or CheckQuota for an error
//	req := sched.Request{
//		Deployment: dep.ID, Namespace: dep.Namespace, Labels: dep.Labels,
//		Instances: missingIDs[:n], Resources: dep.Resources, Strategy: sched.StrategySpread,
//		Constraints: cons, Affinity: aff, AntiAffinity: anti, Priority: dep.Priority,
//	}
//	plan, err := c.Place(req, sched.Options{})
//	// evict plan.Evictions (they are placed again later), write a claim per
//	// plan.Placements entry; the target node admits or rejects it; rejected ones come back
//	// as missing in the next round. err (a *PlacementError) explains what was left unplaced.
//	_ = c.Apply(req, plan)                           // keep the local view current
//
// and after a heal, for each deployment:
//
//	r := sched.Reconcile(dep.ID, dep.Desired, running) // stop r.Stop, place r.Missing
package sched
