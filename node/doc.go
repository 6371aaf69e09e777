// Package node is the composition root of a constellation node: Config (flags, YAML file,
// defaults, validation), New (take the data dir, open the state, build the p2p host and every
// service in order), Start (join, serve, run) and Close (one shutdown signal, then the
// services in reverse order). It holds no feature logic: membership, instances and
// scheduling live in their own packages and meet here through the interfaces they declare.
//
// Order of construction: data-dir lock, internal/state (the replicated document), p2p host,
// internal/membership, internal/httpapi (local API), instances, scheduler. Close cancels the
// node's context first, so streams and background work end at once, then closes the
// scheduler, the instance service, the API, membership, the host and the state file.
package node
