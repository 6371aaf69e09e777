package security

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/p2p"
)

func init() {
	httpapi.Classify(http.StatusNotFound, "not_found", ErrNotFound, ErrSecretNotFound, ErrNamespaceNotFound)
	httpapi.Classify(http.StatusConflict, "secret_key", ErrSecretKey)
}

func (s *Service) registerRoutes(srv *httpapi.Server) {
	srv.Handle("POST /v1/acl/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req api.TokenCreateRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		t, secret, err := s.CreateToken(req, s.Caller(r.Context()).label())
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusCreated, api.TokenCreated{TokenInfo: t.Info(s.cfg.Now()), Secret: secret})
	})
	srv.Handle("GET /v1/acl/tokens", func(w http.ResponseWriter, r *http.Request) {
		now := s.cfg.Now()
		out := []api.TokenInfo{}
		for _, t := range s.Tokens() {
			out = append(out, t.Info(now))
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
	})
	srv.Handle("GET /v1/acl/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, err := s.findToken(r.PathValue("id"))
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, t.Info(s.cfg.Now()))
	})
	srv.Handle("DELETE /v1/acl/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, err := s.RevokeToken(r.PathValue("id"), s.Caller(r.Context()).label())
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, t.Info(s.cfg.Now()))
	})
	srv.Handle("GET /v1/acl/whoami", func(w http.ResponseWriter, r *http.Request) {
		id := s.Caller(r.Context())
		httpapi.WriteJSON(w, http.StatusOK, api.WhoAmI{Kind: id.Kind, Name: id.Name, ID: id.ID, Role: id.Role, Namespace: id.Namespace})
	})
	srv.Handle("POST /v1/acl/roles", func(w http.ResponseWriter, r *http.Request) {
		var req api.RoleRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		rr, err := s.CreateRole(req, s.Caller(r.Context()).label())
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusCreated, roleInfo(rr))
	})
	srv.Handle("GET /v1/acl/roles", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, s.Roles())
	})
	srv.Handle("GET /v1/acl/roles/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, ri := range s.Roles() {
			if ri.Name == r.PathValue("name") {
				httpapi.WriteJSON(w, http.StatusOK, ri)
				return
			}
		}
		httpapi.WriteErr(w, fmt.Errorf("%w: no role %q ('constellation role list')", ErrNotFound, r.PathValue("name")))
	})
	srv.Handle("DELETE /v1/acl/roles/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RemoveRole(r.PathValue("name")); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"name": r.PathValue("name"), "status": "removed"})
	})
	s.registerSecretRoutes(srv)
	s.registerNamespaceRoutes(srv)
	srv.Handle("GET /v1/audit", s.handleAudit)
	srv.Handle("GET /v1/audit/verify", s.handleVerify)
}

// label names an identity in records (created_by, revoked_by).
func (id Identity) label() string {
	if id.Kind == "token" {
		return "token " + id.Name + " (" + id.ID + ")"
	}
	if id.Kind == "instance" {
		return "instance " + id.Name
	}
	return id.Kind
}

// observe records every mutating request in the audit log (httpapi.Observer).
func (s *Service) observe(r *http.Request, pattern string, status int, start time.Time) {
	if !Mutates(pattern) {
		return
	}
	id := s.Caller(r.Context())
	target := r.URL.Path
	e := api.AuditEntry{Time: start.UTC(), Caller: id.Name, CallerID: id.ID, Kind: id.Kind, Method: r.Method,
		Route: pattern, Target: target, Status: status, RequestID: httpapi.RequestID(r.Context())}
	if err := s.audit.append(e); err != nil {
		s.log.Error("audit log append failed", "err", err)
	}
}

// Record appends an entry for a mutating call that did not come through the node's API
// routes (e.g. a request forwarded from another node).
func (s *Service) Record(e api.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.cfg.Now().UTC()
	}
	return s.audit.append(e)
}

// ---- cluster-wide audit queries ----

const (
	// securityProtocol carries audit queries and verifications, and revocations pushed to
	// every live member at once (the gossip may take an anti-entropy round to reach some).
	securityProtocol = "security/1.0.0"
	// maxAuditFrame bounds an answer (maxAuditResults entries of ~1 KiB with margin).
	maxAuditFrame = 4 << 20
)

type auditRequest struct {
	Op    string     `cbor:"1,keyasint"` // "query", "verify" or "delta"
	Query auditQuery `cbor:"2,keyasint"`
	Delta []byte     `cbor:"3,keyasint,omitempty"` // op delta: a state delta (a revocation)
}

type auditAnswer struct {
	Entries []api.AuditEntry `cbor:"1,keyasint,omitempty"`
	Verify  api.AuditVerify  `cbor:"2,keyasint"`
	Error   string           `cbor:"3,keyasint,omitempty"`
}

func (s *Service) startAuditProto() error {
	if s.host == nil {
		return nil
	}
	svc, err := s.host.NewService(securityProtocol, p2p.ServiceConfig{MaxFrame: maxAuditFrame, ReadTimeout: 10 * time.Second}, s.handleAuditProto)
	if err != nil {
		return err
	}
	s.proto = svc
	return nil
}

