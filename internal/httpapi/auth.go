package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"
)

// Authenticator checks a bearer token that is not the node's bootstrap token (TCP
// listener). It returns the request to serve (its context carries the caller), a function
// called when the request ends, or the error to answer (a 401 naming the reason).
type Authenticator func(r *http.Request, bearer string) (*http.Request, func(), error)

// SetAuthenticator installs a for the TCP listener's non-bootstrap tokens.
func (s *Server) SetAuthenticator(a Authenticator) { s.authn.Store(&a) }

// Observer sees every request of a registered route once it is answered: the route's
// pattern, the status written (200 when the handler wrote none) and when it started.
type Observer func(r *http.Request, pattern string, status int, start time.Time)

// SetObserver installs o (the audit log); nil removes it.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		s.obs.Store(nil)
		return
	}
	s.obs.Store(&o)
}

type ctxKey int

const (
	ctxBootstrap ctxKey = iota
	ctxRequestID
)

// IsBootstrap reports whether the request came over TCP with the node's bootstrap token
// (<data-dir>/api.token).
func IsBootstrap(ctx context.Context) bool { v, _ := ctx.Value(ctxBootstrap).(bool); return v }

// RequestID is the request's ID: the client's X-Request-Id when it is a sane one (1-64
// letters, digits, '-', '_', '.'), else a random one; answered in X-Request-Id.
func RequestID(ctx context.Context) string { v, _ := ctx.Value(ctxRequestID).(string); return v }

func saneRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// begin gives the request its ID and, with an observer, records the status it answers.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, pattern string) (http.ResponseWriter, *http.Request, func()) {
	id := r.Header.Get("X-Request-Id")
	if !saneRequestID(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), ctxRequestID, id))
	o := s.obs.Load()
	if o == nil {
		return w, r, func() {}
	}
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	return sw, r, func() {
		st := sw.status
		if st == 0 {
			st = http.StatusOK
		}
		(*o)(r, pattern, st, start)
	}
}

// statusWriter records the first status written; it flushes for streams.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
