package mesh

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Replicated collections of the mesh. Endpoints follow the ownership rule: only the node
// hosting an endpoint writes its record (registration, health). Service configuration and
// intentions are shared intents: last writer wins per service / per pair.
const (
	// CollEndpoints holds one EndpointRecord per endpoint, keyed NODEID/NAMESPACE/SERVICE/ID.
	CollEndpoints = "mesh_endpoints"
	// CollServices holds one ServiceRecord per configured service, keyed NAMESPACE/SERVICE.
	CollServices = "mesh_services"
	// CollIntentions holds one IntentionRecord per pair, keyed FROM>TO.
	CollIntentions = "mesh_intentions"
)

// Errors of the mesh (classified for the API in init).
var (
	ErrUnknownService = errors.New("mesh: unknown service")
	ErrNoHealthy      = errors.New("mesh: no healthy endpoint")
	ErrDenied         = errors.New("mesh: call denied")
	ErrBadRequest     = errors.New("mesh: bad request")
	ErrUnavailable    = errors.New("mesh: unavailable")
)

func init() {
	httpapi.Classify(404, "not_found", ErrUnknownService)
	httpapi.Classify(503, "no_healthy_endpoint", ErrNoHealthy)
	httpapi.Classify(403, "denied", ErrDenied)
	httpapi.Classify(400, "bad_request", ErrBadRequest)
	httpapi.Classify(503, "unavailable", ErrUnavailable)
}

// EndpointRecord is an endpoint's replicated record (collection mesh_endpoints), written
// only by the node hosting it. A new field takes the next number.
type EndpointRecord struct {
	Service     string            `cbor:"1,keyasint,omitempty"`
	Namespace   string            `cbor:"2,keyasint,omitempty"`
	Version     string            `cbor:"3,keyasint,omitempty"`
	Protocol    string            `cbor:"4,keyasint,omitempty"`
	Port        int               `cbor:"5,keyasint,omitempty"`
	Host        string            `cbor:"6,keyasint,omitempty"` // address the hosting node dials (127.0.0.1 or the instance's IP)
	HealthCheck string            `cbor:"7,keyasint,omitempty"`
	Tags        []string          `cbor:"8,keyasint,omitempty"`
	Instance    string            `cbor:"9,keyasint,omitempty"`
	Node        string            `cbor:"10,keyasint,omitempty"`
	NodeID      string            `cbor:"11,keyasint,omitempty"`
	Healthy     bool              `cbor:"12,keyasint,omitempty"`
	Reason      string            `cbor:"13,keyasint,omitempty"` // why unhealthy (or "" when healthy)
	CheckedAt   int64             `cbor:"14,keyasint,omitempty"` // unix ms of the last health change
	TLS         bool              `cbor:"15,keyasint,omitempty"`
	Deployment  string            `cbor:"16,keyasint,omitempty"` // registered by a deployment
	Labels      map[string]string `cbor:"17,keyasint,omitempty"` // the hosting node's labels (zone, region)
}

// ServiceRecord is a service's configuration (collection mesh_services).
type ServiceRecord struct {
	Name               string `cbor:"1,keyasint,omitempty"`
	Namespace          string `cbor:"2,keyasint,omitempty"`
	LoadBalancer       string `cbor:"3,keyasint,omitempty"`
	HealthIntervalS    int    `cbor:"4,keyasint,omitempty"`
	HealthTimeoutMs    int    `cbor:"5,keyasint,omitempty"`
	UnhealthyThreshold int    `cbor:"6,keyasint,omitempty"`
	HealthyThreshold   int    `cbor:"7,keyasint,omitempty"`
	TimeoutMs          int    `cbor:"8,keyasint,omitempty"`
	Retries            int    `cbor:"9,keyasint,omitempty"`
	RetriesSet         bool   `cbor:"10,keyasint,omitempty"`
	NoHedge            bool   `cbor:"11,keyasint,omitempty"`
	FailureThreshold   int    `cbor:"12,keyasint,omitempty"`
	BreakerTimeoutS    int    `cbor:"13,keyasint,omitempty"`
	HalfOpenRequests   int    `cbor:"14,keyasint,omitempty"`
	UpdatedAt          int64  `cbor:"15,keyasint,omitempty"`
	UpdatedBy          string `cbor:"16,keyasint,omitempty"`
}

