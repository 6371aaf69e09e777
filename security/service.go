package security

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
)

// Config configures the security service.
type Config struct {
	// Name is this node's name (audit entries).
	Name string
	// DataDir holds the audit log (<DataDir>/audit/).
	DataDir string
	// AuditRetention drops audit entries older than this (default 30 days).
	AuditRetention time.Duration
	// InstanceCaller names the instance a request comes from (its own socket or a
	// forwarded request), for the audit log (nil: none).
	InstanceCaller func(ctx context.Context) (name, id string, ok bool)
	// NamespaceOf finds the namespace of a named record of a namespaced resource
	// ("instances", "deployments", ...); ok false when it does not exist (yet).
	NamespaceOf func(resource, name string) (ns string, ok bool)
	// ClusterKey is the cluster's shared secret: secrets' data keys derive from it (no
	// key: secrets are refused).
	ClusterKey string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Host is what the service needs of the member-only host.
type Host interface {
	NewService(name string, cfg p2p.ServiceConfig, h p2p.Handler) (*p2p.Service, error)
}

// Members is what the audit query needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
}

// Service holds the cluster's tokens and roles (replicated), authenticates TCP callers,
// applies RoutePerms to every request, and keeps this node's audit log.
type Service struct {
	cfg     Config
	ctx     context.Context
	st      *state.Store
	host    Host
	members Members
	log     *slog.Logger
	audit   *auditLog
	proto   *p2p.Service
	wg      sync.WaitGroup // revocation pushes and the namespace loop
	work    Workloads
	nsWake  chan struct{}
	stopped sync.Once

	mu      sync.RWMutex // guards tokens, roles and streams
	tokens  map[string]*TokenRecord
	roles   map[string]*Policy // custom roles
	streams map[string]map[*int]context.CancelFunc
}

// New builds the service and registers its routes, guard, authenticator and observer on srv.
func New(ctx context.Context, cfg Config, h Host, members Members, st *state.Store, srv *httpapi.Server, log *slog.Logger) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AuditRetention <= 0 {
		cfg.AuditRetention = 30 * 24 * time.Hour
	}
	s := &Service{cfg: cfg, ctx: ctx, st: st, host: h, members: members, log: log.With("component", "security"),
		tokens: map[string]*TokenRecord{}, roles: map[string]*Policy{}, streams: map[string]map[*int]context.CancelFunc{},
		nsWake: make(chan struct{}, 1)}
	a, err := openAudit(cfg.DataDir, cfg.Name, cfg.AuditRetention, cfg.Now)
	if err != nil {
		return nil, err
	}
	s.audit = a
	for _, note := range a.Notes {
		s.log.Warn("audit log repaired at open", "path", a.path(), "note", note)
	}
	st.Watch(func(cs []crdt.Change) {
		for _, c := range cs {
			s.reload(c.Collection, c.Key)
		}
	}, CollTokens, CollRoles)
	st.Watch(func([]crdt.Change) { s.kick() }, CollNamespaces)
	s.registerRoutes(srv)
	srv.SetAuthenticator(s.authenticate)
	srv.SetGuard(s.guard)
	srv.SetObserver(s.observe)
	return s, nil
}

// Start loads the replicated tokens and roles and starts the audit protocol.
func (s *Service) Start() error {
	var tk, rl []string
	s.st.View(func(v *state.View) { tk, rl = v.Keys(CollTokens), v.Keys(CollRoles) })
	for _, k := range tk {
		s.reload(CollTokens, k)
	}
	for _, k := range rl {
		s.reload(CollRoles, k)
	}
	if err := s.startAuditProto(); err != nil {
		return err
	}
	s.wg.Add(1)
	go s.namespaceLoop()
	return nil
}

// Stop ends the namespace loop, the protocol and the revocation pushes (the node's
// context is cancelled first); the audit log stays open for requests still answering.
func (s *Service) Stop() {
	s.stopped.Do(func() {
		if s.proto != nil {
			s.proto.Close()
		}
		s.wg.Wait()
	})
}

// Close stops the audit protocol and closes the log.
func (s *Service) Close() {
	s.Stop()
	s.audit.close()
}

