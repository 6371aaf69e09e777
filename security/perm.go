package security

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Perm is a permission: "resource:verb" (e.g. "instances:write").
type Perm string

// Verbs: read covers every GET route of a resource, write every route that changes it.
const (
	VerbRead  = "read"
	VerbWrite = "write"
)

// Verbs lists the verbs a rule may name ("*" is every verb).
var Verbs = []string{VerbRead, VerbWrite}

// Resources lists the resources a rule may name ("*" is every resource). Namespaced ones
// (NamespacedResources) hold records carrying a Namespace field; the others are cluster-wide.
var Resources = []string{
	"instances", "deployments", "files", "services", "secrets", "namespaces", "quotas",
	"reservations", "nodes", "events", "messages", "tokens", "roles", "audit", "telemetry",
	"secret-values",
}

// adminResources are left out of "*:verb" rules: only "*:*" (admin) or a rule naming them
// grants them. secret-values: reading a secret's value and rotating the key.
var adminResources = []string{"secret-values"}

// NamespacedResources are the resources whose records belong to a namespace: a token bound
// to a namespace acts on them only inside it.
// Files are not namespaced yet (DFS paths carry no namespace): a namespace-bound token is
// refused the DFS routes rather than let out of its namespace.
var NamespacedResources = []string{"instances", "deployments", "services", "secrets"}

// Public marks a route every authenticated caller may use (none today; kept for routes
// such as a health check).
const Public Perm = "public"