// IntentionRecord allows or denies calls from one service to another (collection
// mesh_intentions).
type IntentionRecord struct {
	From   string `cbor:"1,keyasint,omitempty"` // NAMESPACE/NAME, NAMESPACE/* or */*
	To     string `cbor:"2,keyasint,omitempty"`
	Allow  bool   `cbor:"3,keyasint,omitempty"`
	At     int64  `cbor:"4,keyasint,omitempty"`
	Delete bool   `cbor:"5,keyasint,omitempty"`
}

// Defaults of a service without configuration.
const (
	DefaultLoadBalancer       = "round_robin"
	DefaultHealthIntervalS    = 10
	DefaultHealthTimeoutMs    = 2000
	DefaultUnhealthyThreshold = 3
	DefaultHealthyThreshold   = 2
	DefaultTimeoutMs          = 5000
	DefaultRetries            = 2
	DefaultFailureThreshold   = 5
	DefaultBreakerTimeoutS    = 30
	DefaultHalfOpenRequests   = 3
)

// withDefaults fills a record's zero fields.
func (r ServiceRecord) withDefaults() ServiceRecord {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if r.LoadBalancer == "" {
		r.LoadBalancer = DefaultLoadBalancer
	}
	def(&r.HealthIntervalS, DefaultHealthIntervalS)
	def(&r.HealthTimeoutMs, DefaultHealthTimeoutMs)
	def(&r.UnhealthyThreshold, DefaultUnhealthyThreshold)
	def(&r.HealthyThreshold, DefaultHealthyThreshold)
	def(&r.TimeoutMs, DefaultTimeoutMs)
	if !r.RetriesSet {
		r.Retries = DefaultRetries
	}
	def(&r.FailureThreshold, DefaultFailureThreshold)
	def(&r.BreakerTimeoutS, DefaultBreakerTimeoutS)
	def(&r.HalfOpenRequests, DefaultHalfOpenRequests)
	return r
}

func (r ServiceRecord) apiConfig() api.MeshServiceConfig {
	r = r.withDefaults()
	retries, hedge := r.Retries, !r.NoHedge
	return api.MeshServiceConfig{LoadBalancer: r.LoadBalancer, HealthCheckInterval: r.HealthIntervalS,
		HealthCheckTimeout: r.HealthTimeoutMs, UnhealthyThreshold: r.UnhealthyThreshold, HealthyThreshold: r.HealthyThreshold,
		TimeoutMs: r.TimeoutMs, Retries: &retries, Hedge: &hedge, FailureThreshold: r.FailureThreshold,
		BreakerTimeout: r.BreakerTimeoutS, HalfOpenRequests: r.HalfOpenRequests}
}

