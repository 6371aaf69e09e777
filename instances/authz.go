package instances

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sched"
)

// Instance tokens are scoped. A request that comes from an instance (its socket, or a
// forwarded request naming it) may by default act only on that instance: show, stats,
// logs, wait, start, stop, restart without new limits, snapshot and restore (its own
// snapshots: a snapshot restores only into the instance it belongs to). Everything else is
// an explicit grant given at create (`create --grant G`, field "grants"), from this set:
const (
	// GrantInstancesRead: list every instance and show, stats, logs and wait on any.
	// Other instances' env is never shown to an instance.
	GrantInstancesRead = "instances:read"
	// GrantInstancesManage: start, stop, restart, snapshot, restore and remove any instance
	// (implies instances:read). Limits stay an admin's (or the creator's) decision.
	GrantInstancesManage = "instances:manage"
	// GrantInstancesCreate: create instances (children: no uid/gid, no reservation, at most
	// the creator's grants) and manage the children it created, limits and removal included.
	GrantInstancesCreate = "instances:create"
	// GrantDeploymentsRead: list and show deployments.
	GrantDeploymentsRead = "deployments:read"
	// GrantDeploymentsWrite: create, change, scale and remove deployments (implies
	// deployments:read); priorities above normal stay an admin's.
	GrantDeploymentsWrite = "deployments:write"
	// GrantNodesRead: the node's status, the node list and the cluster's resources.
	GrantNodesRead = "nodes:read"
	// GrantEventsRead: the cluster's event stream.
	GrantEventsRead = "events:read"
	// GrantMessagesSend: send a message to a node and broadcast.
	GrantMessagesSend = "messages:send"
)

// AllGrants lists the grants in the order the documentation gives them.
var AllGrants = []string{GrantInstancesRead, GrantInstancesManage, GrantInstancesCreate, GrantDeploymentsRead,
	GrantDeploymentsWrite, GrantNodesRead, GrantEventsRead, GrantMessagesSend}

// maxGrants bounds the grants a forwarded request may carry.
const maxGrants = 16

// ParseGrants checks a create's grants and returns them sorted without duplicates (nil
// for none); an unknown grant is a 400 naming the known ones.
func ParseGrants(gs []string) ([]string, error) {
	var out []string
	for _, g := range gs {
		if !slices.Contains(AllGrants, g) {
			return nil, httpapi.BadRequest(`invalid field "grants": unknown grant %q; known: %s`, g, strings.Join(AllGrants, ", "))
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out, nil
}

// caller is the instance a request comes from: the instance whose socket it arrived on,
// or the one a forwarded request names (the forwarding node authenticated it).
type caller struct {
	name   string
	id     string   // the instance's ID (a recreated instance of the same name is another caller)
	grants []string // as stored with the instance; unknown names grant nothing
}

// has reports whether c holds grant g (manage implies read, write implies read).
func (c caller) has(g string) bool {
	if slices.Contains(c.grants, g) {
		return true
	}
	switch g {
	case GrantInstancesRead:
		return slices.Contains(c.grants, GrantInstancesManage)
	case GrantDeploymentsRead:
		return slices.Contains(c.grants, GrantDeploymentsWrite)
	}
	return false
}

// withCaller marks a request context as coming from instance c.
func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, ctxInstance, c)
}

// callerOf returns the instance a request comes from (ok false: an admin caller: the
// node's 0600 socket or the token-protected TCP API).
func callerOf(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(ctxInstance).(caller)
	return c, ok
}

// CallerInstance names the instance a request comes from (ok false: an admin caller).
// Features whose routes accept instance callers stamp what they store with it.
func CallerInstance(ctx context.Context) (name string, ok bool) {
	c, ok := callerOf(ctx)
	return c.name, ok
}

// access is how a route treats instance callers.
type access int

const (
	adminOnly   access = iota // never for an instance token
	needsGrant                // needs rule.grant
	anyInstance               // every instance; the handler narrows the answer (list)
	instanceOp                // on the {name} instance: handleOp decides per target (authorizeOp)
)

// rule is a route's treatment of instance callers.
type rule struct {
	access access
	grant  string
	// check, when set, runs after the grant check (it may read and restore the body).
	check func(c caller, r *http.Request) error
}