// reload refreshes the cache of one key from the store and ends the streams of a token
// that is now revoked.
func (s *Service) reload(coll, key string) {
	b, ok := s.get(coll, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch coll {
	case CollTokens:
		var t TokenRecord
		if !ok || state.Decode(b, &t) != nil || t.ID != key {
			delete(s.tokens, key)
			return
		}
		s.tokens[key] = &t
		if t.Revoked != 0 {
			for _, cancel := range s.streams[key] {
				cancel()
			}
			delete(s.streams, key)
		}
	case CollRoles:
		var r RoleRecord
		if !ok || state.Decode(b, &r) != nil || r.Name != key {
			delete(s.roles, key)
			return
		}
		rules, err := ParseRules(r.Rules)
		if err != nil {
			s.log.Warn("ignoring a role with bad rules", "role", key, "err", err)
			delete(s.roles, key)
			return
		}
		s.roles[key] = Compile(rules)
	}
}

func (s *Service) get(coll, key string) ([]byte, bool) {
	var b []byte
	var ok bool
	s.st.View(func(v *state.View) { b, _, ok = v.GetLWW(coll, key) })
	return b, ok
}

// ---- identities ----

// Identity is the caller of a request.
type Identity struct {
	Kind      string // socket, bootstrap, token, instance
	Name      string
	ID        string
	Role      string
	Namespace string
	policy    *Policy
}

type ctxKey struct{}

// IdentityOf returns the token identity of a request (ok false: not a token caller).
func IdentityOf(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Caller is the identity of any request: a token, the bootstrap token, an instance or
// the node's socket.
func (s *Service) Caller(ctx context.Context) Identity {
	if id, ok := IdentityOf(ctx); ok {
		return id
	}
	if httpapi.IsBootstrap(ctx) {
		return Identity{Kind: "bootstrap", Name: "bootstrap", Role: RoleAdmin}
	}
	if s.cfg.InstanceCaller != nil {
		if name, id, ok := s.cfg.InstanceCaller(ctx); ok {
			return Identity{Kind: "instance", Name: name, ID: id, Role: "instance"}
		}
	}
	return Identity{Kind: "socket", Name: "socket", Role: RoleAdmin}
}

func unauthorized(reason error) error {
	return httpapi.Errorf(http.StatusUnauthorized, "unauthorized", "%v", reason)
}

// policyOf is the compiled role (nil: the role does not exist).
func (s *Service) policyOf(role string) *Policy {
	if p, ok := builtinPolicies[role]; ok {
		return p
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.roles[role]
}

// Authenticate checks a bearer token (not the bootstrap one) at the current time.
func (s *Service) Authenticate(bearer string) (Identity, *TokenRecord, error) {
	id, sec, ok := parseToken(bearer)
	if !ok {
		return Identity{}, nil, unauthorized(errors.New("missing or wrong bearer token: not the node's api.token and not a token from 'constellation token create' (cst_...)"))
	}
	s.mu.RLock()
	t := s.tokens[id]
	s.mu.RUnlock()
	if t == nil {
		return Identity{}, nil, unauthorized(fmt.Errorf("%w %s: not known to node %s (revoked and removed, another cluster's, or not replicated here yet)", ErrTokenUnknown, id, s.cfg.Name))
	}
	if err := t.check(sec, s.cfg.Now()); err != nil {
		return Identity{}, nil, unauthorized(fmt.Errorf("token %s (%s): %w", t.Name, t.ID, err))
	}
	p := s.policyOf(t.Role)
	if p == nil {
		return Identity{}, nil, unauthorized(fmt.Errorf("token %s (%s): its role %q no longer exists", t.Name, t.ID, t.Role))
	}
	return Identity{Kind: "token", Name: t.Name, ID: t.ID, Role: t.Role, Namespace: t.Namespace, policy: p}, t, nil
}

// authenticate is the TCP listener's httpapi.Authenticator. The request's context ends
// when the token is revoked (streams such as logs -f and events end) or expires.
func (s *Service) authenticate(r *http.Request, bearer string) (*http.Request, func(), error) {
	ident, t, err := s.Authenticate(bearer)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), ctxKey{}, ident))
	if t.Expires != 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, time.Unix(0, t.Expires))
		prev := cancel
		cancel = func() { c2(); prev() }
	}
	key := new(int)
	s.mu.Lock()
	if s.tokens[t.ID] != nil && s.tokens[t.ID].Revoked != 0 { // revoked since Authenticate
		s.mu.Unlock()
		cancel()
		return nil, nil, unauthorized(fmt.Errorf("token %s (%s): %w", t.Name, t.ID, ErrTokenRevoked))
	}
	if s.streams[t.ID] == nil {
		s.streams[t.ID] = map[*int]context.CancelFunc{}
	}
	s.streams[t.ID][key] = cancel
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		delete(s.streams[t.ID], key)
		if len(s.streams[t.ID]) == 0 {
			delete(s.streams, t.ID)
		}
		s.mu.Unlock()
		cancel()
	}
	return r.WithContext(ctx), done, nil
}