func (s *Service) handleAuditProto(ctx context.Context, st *p2p.Stream) error {
	var req auditRequest
	if err := st.ReadMsg(&req); err != nil {
		return err
	}
	if req.Op == "delta" {
		// The same trust as the gossip that carries every delta: admitted members only.
		a := auditAnswer{}
		if err := s.st.Apply(st.Peer(), req.Delta); err != nil {
			a.Error = err.Error()
		}
		return st.WriteMsg(a)
	}
	return st.WriteMsg(s.answer(req))
}

func (s *Service) answer(req auditRequest) auditAnswer {
	switch req.Op {
	case "query":
		es, err := s.audit.query(req.Query)
		if err != nil {
			return auditAnswer{Error: err.Error()}
		}
		return auditAnswer{Entries: es}
	case "verify":
		return auditAnswer{Verify: s.audit.verify()}
	}
	return auditAnswer{Error: fmt.Sprintf("unknown audit operation %q", req.Op)}
}

// pushDelta sends a state delta to every live member directly (in the background; Close
// waits), so a revocation does not wait for gossip or anti-entropy.
func (s *Service) pushDelta(delta []byte) {
	if len(delta) == 0 || s.proto == nil || s.members == nil {
		return
	}
	for _, n := range s.members.Nodes() {
		if n.Self || n.Status != api.StatusAlive {
			continue
		}
		p, err := peer.Decode(n.ID)
		if err != nil {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			defer cancel()
			var a auditAnswer
			if err := s.proto.CallMsg(ctx, p, auditRequest{Op: "delta", Delta: delta}, &a); err != nil {
				s.log.Debug("revocation push failed (gossip still carries it)", "node", n.Name, "err", err)
			}
		}()
	}
}

// fanOut asks every live member (this node locally) and returns the answers by node name.
func (s *Service) fanOut(ctx context.Context, req auditRequest) (map[string]auditAnswer, map[string]string) {
	out := map[string]auditAnswer{s.cfg.Name: s.answer(req)}
	errs := map[string]string{}
	if s.members == nil || s.proto == nil {
		return out, errs
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range s.members.Nodes() {
		if n.Self || n.Status != api.StatusAlive {
			if !n.Self {
				errs[n.Name] = "node is " + n.Status
			}
			continue
		}
		p, err := peer.Decode(n.ID)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func(name string, p peer.ID) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var a auditAnswer
			err := s.proto.CallMsg(cctx, p, req, &a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[name] = err.Error()
				return
			}
			out[name] = a
		}(n.Name, p)
	}
	wg.Wait()
	return out, errs
}

// handleAudit is GET /v1/audit?since=1h&who=NAME&route=SUBSTR&limit=N&node=local.
func (s *Service) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var aq auditQuery
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t, err2 := time.Parse(time.RFC3339, v)
			if err2 != nil {
				httpapi.WriteErr(w, httpapi.BadRequest("invalid since %q: a duration such as 1h or an RFC 3339 time such as 2026-01-02T15:04:05Z", v))
				return
			}
			aq.Since = t.UnixNano()
		} else {
			aq.Since = s.cfg.Now().Add(-d).UnixNano()
		}
	}
	aq.Who, aq.Route = q.Get("who"), q.Get("route")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditResults {
			httpapi.WriteErr(w, httpapi.BadRequest("invalid limit %q: 1-%d", v, maxAuditResults))
			return
		}
		aq.Limit = n
	}
	answers, errs := s.fanOut(r.Context(), auditRequest{Op: "query", Query: aq})
	res := api.AuditResult{Entries: []api.AuditEntry{}}
	for name, a := range answers {
		if a.Error != "" {
			errs[name] = a.Error
		}
		res.Entries = append(res.Entries, a.Entries...)
	}
	sort.SliceStable(res.Entries, func(i, j int) bool {
		a, b := res.Entries[i], res.Entries[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return a.Seq < b.Seq
	})
	if aq.Limit > 0 && len(res.Entries) > aq.Limit {
		res.Entries = res.Entries[len(res.Entries)-aq.Limit:]
	}
	if len(errs) > 0 {
		res.Errors = errs
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// handleVerify is GET /v1/audit/verify: every live node checks its own chain.
func (s *Service) handleVerify(w http.ResponseWriter, r *http.Request) {
	answers, errs := s.fanOut(r.Context(), auditRequest{Op: "verify"})
	out := []api.AuditVerify{}
	for name, a := range answers {
		v := a.Verify
		if a.Error != "" {
			v = api.AuditVerify{Node: name, Error: a.Error}
		}
		if v.Node == "" {
			v.Node = name
		}
		out = append(out, v)
	}
	for name, e := range errs {
		out = append(out, api.AuditVerify{Node: name, Error: "not checked: " + e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	httpapi.WriteJSON(w, http.StatusOK, out)
}
