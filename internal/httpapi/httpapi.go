// Package httpapi serves the node's local API: one mux, the Unix socket (mode 0600) and the
// optional TCP listener (TLS 1.3 with a self-signed certificate clients pin, see
// LoadOrCreateTLS) with bearer-token auth, strict bounded JSON decoding, ONE table from
// errors to HTTP statuses and codes, and a Server-Sent Events helper. Features register
// their routes and the classes of their errors; handlers answer with WriteJSON and WriteErr.
//
// Every handler's request context is derived from the context given to New (the node's
// one shutdown signal): when the node closes, streams end at once.
package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rads-lang/constellation/api"
)

// MaxBodyBytes bounds every request body of the local API.
const MaxBodyBytes = 1 << 20

// ErrInUse means another process answers on the socket.
var ErrInUse = errors.New("API socket in use")

// Server is the local API server.
type Server struct {
	log     *slog.Logger
	mux     *http.ServeMux
	baseCtx func() context.Context

	guard atomic.Pointer[[]Guard] // nil: every request passes
	authn atomic.Pointer[Authenticator]
	obs   atomic.Pointer[Observer]
	front atomic.Pointer[func(http.Handler) http.Handler]

	mu        sync.Mutex // guards the following fields
	token     string
	routes    []string
	servers   []*http.Server
	listeners []net.Listener
	wg        sync.WaitGroup
	closed    bool
}

// New returns a server whose handlers see baseCtx() (called when a listener starts) as the
// parent of every request context.
func New(log *slog.Logger, baseCtx func() context.Context) *Server {
	s := &Server{log: log, mux: http.NewServeMux(), baseCtx: baseCtx}
	s.mux.HandleFunc("/v1/", s.handleNoRoute)
	return s
}

// Guard decides whether a request may reach the handler of the route it matched
// (pattern, as registered; path values are set). It returns false after answering the
// request itself (e.g. 403).
type Guard func(w http.ResponseWriter, r *http.Request, pattern string) bool

// Handle registers a route ("METHOD /path/{var}"). Requests pass the guard (SetGuard)
// before h runs.
func (s *Server) Handle(pattern string, h http.HandlerFunc) {
	s.mu.Lock()
	s.routes = append(s.routes, pattern)
	s.mu.Unlock()
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w, r, done := s.begin(w, r, pattern)
		defer done()
		if gs := s.guard.Load(); gs != nil {
			for _, g := range *gs {
				if !g(w, r, pattern) {
					return
				}
			}
		}
		h(w, r)
	})
}

// SetGuard adds g in front of every route's handler (registered before or after); guards
// run in the order they were added, the first refusal ends the request.
func (s *Server) SetGuard(g Guard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gs []Guard
	if old := s.guard.Load(); old != nil {
		gs = append(gs, *old...)
	}
	gs = append(gs, g)
	s.guard.Store(&gs)
}

// Routes lists the registered route patterns in registration order.
func (s *Server) Routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.routes...)
}

// Handler is the mux (for serving forwarded requests and tests).
func (s *Server) Handler() http.Handler { return s.mux }

// SetToken sets the bearer token the TCP listener requires.
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
}

// Token is the bearer token ("" when none is set).
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// handleNoRoute answers 405 with the allowed methods when the path exists under another
// method, else 404.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/v1/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		return
	}
	WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API route %s %s; see docs/api.md for the routes", r.Method, r.URL.Path))
}

// ListenUnix serves on a Unix socket with mode 0600 (only the owner may talk to the node).
func (s *Server) ListenUnix(path string) error {
	if len(path) > 104 {
		return fmt.Errorf("API socket path %s is longer than the 104 bytes Unix sockets allow; use a shorter --data-dir", path)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("%w: %s answers", ErrInUse, path)
	}
	_ = os.Remove(path) // stale socket of a dead node (the caller holds the data-dir lock)
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return fmt.Errorf("API socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("API socket: %w", err)
	}
	s.Serve(l, s.fronted(s.mux))
	return nil
}

// ListenTCP serves on a TCP address over TLS 1.3 with the given identity; every request
// needs the bearer token. Nothing is served in plain text: a client that does not speak TLS
// gets a TLS alert, and one that does can check the certificate before it sends the token.
func (s *Server) ListenTCP(addr string, id TLSIdentity) (net.Addr, error) {
	if len(id.Cert.Certificate) == 0 {
		return nil, fmt.Errorf("API listen %s: no TLS certificate (LoadOrCreateTLS)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("API listen %s: %w", addr, err)
	}
	s.Serve(tls.NewListener(l, serverTLS(id)), s.fronted(s.requireToken(s.mux)))
	return l.Addr(), nil
}

// SetFront puts f in front of both listeners (before the TCP listener's token check): the
// web dashboard serves its pages and turns a session cookie into a bearer token there.
func (s *Server) SetFront(f func(next http.Handler) http.Handler) { s.front.Store(&f) }

// fronted is h behind the front installed (now or later) with SetFront.
func (s *Server) fronted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := s.front.Load(); f != nil {
			(*f)(h).ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Serve serves h on l until Close (with the base context; no token check).
func (s *Server) Serve(l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(serverLog{s.log}, "", 0)}
	if s.baseCtx != nil {
		ctx := s.baseCtx()
		srv.BaseContext = func(net.Listener) context.Context { return ctx }
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.listeners = append(s.listeners, l)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
}

// serverLog routes net/http's own messages to the node's log. A failed TLS handshake (a
// client that refused the pin, a port scanner, plain HTTP on the TLS port) is the peer's
// doing and anyone can cause it, so it is a debug line, not a flood of errors.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		l.log.Debug("API connection refused", "err", strings.TrimPrefix(msg, "http: "))
	} else {
		l.log.Error("API server", "err", strings.TrimPrefix(msg, "http: "))
	}
	return len(p), nil
}