func forbidden(format string, args ...any) error {
	return httpapi.Errorf(http.StatusForbidden, "forbidden", format, args...)
}

// Authorize decides whether identity id may call the route pattern (the permission table
// and the role; a namespace-bound token's namespace is checked by the guard).
func Authorize(id Identity, pattern string) (Perm, error) {
	perm, ok := RoutePerms[pattern]
	if !ok {
		return "", forbidden("token %s may not call %s: the route declares no permission (security.RoutePerms); only the node's socket and bootstrap token may", id.Name, pattern)
	}
	if id.policy == nil || !id.policy.Allows(perm) {
		return perm, forbidden("token %s (role %s) may not call %s: it needs the permission %s", id.Name, id.Role, pattern, perm)
	}
	return perm, nil
}

// guard applies the permission table to token callers (httpapi.Guard). Socket, bootstrap
// and instance callers pass (the instance service's guard rules the instances).
func (s *Service) guard(w http.ResponseWriter, r *http.Request, pattern string) bool {
	id, ok := IdentityOf(r.Context())
	if !ok {
		return true
	}
	perm, err := Authorize(id, pattern)
	if err == nil && id.Namespace != "" {
		err = s.checkNamespace(id, r, pattern, perm)
	}
	if err != nil {
		httpapi.WriteErr(w, err)
		return false
	}
	return true
}

// clusterReadsForNamespaced are the cluster-wide permissions a namespace-bound token may
// still use (to see where its workloads can go).
var clusterReadsForNamespaced = []Perm{"nodes:read", Public}