// routeRules classifies every route of the node's API for instance callers, keyed by
// the pattern the route is registered with. A route missing here is refused to every
// instance (and fails the route-by-route test in package node).
var routeRules = map[string]rule{
	// node
	"GET /v1/status":     {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/nodes":      {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/events":     {access: needsGrant, grant: GrantEventsRead},
	"POST /v1/send":      {access: needsGrant, grant: GrantMessagesSend},
	"POST /v1/broadcast": {access: needsGrant, grant: GrantMessagesSend},
	// instances
	"POST /v1/instances":                          {access: needsGrant, grant: GrantInstancesCreate},
	"GET /v1/instances":                           {access: anyInstance},
	"GET /v1/instances/{name}":                    {access: instanceOp},
	"DELETE /v1/instances/{name}":                 {access: instanceOp},
	"GET /v1/instances/{name}/stats":              {access: instanceOp},
	"GET /v1/instances/{name}/logs":               {access: instanceOp},
	"POST /v1/instances/{name}/start":             {access: instanceOp},
	"POST /v1/instances/{name}/stop":              {access: instanceOp},
	"POST /v1/instances/{name}/restart":           {access: instanceOp},
	"POST /v1/instances/{name}/set-limits":        {access: instanceOp},
	"POST /v1/instances/{name}/wait":              {access: instanceOp},
	"POST /v1/instances/{name}/snapshot":          {access: instanceOp},
	"POST /v1/instances/{name}/restore":           {access: instanceOp},
	"GET /v1/instances/{name}/snapshots":          {access: instanceOp},
	"DELETE /v1/instances/{name}/snapshots/{tag}": {access: instanceOp},
	"GET /v1/resources":                           {access: needsGrant, grant: GrantNodesRead},
	// scheduling
	"POST /v1/deployments":              {access: needsGrant, grant: GrantDeploymentsWrite, check: checkDeployPriority},
	"GET /v1/deployments":               {access: needsGrant, grant: GrantDeploymentsRead},
	"GET /v1/deployments/{name}":        {access: needsGrant, grant: GrantDeploymentsRead},
	"POST /v1/deployments/{name}/scale": {access: needsGrant, grant: GrantDeploymentsWrite},
	"DELETE /v1/deployments/{name}":     {access: needsGrant, grant: GrantDeploymentsWrite},
	"POST /v1/nodes/{node}/drain":       {access: adminOnly},
	"POST /v1/drain":                    {access: adminOnly},
	"POST /v1/reservations":             {access: adminOnly},
	"GET /v1/reservations":              {access: adminOnly},
	"DELETE /v1/reservations/{id}":      {access: adminOnly},
	"PUT /v1/quotas/{ns}":               {access: adminOnly},
	"GET /v1/quotas/{ns}":               {access: adminOnly},
	"GET /v1/quotas":                    {access: adminOnly},
	"PATCH /v1/quotas/{ns}":             {access: adminOnly},
	"DELETE /v1/quotas/{ns}":            {access: adminOnly},
	// monitoring: an instance submits its own log entries and spans (stamped with its
	// name); searching the cluster's logs and traces is for admins.
	// alerting: rules, silences and channels (which hold credentials) are an admin's
	"GET /v1/monitor/rules":                   {access: adminOnly},
	"POST /v1/monitor/rules":                  {access: adminOnly},
	"GET /v1/monitor/rules/{name}":            {access: adminOnly},
	"DELETE /v1/monitor/rules/{name}":         {access: adminOnly},
	"GET /v1/monitor/alerts":                  {access: adminOnly},
	"GET /v1/monitor/silences":                {access: adminOnly},
	"POST /v1/monitor/silences":               {access: adminOnly},
	"DELETE /v1/monitor/silences/{id}":        {access: adminOnly},
	"GET /v1/monitor/channels":                {access: adminOnly},
	"POST /v1/monitor/channels":               {access: adminOnly},
	"DELETE /v1/monitor/channels/{name}":      {access: adminOnly},
	"POST /v1/monitor/channels/{name}/test":   {access: adminOnly},
	"GET /v1/monitor/channels/{name}/history": {access: adminOnly},
	"POST /v1/monitor/logs":                   {access: anyInstance},
	"POST /v1/monitor/spans":                  {access: anyInstance},
	"GET /v1/monitor/logs":                    {access: adminOnly},
	"GET /v1/monitor/traces":                  {access: adminOnly},
	"GET /v1/monitor/traces/{trace}":          {access: adminOnly},
	// security (tokens, roles, audit): admin callers and API tokens only
	"POST /v1/acl/tokens":         {access: adminOnly},
	"GET /v1/acl/tokens":          {access: adminOnly},
	"GET /v1/acl/tokens/{id}":     {access: adminOnly},
	"DELETE /v1/acl/tokens/{id}":  {access: adminOnly},
	"GET /v1/acl/whoami":          {access: anyInstance},
	"POST /v1/acl/roles":          {access: adminOnly},
	"GET /v1/acl/roles":           {access: adminOnly},
	"GET /v1/acl/roles/{name}":    {access: adminOnly},
	"DELETE /v1/acl/roles/{name}": {access: adminOnly},
	// web dashboard sessions: for browsers, not instances
	"POST /ui/login":           {access: adminOnly},
	"GET /ui/session":          {access: adminOnly},
	"POST /ui/logout":          {access: adminOnly},
	"GET /v1/cluster/overview": {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/audit":            {access: adminOnly},
	"GET /v1/audit/verify":     {access: adminOnly},
	// secrets: an instance gets its own at start (env), never through the API
	"GET /v1/secrets":                     {access: adminOnly},
	"PUT /v1/secrets/{ns}/{name}":         {access: adminOnly},
	"GET /v1/secrets/{ns}/{name}":         {access: adminOnly},
	"DELETE /v1/secrets/{ns}/{name}":      {access: adminOnly},
	"POST /v1/secrets/{ns}/{name}/reveal": {access: adminOnly},
	"POST /v1/secrets/rotate-key":         {access: adminOnly},
	"POST /v1/namespaces":                 {access: adminOnly},
	"GET /v1/namespaces":                  {access: adminOnly},
	"GET /v1/namespaces/{ns}":             {access: adminOnly},
	"DELETE /v1/namespaces/{ns}":          {access: adminOnly},
	// service mesh: instances call services through their own mesh socket (which carries
	// their identity), so calling through the API and changing the registry stay an
	// admin's; reading it is like reading the nodes; every instance may trace.
	"GET /v1/mesh/services":                {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/mesh/services/{name}":         {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/mesh/intentions":              {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/mesh/metrics/{name}":          {access: needsGrant, grant: GrantNodesRead},
	"POST /v1/mesh/spans":                  {access: anyInstance},
	"POST /v1/mesh/services":               {access: adminOnly},
	"POST /v1/mesh/deregister":             {access: adminOnly},
	"POST /v1/mesh/services/{name}/config": {access: adminOnly},
	"POST /v1/mesh/intentions":             {access: adminOnly},
	"POST /v1/mesh/mtls":                   {access: adminOnly},
	"POST /v1/mesh/call":                   {access: adminOnly},
	// monitoring (package telemetry)
	"GET /metrics":                     {access: needsGrant, grant: GrantNodesRead},
	"GET /api/v1/query":                {access: needsGrant, grant: GrantNodesRead},
	"POST /api/v1/query":               {access: needsGrant, grant: GrantNodesRead},
	"GET /api/v1/query_range":          {access: needsGrant, grant: GrantNodesRead},
	"POST /api/v1/query_range":         {access: needsGrant, grant: GrantNodesRead},
	"GET /api/v1/series":               {access: needsGrant, grant: GrantNodesRead},
	"POST /api/v1/series":              {access: needsGrant, grant: GrantNodesRead},
	"GET /api/v1/labels":               {access: needsGrant, grant: GrantNodesRead},
	"POST /api/v1/labels":              {access: needsGrant, grant: GrantNodesRead},
	"GET /api/v1/label/{name}/values":  {access: needsGrant, grant: GrantNodesRead},
	"GET /api/v1/status/buildinfo":     {access: needsGrant, grant: GrantNodesRead},
	"POST /v1/monitor/query":           {access: needsGrant, grant: GrantNodesRead},
	"GET /v1/monitor/dashboard":        {access: needsGrant, grant: GrantNodesRead},
	"POST /v1/monitor/metrics":         {access: anyInstance},
	"GET /v1/debug/pprof/{node}":       {access: adminOnly},
	"POST /v1/monitor/checks":          {access: adminOnly},
	"GET /v1/monitor/checks":           {access: needsGrant, grant: GrantNodesRead},
	"DELETE /v1/monitor/checks/{name}": {access: adminOnly},
}

// forbidden is the 403 every refusal of an instance caller answers with.
func forbidden(format string, args ...any) error {
	return httpapi.Errorf(http.StatusForbidden, "forbidden", format, args...)
}

// guard applies routeRules to instance callers (httpapi.Guard; also in front of the
// forwarded-request mux). Admin callers pass.
func (m *Service) guard(w http.ResponseWriter, r *http.Request, pattern string) bool {
	c, ok := callerOf(r.Context())
	if !ok {
		return true
	}
	if err := checkRoute(c, r, pattern); err != nil {
		httpapi.WriteErr(w, err)
		return false
	}
	return true
}

func checkRoute(c caller, r *http.Request, pattern string) error {
	ru, ok := routeRules[pattern]
	if !ok {
		return forbidden("instance %s may not call %s: the route is for admin callers only", c.name, pattern)
	}
	switch ru.access {
	case adminOnly:
		return forbidden("instance %s may not call %s: the route is for admin callers only (the node's socket or admin token)", c.name, pattern)
	case needsGrant:
		if !c.has(ru.grant) {
			return forbidden("instance %s may not call %s: it needs the grant %s (given at create: --grant %s)", c.name, pattern, ru.grant, ru.grant)
		}
	}
	if ru.check != nil {
		return ru.check(c, r)
	}
	return nil
}

// checkDeployPriority refuses deployments above normal priority from instances (they
// could preempt the operator's work). The body is read and put back for the handler.
func checkDeployPriority(c caller, r *http.Request) error {
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var spec struct {
		Priority *api.Priority `json:"priority"`
		Secrets  []string      `json:"secrets"`
	}
	if json.Unmarshal(body, &spec) == nil && spec.Priority != nil && int(*spec.Priority) > sched.PriorityNormal {
		return forbidden("instance %s may not deploy with priority %d: above normal (%d) is for admin callers only", c.name, *spec.Priority, sched.PriorityNormal)
	}
	if len(spec.Secrets) > 0 {
		return forbidden("instance %s may not deploy with secrets: giving secrets to instances is for admin callers and API tokens only", c.name)
	}
	return nil
}

// target is what authorizeOp knows of the instance an operation names.
type target struct {
	name      string
	id        string
	createdBy string // the creating instance's name and ID ("": an admin or a deployment)
	creatorID string
}

// isSelf and isChildOf relate a target to the caller.
func (t target) isSelf(c caller) bool { return t.name == c.name && t.id == c.id && c.id != "" }
func (t target) isChildOf(c caller) bool {
	return t.createdBy != "" && t.createdBy == c.name && t.creatorID == c.id && c.id != ""
}

// opNeeds is what an operation on another instance (neither the caller nor its child)
// needs; "" means admin callers only.
var opNeeds = map[string]string{
	"show": GrantInstancesRead, "stats": GrantInstancesRead, "logs": GrantInstancesRead, "wait": GrantInstancesRead,
	"start": GrantInstancesManage, "stop": GrantInstancesManage, "restart": GrantInstancesManage,
	"snapshot": GrantInstancesManage, "restore": GrantInstancesManage, "rm": GrantInstancesManage,
	"snapshots": GrantInstancesRead, "snapshot-rm": GrantInstancesManage,
	"set-limits": "",
}

// authorizeOp decides an instance caller's operation op on instance t (body: the
// request's, to tell a restart with new limits). The node that serves the operation
// decides: the instance's own node, or the node answering from the replicated record.
func authorizeOp(c caller, op string, t target, body []byte) error {
	limits := op == "set-limits" || op == "restart" && changesLimits(body)
	switch {
	case t.isChildOf(c):
		return nil
	case t.isSelf(c):
		switch {
		case op == "rm":
			return forbidden("instance %s may not remove itself: removal destroys its data and snapshots; its creator or an admin removes it", c.name)
		case limits:
			return forbidden("instance %s may not change its own limits: limits are set by an admin or the instance's creator", c.name)
		}
		return nil
	}
	need, known := opNeeds[op]
	switch {
	case !known || need == "" || limits:
		return forbidden("instance %s may not %s instance %s: changing another instance's limits is for admin callers and its creator only", c.name, opVerb(op), t.name)
	case !c.has(need):
		return forbidden("instance %s may not %s instance %s: it needs the grant %s (given at create: --grant %s)", c.name, opVerb(op), t.name, need, need)
	}
	return nil
}

func opVerb(op string) string {
	switch op {
	case "rm":
		return "remove"
	case "show":
		return "show"
	case "set-limits":
		return "set the limits of"
	case "logs":
		return "read the logs of"
	case "stats":
		return "read the stats of"
	case "wait":
		return "wait for"
	}
	return op
}

// changesLimits reports whether a restart body asks for new limits (a malformed body
// counts as asking: the handler refuses it anyway).
func changesLimits(body []byte) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		return false
	}
	var req api.LimitsRequest
	if json.Unmarshal(body, &req) != nil {
		return true
	}
	return req.CPUPercent != nil || req.CPUCores != nil || req.RAMMB != nil || req.DiskMB != nil || req.PIDs != nil
}

// childFields are the create fields an instance may set for a child; any other (uid, gid,
// reservation, and every field added later until it is listed here) is for admin callers.
var childFields = []string{"name", "namespace", "node", "command", "script", "script_content", "runtime", "args",
	"env", "code", "cpu_percent", "cpu_cores", "ram_mb", "ram_gb", "disk_mb", "pids", "restart", "network", "start", "grants",
	"metrics_port"}

// checkCreate applies the child rules to a create from instance c: only childFields (no
// uid/gid: the default unprivileged user; no reservation), grants at most the caller's own.
func checkCreate(c caller, req *api.CreateRequest) error {
	if req.UID != nil || req.GID != nil {
		return forbidden(`instance %s may not set "uid" or "gid": instances create instances as the default unprivileged user`, c.name)
	}
	if req.Reservation != "" {
		return forbidden(`instance %s may not create on reservation %s: reservations are for admin callers only`, c.name, req.Reservation)
	}
	if req.Network == "host" {
		return forbidden(`instance %s may not create an instance on the host network: that is for admin callers only (use bridge or none)`, c.name)
	}
	b, _ := json.Marshal(req)
	var set map[string]json.RawMessage
	_ = json.Unmarshal(b, &set)
	for k := range set {
		if !slices.Contains(childFields, k) {
			return forbidden(`instance %s may not set %q in a create: the field is for admin callers only`, c.name, k)
		}
	}
	for _, g := range req.Grants {
		if !slices.Contains(c.grants, g) {
			return forbidden(`instance %s may not give the grant %q: a child gets at most its creator's grants (%s)`, c.name, g, grantList(c.grants))
		}
	}
	return nil
}

func grantList(gs []string) string {
	if len(gs) == 0 {
		return "none"
	}
	return strings.Join(gs, ", ")
}

// infoFor is a record as the API shows it to the request's caller: an instance caller
// sees the env of no instance but itself.
func infoFor(ctx context.Context, r Record) api.Instance {
	in := r.Info()
	if c, ok := callerOf(ctx); ok && !(target{name: r.Name, id: r.ID}).isSelf(c) {
		in.Env = nil
	}
	return in
}

// visibleTo reports whether an instance caller may see r in a list: with instances:read
// every instance, otherwise itself and its children.
func visibleTo(c caller, r Record) bool {
	t := r.target()
	return c.has(GrantInstancesRead) || t.isSelf(c) || t.isChildOf(c)
}

// target is the record's identity for authorizeOp.
func (r Record) target() target {
	return target{name: r.Name, id: r.ID, createdBy: r.CreatedBy, creatorID: r.CreatorID}
}

// CallerOf names the instance a request comes from (its own socket, or a forwarded
// request naming it); ok false for every other caller.
func CallerOf(ctx context.Context) (name, id string, ok bool) {
	c, ok := callerOf(ctx)
	return c.name, c.id, ok
}