// RoutePerms is THE table from every route of the node's API (the pattern it is registered
// with) to the permission a token needs to call it. A route missing here is refused to
// every token (and fails TestEveryRouteHasAPermission in package node): a branch that adds
// a route adds its line here.
var RoutePerms = map[string]Perm{
	// node
	"GET /v1/status":     "nodes:read",
	"GET /v1/nodes":      "nodes:read",
	"GET /v1/resources":  "nodes:read",
	"GET /v1/events":     "events:read",
	"POST /v1/send":      "messages:write",
	"POST /v1/broadcast": "messages:write",
	// instances
	"POST /v1/instances":                          "instances:write",
	"GET /v1/instances":                           "instances:read",
	"GET /v1/instances/{name}":                    "instances:read",
	"DELETE /v1/instances/{name}":                 "instances:write",
	"GET /v1/instances/{name}/stats":              "instances:read",
	"GET /v1/instances/{name}/logs":               "instances:read",
	"POST /v1/instances/{name}/start":             "instances:write",
	"POST /v1/instances/{name}/stop":              "instances:write",
	"POST /v1/instances/{name}/restart":           "instances:write",
	"POST /v1/instances/{name}/set-limits":        "instances:write",
	"POST /v1/instances/{name}/wait":              "instances:read",
	"POST /v1/instances/{name}/snapshot":          "instances:write",
	"POST /v1/instances/{name}/restore":           "instances:write",
	"GET /v1/instances/{name}/snapshots":          "instances:read",
	"DELETE /v1/instances/{name}/snapshots/{tag}": "instances:write",
	// scheduling
	"POST /v1/deployments":              "deployments:write",
	"GET /v1/deployments":               "deployments:read",
	"GET /v1/deployments/{name}":        "deployments:read",
	"POST /v1/deployments/{name}/scale": "deployments:write",
	"DELETE /v1/deployments/{name}":     "deployments:write",
	"POST /v1/nodes/{node}/drain":       "nodes:write",
	"POST /v1/drain":                    "nodes:write",
	"POST /v1/reservations":             "reservations:write",
	"GET /v1/reservations":              "reservations:read",
	"DELETE /v1/reservations/{id}":      "reservations:write",
	"PUT /v1/quotas/{ns}":               "quotas:write",
	"GET /v1/quotas/{ns}":               "quotas:read",
	"GET /v1/quotas":                    "quotas:read",
	"PATCH /v1/quotas/{ns}":             "quotas:write",
	"DELETE /v1/quotas/{ns}":            "quotas:write",
	// security
	"POST /v1/acl/tokens":                 "tokens:write",
	"GET /v1/acl/tokens":                  "tokens:read",
	"GET /v1/acl/tokens/{id}":             "tokens:read",
	"DELETE /v1/acl/tokens/{id}":          "tokens:write",
	"GET /v1/acl/whoami":                  Public,
	"POST /v1/acl/roles":                  "roles:write",
	"GET /v1/acl/roles":                   "roles:read",
	"GET /v1/acl/roles/{name}":            "roles:read",
	"DELETE /v1/acl/roles/{name}":         "roles:write",
	"GET /v1/audit":                       "audit:read",
	"GET /v1/audit/verify":                "audit:read",
	"GET /v1/secrets":                     "secrets:read",
	"PUT /v1/secrets/{ns}/{name}":         "secrets:write",
	"GET /v1/secrets/{ns}/{name}":         "secrets:read",
	"DELETE /v1/secrets/{ns}/{name}":      "secrets:write",
	"POST /v1/secrets/{ns}/{name}/reveal": "secret-values:read",
	"POST /v1/secrets/rotate-key":         "secret-values:write",
	"POST /v1/namespaces":                 "namespaces:write",
	"GET /v1/namespaces":                  "namespaces:read",
	"GET /v1/namespaces/{ns}":             "namespaces:read",
	"DELETE /v1/namespaces/{ns}":          "namespaces:write",
	// telemetry: metrics, PromQL (POST forms of the Prometheus API are reads), checks, alerting
	"DELETE /v1/monitor/channels/{name}":      "telemetry:write",
	"DELETE /v1/monitor/checks/{name}":        "telemetry:write",
	"DELETE /v1/monitor/rules/{name}":         "telemetry:write",
	"DELETE /v1/monitor/silences/{id}":        "telemetry:write",
	"GET /api/v1/label/{name}/values":         "telemetry:read",
	"GET /api/v1/labels":                      "telemetry:read",
	"GET /api/v1/query":                       "telemetry:read",
	"GET /api/v1/query_range":                 "telemetry:read",
	"GET /api/v1/series":                      "telemetry:read",
	"GET /api/v1/status/buildinfo":            "telemetry:read",
	"GET /metrics":                            "telemetry:read",
	"GET /v1/debug/pprof/{node}":              "nodes:write",
	"GET /v1/monitor/alerts":                  "telemetry:read",
	"GET /v1/monitor/channels":                "telemetry:read",
	"GET /v1/monitor/channels/{name}/history": "telemetry:read",
	"GET /v1/monitor/checks":                  "telemetry:read",
	"GET /v1/monitor/dashboard":               "telemetry:read",
	"GET /v1/monitor/rules":                   "telemetry:read",
	"GET /v1/monitor/rules/{name}":            "telemetry:read",
	"GET /v1/monitor/silences":                "telemetry:read",
	"POST /api/v1/labels":                     "telemetry:read",
	"POST /api/v1/query":                      "telemetry:read",
	"POST /api/v1/query_range":                "telemetry:read",
	"POST /api/v1/series":                     "telemetry:read",
	"POST /v1/monitor/channels":               "telemetry:write",
	"POST /v1/monitor/channels/{name}/test":   "telemetry:write",
	"POST /v1/monitor/checks":                 "telemetry:write",
	"POST /v1/monitor/metrics":                "telemetry:write",
	"POST /v1/monitor/query":                  "telemetry:read",
	"POST /v1/monitor/rules":                  "telemetry:write",
	"POST /v1/monitor/silences":               "telemetry:write",
	// telemetry: logs and traces
	"GET /v1/monitor/logs":           "telemetry:read",
	"POST /v1/monitor/logs":          "telemetry:write",
	"GET /v1/monitor/traces":         "telemetry:read",
	"GET /v1/monitor/traces/{trace}": "telemetry:read",
	"POST /v1/monitor/spans":         "telemetry:write",
	// distributed file system
	"PUT /v1/fs/files":                   "files:write",
	"GET /v1/fs/files":                   "files:read",
	"DELETE /v1/fs/files":                "files:write",
	"GET /v1/fs/stat":                    "files:read",
	"GET /v1/fs/list":                    "files:read",
	"POST /v1/fs/move":                   "files:write",
	"GET /v1/fs/trees":                   "files:read",
	"POST /v1/fs/trees":                  "files:write",
	"GET /v1/fs/versions":                "files:read",
	"POST /v1/fs/revert":                 "files:write",
	"GET /v1/fs/watch":                   "files:read",
	"GET /v1/fs/snapshots":               "files:read",
	"POST /v1/fs/snapshots":              "files:write",
	"DELETE /v1/fs/snapshots/{snapshot}": "files:write",
	"POST /v1/fs/restore":                "files:write",
	"GET /v1/fs/du":                      "files:read",
	"GET /v1/fs/export":                  "files:read",
	"PUT /v1/fs/import":                  "files:write",
	"GET /ipfs/{rest...}":                "files:read",
	// service mesh
	"GET /v1/mesh/services":                "services:read",
	"GET /v1/mesh/services/{name}":         "services:read",
	"GET /v1/mesh/intentions":              "services:read",
	"GET /v1/mesh/metrics/{name}":          "services:read",
	"POST /v1/mesh/spans":                  "telemetry:write",
	"POST /v1/mesh/services":               "services:write",
	"POST /v1/mesh/deregister":             "services:write",
	"POST /v1/mesh/services/{name}/config": "services:write",
	"POST /v1/mesh/intentions":             "services:write",
	"POST /v1/mesh/mtls":                   "nodes:write", // the node's certificates for the last hop
	"POST /v1/mesh/call":                   "services:write",
	// web dashboard (its files and the login form are served before authentication)
	"POST /ui/login":           Public, // opens a session for the token the request carries
	"GET /ui/session":          Public,
	"POST /ui/logout":          Public,
	"GET /v1/cluster/overview": "nodes:read",
}