// checkNamespace keeps a namespace-bound token inside its namespace: named records must be
// in it, creates land in it (a body without a namespace gets it), lists are filtered to it.
func (s *Service) checkNamespace(id Identity, r *http.Request, pattern string, perm Perm) error {
	res := perm.Resource()
	if !slices.Contains(NamespacedResources, res) {
		if slices.Contains(clusterReadsForNamespaced, perm) {
			return nil
		}
		return forbidden("token %s is bound to namespace %s: it may not call the cluster-wide route %s (%s)", id.Name, id.Namespace, pattern, perm)
	}
	if ns := r.PathValue("ns"); ns != "" {
		if ns != id.Namespace {
			return forbidden("token %s is bound to namespace %s: it may not use namespace %s", id.Name, id.Namespace, ns)
		}
		return nil
	}
	if name := r.PathValue("name"); name != "" {
		ns, ok := "", false
		if s.cfg.NamespaceOf != nil {
			ns, ok = s.cfg.NamespaceOf(res, name)
		}
		if ok && ns != id.Namespace {
			return forbidden("token %s is bound to namespace %s: %s %s is in namespace %s", id.Name, id.Namespace, strings.TrimSuffix(res, "s"), name, ns)
		}
		if !ok && r.Method == http.MethodGet {
			return nil // the handler answers 404
		}
		return nil
	}
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		switch ns := q.Get("namespace"); ns {
		case "":
			if res != "instances" && res != "secrets" {
				return forbidden("token %s is bound to namespace %s: listing %s across namespaces is refused; ask with ?namespace=%s", id.Name, id.Namespace, res, id.Namespace)
			}
			q.Set("namespace", id.Namespace)
			r.URL.RawQuery = q.Encode()
			return nil
		case id.Namespace:
			return nil
		default:
			return forbidden("token %s is bound to namespace %s: it may not read namespace %s", id.Name, id.Namespace, ns)
		}
	}
	// A create: the body's namespace must be the token's; an empty one becomes it.
	body, err := httpapi.ReadBody(r)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil && fields != nil {
		var ns string
		_ = json.Unmarshal(fields["namespace"], &ns)
		switch ns {
		case "":
			fields["namespace"], _ = json.Marshal(id.Namespace)
			body, _ = json.Marshal(fields)
		case id.Namespace:
		default:
			return forbidden("token %s is bound to namespace %s: it may not create in namespace %s", id.Name, id.Namespace, ns)
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return nil
}

// ---- tokens and roles ----

// CreateToken stores a new token and returns its record and its secret (shown once).
func (s *Service) CreateToken(req api.TokenCreateRequest, by string) (*TokenRecord, string, error) {
	if !ValidName(req.Name) {
		return nil, "", httpapi.BadRequest(`invalid field "name" %q: %s, e.g. ci`, req.Name, NameRule)
	}
	if req.Role == "" {
		return nil, "", httpapi.BadRequest(`field "role" is required: %s or a custom role ('constellation role list')`, builtinList())
	}
	if s.policyOf(req.Role) == nil {
		return nil, "", httpapi.BadRequest(`unknown role %q: %s or a custom role ('constellation role list')`, req.Role, builtinList())
	}
	if req.Namespace != "" && !api.ValidNamespace(req.Namespace) {
		return nil, "", httpapi.BadRequest(`invalid field "namespace" %q: %s`, req.Namespace, api.NamespaceRule)
	}
	if err := s.CheckNamespace(req.Namespace); err != nil {
		return nil, "", err
	}
	now := s.cfg.Now()
	t := &TokenRecord{Name: req.Name, Role: req.Role, Namespace: req.Namespace, Created: now.UnixNano(), CreatedBy: by}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return nil, "", httpapi.BadRequest(`invalid field "ttl" %q: a positive duration such as 30m, 24h or 720h`, req.TTL)
		}
		t.Expires = now.Add(d).UnixNano()
	}
	id, secret, hash, err := newToken()
	if err != nil {
		return nil, "", err
	}
	t.ID, t.Hash = id, hash
	if err := s.put(CollTokens, id, t); err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

func builtinList() string { return "admin, operator or viewer" }

func (s *Service) put(coll, key string, v any) error {
	b, err := state.Encode(v)
	if err != nil {
		return err
	}
	if err := s.st.Update(func(tx *state.Tx) error { return tx.Put(coll, key, b) }); err != nil {
		return err
	}
	s.reload(coll, key)
	return nil
}

