// Package mesh is constellation's service mesh: a CRDT service registry, health checks run by
// the node hosting each endpoint, and calls by service name carried as libp2p streams over
// QUIC with balancing, timeouts, retries, circuit breakers and trace context. See
// docs/design.md ("Service mesh over QUIC"). The package is scheduled by the mesh issue and
// holds no code yet.
package mesh