// Rule is a parsed "resource:verb" rule ("*" wildcards either side).
type Rule struct{ Resource, Verb string }

func (r Rule) String() string { return r.Resource + ":" + r.Verb }

// ParseRule checks a rule: a known resource (or *), a colon, a known verb (or *).
func ParseRule(s string) (Rule, error) {
	res, verb, ok := strings.Cut(s, ":")
	if !ok {
		return Rule{}, fmt.Errorf("rule %q: want resource:verb, e.g. instances:read", s)
	}
	if res != "*" && !slices.Contains(Resources, res) {
		return Rule{}, fmt.Errorf("rule %q: unknown resource %q; known: %s, *", s, res, strings.Join(Resources, ", "))
	}
	if verb != "*" && !slices.Contains(Verbs, verb) {
		return Rule{}, fmt.Errorf("rule %q: unknown verb %q; known: %s, *", s, verb, strings.Join(Verbs, ", "))
	}
	return Rule{res, verb}, nil
}

// ParseRules parses rules, sorted without duplicates.
func ParseRules(ss []string) ([]Rule, error) {
	var out []Rule
	for _, s := range ss {
		r, err := ParseRule(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// Built-in roles.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
)

// BuiltinRoles are the roles every cluster has; custom roles may not take their names.
var BuiltinRoles = map[string][]string{
	// admin: everything, tokens, roles and the audit log included.
	RoleAdmin: {"*:*"},
	// operator: runs workloads (instances, deployments, files, services) and reads what it
	// needs to place them, and monitoring (telemetry); no tokens, roles, audit, quotas or drains.
	RoleOperator: {"instances:*", "deployments:*", "files:*", "services:*", "telemetry:*", "nodes:read",
		"events:read", "quotas:read", "reservations:read", "namespaces:read", "secrets:read"},
	// viewer: reads workloads and the cluster; changes nothing; no tokens, roles or audit.
	RoleViewer: {"instances:read", "deployments:read", "files:read", "services:read", "nodes:read", "events:read",
		"quotas:read", "reservations:read", "namespaces:read", "secrets:read", "telemetry:read"},
}

// Policy is a compiled role: a set lookup per request.
type Policy struct {
	allowAll bool
	perms    map[Perm]bool
}

// Compile builds the policy of rules. Write implies read: a role that may change a
// resource may see it.
func Compile(rules []Rule) *Policy {
	p := &Policy{perms: map[Perm]bool{}}
	for _, r := range rules {
		switch {
		case r.Resource == "*" && r.Verb == "*":
			p.allowAll = true
		case r.Resource == "*":
			for _, res := range Resources {
				if slices.Contains(adminResources, res) {
					continue
				}
				p.perms[Perm(res+":"+r.Verb)] = true
				if r.Verb == VerbWrite {
					p.perms[Perm(res+":"+VerbRead)] = true
				}
			}
		case r.Verb == "*":
			for _, v := range Verbs {
				p.perms[Perm(r.Resource+":"+v)] = true
			}
		default:
			p.perms[Perm(r.String())] = true
			if r.Verb == VerbWrite {
				p.perms[Perm(r.Resource+":"+VerbRead)] = true
			}
		}
	}
	return p
}

// Allows reports whether the policy grants perm.
func (p *Policy) Allows(perm Perm) bool {
	return perm == Public || p.allowAll || p.perms[perm]
}

// Resource is the resource part of a permission.
func (perm Perm) Resource() string {
	r, _, _ := strings.Cut(string(perm), ":")
	return r
}

// Mutates reports whether a route (its pattern) changes anything: every method but GET.
func Mutates(pattern string) bool { return !strings.HasPrefix(pattern, "GET ") }

var builtinPolicies = func() map[string]*Policy {
	m := map[string]*Policy{}
	for name, rs := range BuiltinRoles {
		rules, err := ParseRules(rs)
		if err != nil {
			panic(err)
		}
		m[name] = Compile(rules)
	}
	return m
}()
