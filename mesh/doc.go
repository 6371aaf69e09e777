// Package mesh is constellation's service mesh: services found by name, called over QUIC,
// balanced, resilient, traced.
//
//   - Registry: replicated collections mesh_endpoints (one EndpointRecord per endpoint,
//     written only by the node hosting it: registration and health are that node's facts),
//     mesh_services (per-service configuration, last writer wins) and mesh_intentions
//     (allow/deny FROM -> TO). Every node keeps an immutable index of them rebuilt on each
//     change, so Resolve is a map read of the local replica (about 60 ns).
//   - Health: the hosting node checks each of its endpoints (HTTP GET of the health path, or
//     a TCP connect) with the service's interval and thresholds; an instance that stops,
//     exits or is removed marks its endpoints unhealthy (or removes them) at once, from the
//     instance events. Deployments with a service register their instances (Deployments).
//   - Calls: from the loopback entry point (CONSTELLATION_MESH: Host NAME.mesh or a path
//     prefix /NAME/, HTTP/1.1 and h2c, CONNECT for raw TCP, Upgrade passes through) or
//     POST /v1/mesh/call. A call resolves the name, then mesh/balance picks an endpoint
//     (policy, locality, breakers, outlier ejection) and runs retries and hedges within the
//     deadline and the retry budget. A local endpoint is called directly; a remote one over
//     the hop protocol (hop.go): pooled HTTP/1.1 or h2c connections, each a libp2p stream
//     between the two admitted members over their QUIC connection. The receiving node checks
//     the headers (parseHop), that the calling node hosts the service it speaks for, the
//     intentions, and forwards to the endpoint (TLS with enable-mtls' certificate for TLS
//     endpoints).
//   - Tracing and metrics: a client span per call and per attempt, a server span per hop
//     (W3C traceparent propagated to the endpoint), spans instances open through
//     POST /v1/mesh/spans; Prometheus counters and histograms and a window of recent calls
//     per service for GET /v1/mesh/metrics/{name}.
//
// Users: docs/mesh.md. Design: docs/design.md ("Service mesh over QUIC").
package mesh
