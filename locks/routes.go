package locks

import (
	"context"
	"net/http"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// MaxWait bounds a blocking acquire's wait.
const MaxWait = 10 * time.Minute

// Register adds the /v1/locks routes.
func (s *Service) Register(srv *httpapi.Server) {
	srv.Handle("POST /v1/locks/acquire", s.handleAcquire)
	srv.Handle("POST /v1/locks/renew", s.handleRenew)
	srv.Handle("POST /v1/locks/release", s.handleRelease)
	srv.Handle("GET /v1/locks", s.handleList)
	srv.Handle("GET /v1/locks/status", s.handleStatus)
}

func apiLock(l Lease) api.Lock {
	return api.Lock{Path: l.Path, Holder: l.Holder, Token: l.Token, TTLMs: l.TTL.Milliseconds(), Granted: l.Granted, Expires: l.Expires}
}

// parseDur parses a duration field, naming it when it is wrong.
func parseDur(field, v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, httpapi.BadRequest("locks: %s %q is not a duration; give one such as 10s", field, v)
	}
	if d < lo || d > hi {
		return 0, httpapi.BadRequest("locks: %s %s outside %s..%s", field, d, lo, hi)
	}
	return d, nil
}

func (s *Service) handleAcquire(w http.ResponseWriter, r *http.Request) {
	var req api.LockAcquireRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	if req.TTL == "" {
		httpapi.WriteErr(w, httpapi.BadRequest("locks: ttl is missing; give the lease length such as \"10s\""))
		return
	}
	ttl, err := parseDur("ttl", req.TTL, MinTTL, MaxTTL)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	ctx := r.Context()
	wait := req.Wait != ""
	if wait {
		d, err := parseDur("wait", req.Wait, 0, MaxWait)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	l, err := s.Acquire(ctx, req.Path, req.Holder, ttl, wait)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, apiLock(l))
}

func (s *Service) handleRenew(w http.ResponseWriter, r *http.Request) {
	var req api.LockRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	l, err := s.Renew(r.Context(), req.Path, req.Token)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, apiLock(l))
}

func (s *Service) handleRelease(w http.ResponseWriter, r *http.Request) {
	var req api.LockRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	if err := s.Release(r.Context(), req.Path, req.Token); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"released": true})
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	ls, err := s.List(r.Context())
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	out := make([]api.Lock, 0, len(ls))
	for _, l := range ls {
		out = append(out, apiLock(l))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := s.Status()
	httpapi.WriteJSON(w, http.StatusOK, api.LockStatus{Self: st.Self, State: st.State, Leader: st.Leader,
		Voters: st.Voters, Nonvoters: st.Nonvoters, Term: st.Term, LastIndex: st.LastIndex, Applied: st.Applied,
		Locks: st.Locks, LastToken: st.LastToken})
}