// Tokens lists every token, newest first.
func (s *Service) Tokens() []TokenRecord {
	s.mu.RLock()
	out := make([]TokenRecord, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, *t)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// ErrNotFound means no token or role has the given ID or name.
var ErrNotFound = errors.New("not found")

// findToken resolves an ID or a unique name.
func (s *Service) findToken(idOrName string) (TokenRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, ok := s.tokens[idOrName]; ok {
		return *t, nil
	}
	var found []TokenRecord
	for _, t := range s.tokens {
		if t.Name == idOrName && t.Revoked == 0 {
			found = append(found, *t)
		}
	}
	switch len(found) {
	case 0:
		return TokenRecord{}, fmt.Errorf("%w: no token with ID or name %q ('constellation token list')", ErrNotFound, idOrName)
	case 1:
		return found[0], nil
	}
	var ids []string
	for _, t := range found {
		ids = append(ids, t.ID)
	}
	sort.Strings(ids)
	return TokenRecord{}, httpapi.Errorf(http.StatusConflict, "conflict", "%d active tokens are named %q (%s): give the ID", len(found), idOrName, strings.Join(ids, ", "))
}

// RevokeToken marks a token revoked cluster-wide (every node refuses it, and ends its
// streams, as soon as the change reaches it).
func (s *Service) RevokeToken(idOrName, by string) (TokenRecord, error) {
	t, err := s.findToken(idOrName)
	if err != nil {
		return t, err
	}
	if t.Revoked != 0 {
		return t, nil
	}
	t.Revoked, t.RevokedBy = s.cfg.Now().UnixNano(), by
	b, err := state.Encode(&t)
	if err != nil {
		return t, err
	}
	delta, err := s.st.UpdateEncoded(func(tx *state.Tx) error { return tx.Put(CollTokens, t.ID, b) })
	if err != nil {
		return t, err
	}
	s.reload(CollTokens, t.ID)
	s.pushDelta(delta)
	return t, nil
}

// CreateRole creates or replaces a custom role.
func (s *Service) CreateRole(req api.RoleRequest, by string) (RoleRecord, error) {
	if !ValidName(req.Name) {
		return RoleRecord{}, httpapi.BadRequest(`invalid field "name" %q: %s, e.g. deployer`, req.Name, NameRule)
	}
	if _, ok := BuiltinRoles[req.Name]; ok {
		return RoleRecord{}, httpapi.BadRequest(`role %q is built in and cannot be changed; pick another name`, req.Name)
	}
	if len(req.Rules) == 0 {
		return RoleRecord{}, httpapi.BadRequest(`field "rules" is required: resource:verb rules, e.g. ["instances:read", "deployments:write"]`)
	}
	if len(req.Rules) > 64 {
		return RoleRecord{}, httpapi.BadRequest(`field "rules": %d rules, at most 64`, len(req.Rules))
	}
	rules, err := ParseRules(req.Rules)
	if err != nil {
		return RoleRecord{}, httpapi.BadRequest("invalid field \"rules\": %v", err)
	}
	rr := RoleRecord{Name: req.Name, Created: s.cfg.Now().UnixNano(), CreatedBy: by}
	for _, r := range rules {
		rr.Rules = append(rr.Rules, r.String())
	}
	return rr, s.put(CollRoles, req.Name, &rr)
}

// RemoveRole removes a custom role: tokens with it are refused from then on.
func (s *Service) RemoveRole(name string) error {
	if _, ok := BuiltinRoles[name]; ok {
		return httpapi.BadRequest(`role %q is built in and cannot be removed`, name)
	}
	if _, ok := s.get(CollRoles, name); !ok {
		return fmt.Errorf("%w: no custom role %q ('constellation role list')", ErrNotFound, name)
	}
	err := s.st.Update(func(tx *state.Tx) error { return tx.Remove(CollRoles, name) })
	s.reload(CollRoles, name)
	return err
}

// Roles lists the built-in roles then the custom ones.
func (s *Service) Roles() []api.RoleInfo {
	var out []api.RoleInfo
	for _, n := range []string{RoleAdmin, RoleOperator, RoleViewer} {
		out = append(out, api.RoleInfo{Name: n, Rules: BuiltinRoles[n], Builtin: true})
	}
	var keys []string
	s.st.View(func(v *state.View) { keys = v.Keys(CollRoles) })
	sort.Strings(keys)
	for _, k := range keys {
		b, ok := s.get(CollRoles, k)
		var r RoleRecord
		if !ok || state.Decode(b, &r) != nil {
			continue
		}
		out = append(out, roleInfo(r))
	}
	return out
}

func roleInfo(r RoleRecord) api.RoleInfo {
	c := time.Unix(0, r.Created).UTC()
	return api.RoleInfo{Name: r.Name, Rules: r.Rules, Created: &c, CreatedBy: r.CreatedBy}
}

// Info is the API view of a token at time now.
func (t TokenRecord) Info(now time.Time) api.TokenInfo {
	in := api.TokenInfo{ID: t.ID, Name: t.Name, Role: t.Role, Namespace: t.Namespace, Status: "active",
		Created: time.Unix(0, t.Created).UTC(), CreatedBy: t.CreatedBy, RevokedBy: t.RevokedBy}
	if t.Expires != 0 {
		e := time.Unix(0, t.Expires).UTC()
		in.Expires = &e
		if now.UnixNano() >= t.Expires {
			in.Status = "expired"
		}
	}
	if t.Revoked != 0 {
		rv := time.Unix(0, t.Revoked).UTC()
		in.Revoked, in.Status = &rv, "revoked"
	}
	return in
}