// LoadBalancers are the accepted --load-balancer values.
var LoadBalancers = []string{"round_robin", "least_conn", "random", "ip_hash", "p2c_ewma", "geo_proximity"}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	tagRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:=-]{0,62}$`)
)

const nameRule = "1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// validName checks a service name.
func validName(field, s string) error {
	if !nameRE.MatchString(s) {
		return bad("field %q: %q is not a service name (%s)", field, s, nameRule)
	}
	return nil
}

func normNamespace(ns string) (string, error) {
	if ns == "" {
		return api.DefaultNamespace, nil
	}
	if !api.ValidNamespace(ns) {
		return "", bad("field \"namespace\": %q is not a namespace (%s)", ns, api.NamespaceRule)
	}
	return ns, nil
}

// validateRegister checks and normalizes a registration; errors name the field.
func validateRegister(r *api.MeshRegisterRequest) error {
	if err := validName("name", r.Name); err != nil {
		return err
	}
	ns, err := normNamespace(r.Namespace)
	if err != nil {
		return err
	}
	r.Namespace = ns
	if r.Version != "" && !versionRE.MatchString(r.Version) {
		return bad("field \"version\": %q: 1-64 letters, digits and . _ + -, like 1.0.0", r.Version)
	}
	switch r.Protocol {
	case "":
		r.Protocol = "http"
	case "http", "tcp", "grpc":
	default:
		return bad("field \"protocol\": %q: want http, tcp or grpc", r.Protocol)
	}
	if r.Port < 1 || r.Port > 65535 {
		return bad("field \"port\": %d: want 1-65535", r.Port)
	}
	if isExecCheck(r.HealthCheck) {
		if _, err := parseExecCheck(r.HealthCheck); err != nil {
			return bad("field \"health_check\": exec check: %v", err)
		}
	} else if r.HealthCheck != "" {
		if r.Protocol == "tcp" {
			return bad("field \"health_check\": a tcp service is checked by connecting or by exec:CMD ARGS; give no HTTP path")
		}
		if !strings.HasPrefix(r.HealthCheck, "/") || len(r.HealthCheck) > 256 || strings.ContainsAny(r.HealthCheck, " \t\r\n") {
			return bad("field \"health_check\": %q: an HTTP path like /health (at most 256 bytes) or exec:CMD ARGS", r.HealthCheck)
		}
	}
	if len(r.Tags) > 32 {
		return bad("field \"tags\": %d tags, at most 32", len(r.Tags))
	}
	for _, t := range r.Tags {
		if !tagRE.MatchString(t) {
			return bad("field \"tags\": %q: 1-63 letters, digits and . _ : = -", t)
		}
	}
	if r.Instance != "" && len(r.Instance) > 63 {
		return bad("field \"instance\": name too long")
	}
	return nil
}

// validateConfig checks a configuration change.
func validateConfig(c api.MeshServiceConfig) error {
	if c.LoadBalancer != "" {
		ok := false
		for _, lb := range LoadBalancers {
			ok = ok || lb == c.LoadBalancer
		}
		if !ok {
			return bad("field \"load_balancer\": %q: want one of %s", c.LoadBalancer, strings.Join(LoadBalancers, ", "))
		}
	}
	check := func(field string, v, max int) error {
		if v < 0 || v > max {
			return bad("field %q: %d: want 1-%d (0 keeps the current value)", field, v, max)
		}
		return nil
	}
	return errors.Join(
		check("health_check_interval", c.HealthCheckInterval, 3600),
		check("health_check_timeout_ms", c.HealthCheckTimeout, 60000),
		check("unhealthy_threshold", c.UnhealthyThreshold, 100),
		check("healthy_threshold", c.HealthyThreshold, 100),
		check("timeout_ms", c.TimeoutMs, 600000),
		check("failure_threshold", c.FailureThreshold, 10000),
		check("timeout", c.BreakerTimeout, 3600),
		check("half_open_requests", c.HalfOpenRequests, 1000),
		func() error {
			if c.Retries != nil && (*c.Retries < 0 || *c.Retries > 10) {
				return bad("field \"retries\": %d: want 0-10", *c.Retries)
			}
			return nil
		}(),
	)
}

// applyConfig merges a configuration change into a record.
func applyConfig(r ServiceRecord, c api.MeshServiceConfig) ServiceRecord {
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	if c.LoadBalancer != "" {
		r.LoadBalancer = c.LoadBalancer
	}
	set(&r.HealthIntervalS, c.HealthCheckInterval)
	set(&r.HealthTimeoutMs, c.HealthCheckTimeout)
	set(&r.UnhealthyThreshold, c.UnhealthyThreshold)
	set(&r.HealthyThreshold, c.HealthyThreshold)
	set(&r.TimeoutMs, c.TimeoutMs)
	set(&r.FailureThreshold, c.FailureThreshold)
	set(&r.BreakerTimeoutS, c.BreakerTimeout)
	set(&r.HalfOpenRequests, c.HalfOpenRequests)
	if c.Retries != nil {
		r.Retries, r.RetriesSet = *c.Retries, true
	}
	if c.Hedge != nil {
		r.NoHedge = !*c.Hedge
	}
	return r
}

// serviceRef parses NAME, NAMESPACE/NAME, NAMESPACE/* or * into a normalized ref.
func serviceRef(field, s string) (string, error) {
	if s == "*" || s == "*/*" {
		return "*/*", nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = api.DefaultNamespace, s
	}
	if !api.ValidNamespace(ns) {
		return "", bad("%s %q: namespace %q is not valid (%s)", field, s, ns, api.NamespaceRule)
	}
	if name != "*" {
		if err := validName(field, name); err != nil {
			return "", err
		}
	}
	return ns + "/" + name, nil
}

func init() {
	httpapi.ClassifyFunc(502, "bad_gateway", func(err error) (string, bool) {
		var e *badGatewayError
		if errors.As(err, &e) {
			return e.Error(), true
		}
		return "", false
	})
}
