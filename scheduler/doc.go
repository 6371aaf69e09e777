// Package scheduler is the cluster side of scheduling: deployments, claims, rejections,
// reservations, namespace quotas and drains, kept in the replicated document, and the loop
// every node runs over them (see Scheduler and docs/scheduling.md). The placement
// algorithms themselves are pure and live in package sched.
//
// The scheduler reaches the instance service only through the Instances interface it
// declares, and the instance service reaches reservations only through
// instances.Reservations, which *Scheduler implements.
package scheduler
