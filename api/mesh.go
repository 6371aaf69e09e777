package api

import "time"

// Mesh API (docs/mesh.md): the service registry, configuration, intentions, calls by name,
// spans and metrics under /v1/mesh/.

// EventMeshHealth is published when an endpoint hosted by this node changes health.
const EventMeshHealth = "mesh_health"

// MeshRegisterRequest is the body of POST /v1/mesh/services (`mesh register`): the seed
// plan's mesh.register fields. Without an instance the endpoint is a program on the node
// itself (127.0.0.1:port); with one it is that instance's port (the instance's node hosts
// and checks it).
type MeshRegisterRequest struct {
	Name        string   `json:"name"`
	Namespace   string   `json:"namespace,omitempty"`
	Version     string   `json:"version,omitempty"`
	Protocol    string   `json:"protocol,omitempty"` // http (default), tcp, grpc
	Port        int      `json:"port"`
	HealthCheck string   `json:"health_check,omitempty"` // HTTP path, or "exec:CMD ARGS"; empty: a TCP connect
	Tags        []string `json:"tags,omitempty"`
	Instance    string   `json:"instance,omitempty"`
	TLS         bool     `json:"tls,omitempty"` // the endpoint speaks TLS (the node's mesh certificate on the last hop)
}

// MeshDeregisterRequest is the body of POST /v1/mesh/deregister (`mesh deregister`).
type MeshDeregisterRequest struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Instance  string `json:"instance,omitempty"` // removed on the node running it; empty: the endpoints of the service on this node
	Port      int    `json:"port,omitempty"`
}

// MeshEndpoint is one endpoint of a service.
type MeshEndpoint struct {
	ID        string    `json:"id"`
	Service   string    `json:"service"`
	Namespace string    `json:"namespace"`
	Version   string    `json:"version,omitempty"`
	Protocol  string    `json:"protocol"`
	Port      int       `json:"port"`
	Address   string    `json:"address"` // host:port as the hosting node reaches it
	Instance  string    `json:"instance,omitempty"`
	Node      string    `json:"node"`
	NodeID    string    `json:"node_id"`
	Tags      []string  `json:"tags"`
	Health    string    `json:"health"` // healthy, unhealthy, unknown
	Reason    string    `json:"reason,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	TLS       bool      `json:"tls,omitempty"`
}

// MeshServiceConfig is a service's configuration (`mesh configure`, `mesh circuit-breaker`):
// zero fields keep the current value (defaults in docs/mesh.md).
type MeshServiceConfig struct {
	LoadBalancer        string `json:"load_balancer,omitempty"`
	HealthCheckInterval int    `json:"health_check_interval,omitempty"` // seconds
	HealthCheckTimeout  int    `json:"health_check_timeout_ms,omitempty"`
	UnhealthyThreshold  int    `json:"unhealthy_threshold,omitempty"`
	HealthyThreshold    int    `json:"healthy_threshold,omitempty"`
	TimeoutMs           int    `json:"timeout_ms,omitempty"`
	Retries             *int   `json:"retries,omitempty"`
	Hedge               *bool  `json:"hedge,omitempty"`
	// Circuit breaker per endpoint (seed: failure_threshold, timeout seconds, half_open_requests).
	FailureThreshold int `json:"failure_threshold,omitempty"`
	BreakerTimeout   int `json:"timeout,omitempty"`
	HalfOpenRequests int `json:"half_open_requests,omitempty"`
}

// MeshService is one service of GET /v1/mesh/services.
type MeshService struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Versions  []string          `json:"versions"`
	Protocol  string            `json:"protocol"`
	Endpoints int               `json:"endpoints"`
	Healthy   int               `json:"healthy"`
	Nodes     []string          `json:"nodes"`
	Tags      []string          `json:"tags"`
	Config    MeshServiceConfig `json:"config"`
}

// MeshIntention is an intention FROM -> TO (`mesh allow|deny`); services are NAME or
// NAMESPACE/NAME, "*" for any.
type MeshIntention struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Action string    `json:"action"` // allow | deny
	At     time.Time `json:"at,omitzero"`
}

// MeshCallRequest is the body of POST /v1/mesh/call (`mesh call`, the RADS runtime's
// mesh.call): an HTTP request to a service by name.
type MeshCallRequest struct {
	Service   string            `json:"service"`
	Namespace string            `json:"namespace,omitempty"`
	Method    string            `json:"method,omitempty"` // default GET
	Path      string            `json:"path,omitempty"`   // default /
	Headers   map[string]string `json:"headers,omitempty"`
	Body      string            `json:"body,omitempty"`
	TimeoutMs int               `json:"timeout_ms,omitempty"` // covers retries; default the service's
	Retries   *int              `json:"retries,omitempty"`
	// Idempotent marks a non-GET request safe to retry and hedge.
	Idempotent bool `json:"idempotent,omitempty"`
}

// MeshCallResult is the answer of POST /v1/mesh/call.
type MeshCallResult struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	Endpoint   string            `json:"endpoint"`
	Node       string            `json:"node"`
	Attempts   []MeshAttempt     `json:"attempts"`
	DurationMs float64           `json:"duration_ms"`
	TraceID    string            `json:"trace_id,omitempty"`
}

// MeshAttempt is one attempt of a call.
type MeshAttempt struct {
	Endpoint   string  `json:"endpoint"`
	Node       string  `json:"node"`
	Status     int     `json:"status,omitempty"`
	Error      string  `json:"error,omitempty"`
	DurationMs float64 `json:"duration_ms"`
	Hedge      bool    `json:"hedge,omitempty"`
}

// MeshMetrics is GET /v1/mesh/metrics/{name}: this node's calls to the service over the
// window.
type MeshMetrics struct {
	Service   string                `json:"service"`
	WindowS   float64               `json:"window_s"`
	Requests  int64                 `json:"requests"`
	RPS       float64               `json:"rps"`
	P50Ms     float64               `json:"p50_latency_ms"`
	P95Ms     float64               `json:"p95_latency_ms"`
	P99Ms     float64               `json:"p99_latency_ms"`
	ErrorRate float64               `json:"error_rate"` // percent
	Errors    map[string]int64      `json:"errors"`     // by class
	Endpoints []MeshEndpointMetrics `json:"endpoints"`
}

// MeshEndpointMetrics is one endpoint's share of MeshMetrics.
type MeshEndpointMetrics struct {
	Endpoint  string  `json:"endpoint"`
	Node      string  `json:"node"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	P50Ms     float64 `json:"p50_latency_ms"`
	P99Ms     float64 `json:"p99_latency_ms"`
	ErrorRate float64 `json:"error_rate"`
}

// MeshSpanRequest is POST /v1/mesh/spans: start a span (no span_id), annotate it
// (span_id with attributes or an event), or end it (span_id with end true).
type MeshSpanRequest struct {
	Name        string            `json:"name,omitempty"`
	Traceparent string            `json:"traceparent,omitempty"` // parent (W3C); empty: a new trace
	SpanID      string            `json:"span_id,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Event       string            `json:"event,omitempty"`
	Error       string            `json:"error,omitempty"`
	End         bool              `json:"end,omitempty"`
}

// MeshSpan is the answer of POST /v1/mesh/spans.
type MeshSpan struct {
	TraceID     string `json:"trace_id"`
	SpanID      string `json:"span_id"`
	Traceparent string `json:"traceparent"` // to pass on calls made inside the span
	Ended       bool   `json:"ended,omitempty"`
}

// MeshTLSRequest is POST /v1/mesh/mtls (`mesh enable-mtls`): files on the node.
type MeshTLSRequest struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}