func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := s.Token()
		got := []byte(r.Header.Get("Authorization"))
		if tok != "" && subtle.ConstantTimeCompare(got, []byte("Bearer "+tok)) == 1 {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxBootstrap, true)))
			return
		}
		if a := s.authn.Load(); a != nil && bytes.HasPrefix(got, []byte("Bearer ")) {
			r2, done, err := (*a)(r, string(got[len("Bearer "):]))
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="constellation"`)
				WriteErr(w, err)
				return
			}
			defer done()
			h.ServeHTTP(w, r2)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="constellation"`)
		WriteError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token: send 'Authorization: Bearer <token>' (the node's token is in <data-dir>/api.token; 'constellation token create' makes others)")
	})
}

// Close stops the listeners and waits for the handlers. Handlers that stream must watch
// their request context (cancelled with the base context), so this returns at once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	servers := s.servers
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
	s.wg.Wait()
}

// ---- answers ----

// WriteJSON answers v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers an API error body.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, api.APIError{Error: msg, Code: code})
}

// Error is an error with its HTTP status and API code.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// BadRequest is a 400 "bad_request" error.
func BadRequest(format string, args ...any) error {
	return &Error{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

// Errorf is an error with a status and code.
func Errorf(status int, code, format string, args ...any) error {
	return &Error{status, code, fmt.Sprintf(format, args...)}
}

// class is one row of the error table.
type class struct {
	targets []error
	match   func(error) (msg string, ok bool)
	status  int
	code    string
}

var (
	tableMu sync.RWMutex
	table   []class
)

// Classify adds a row to the error table: errors matching any target (errors.Is) answer
// status and code. Features call it from init for their sentinel errors.
func Classify(status int, code string, targets ...error) {
	tableMu.Lock()
	table = append(table, class{targets: targets, status: status, code: code})
	tableMu.Unlock()
}

// ClassifyFunc adds a row for typed errors: match reports whether err is of the class and
// the message to show.
func ClassifyFunc(status int, code string, match func(error) (msg string, ok bool)) {
	tableMu.Lock()
	table = append(table, class{match: match, status: status, code: code})
	tableMu.Unlock()
}

// Status maps err to its HTTP status, code and message: an *Error first, then a deadline
// (504), then the table in registration order, then the standard classes (body too large:
// 413; cancelled: 503);
// anything else is a 500 "internal".
func Status(err error) (int, string, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, e.Code, e.Msg
	}
	if errors.Is(err, context.DeadlineExceeded) { // a timeout is a timeout, whatever timed out
		return http.StatusGatewayTimeout, "timeout", err.Error()
	}
	tableMu.RLock()
	defer tableMu.RUnlock()
	for _, c := range table {
		if c.match != nil {
			if msg, ok := c.match(err); ok {
				return c.status, c.code, msg
			}
			continue
		}
		for _, t := range c.targets {
			if errors.Is(err, t) {
				return c.status, c.code, err.Error()
			}
		}
	}
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", mb.Limit)
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "unavailable", err.Error()
	}
	return http.StatusInternalServerError, "internal", err.Error()
}

// WriteErr answers err with the status and code of its class.
func WriteErr(w http.ResponseWriter, err error) {
	st, code, msg := Status(err)
	WriteError(w, st, code, msg)
}

// ---- requests ----

// ReadBody reads a request body of at most MaxBodyBytes. A body over the limit is a 413; a
// connection that fails while sending it is a 400 naming the cause.
func ReadBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, err
		}
		return nil, BadRequest("reading the request body: %v", err)
	}
	return body, nil
}

// DecodeStrict decodes one JSON value with unknown fields rejected; an empty body leaves
// v as it is when allowEmpty, else it is an error.
func DecodeStrict(body []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return BadRequest("a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest("invalid JSON body: %s", jsonErrorText(err))
	}
	if dec.More() {
		return BadRequest("invalid JSON body: more than one JSON value")
	}
	return nil
}

// Decode reads and strictly decodes a required JSON body into v; on failure it has answered
// the error and returns false.
func Decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return DecodeOptional(w, r, v, false)
}

// DecodeOptional is Decode where allowEmpty permits an empty body (v keeps its value).
func DecodeOptional(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	body, err := ReadBody(r)
	if err == nil {
		err = DecodeStrict(body, v, allowEmpty)
	}
	if err != nil {
		WriteErr(w, err)
		return false
	}
	return true
}

func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type.String(), te.Value)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	return msg
}

// ---- streams ----

// SSE is a Server-Sent Events stream.
type SSE struct {
	w  http.ResponseWriter
	fl http.Flusher
}

// StartSSE writes the stream's headers and a first comment line.
func StartSSE(w http.ResponseWriter, comment string) (*SSE, error) {
	fl, ok := w.(http.Flusher)
	if !ok {
		return nil, Errorf(http.StatusInternalServerError, "internal", "streaming unsupported")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": %s\n\n", comment)
	fl.Flush()
	return &SSE{w: w, fl: fl}, nil
}

// Send writes one event.
func (s *SSE) Send(id uint64, event string, data []byte) error {
	_, err := fmt.Fprintf(s.w, "id: %s\nevent: %s\ndata: %s\n\n", strconv.FormatUint(id, 10), event, data)
	s.fl.Flush()
	return err
}

// Comment writes a comment line (a keepalive).
func (s *SSE) Comment(text string) error {
	_, err := fmt.Fprintf(s.w, ": %s\n\n", text)
	s.fl.Flush()
	return err
}
