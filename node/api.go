package node

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// APIError is the JSON body of every error answer of the local API.
type APIError struct {
	Error string `json:"error"` // what is wrong and what would be right
	Code  string `json:"code"`  // machine-readable class, e.g. "bad_request", "not_found"
}

// maxBodyBytes bounds every request body of the local API.
const maxBodyBytes = 1 << 20

// apiServer serves the local API on the Unix socket and, optionally, a TCP address.
type apiServer struct {
	n     *Node
	log   *slog.Logger
	token string
	mux   *http.ServeMux

	mu        sync.Mutex // guards the following fields
	servers   []*http.Server
	listeners []net.Listener
	wg        sync.WaitGroup
	closed    bool
}

func newAPIServer(n *Node, log *slog.Logger, token string) *apiServer {
	s := &apiServer{n: n, log: log, token: token, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /v1/status", s.handleStatus)
	s.mux.HandleFunc("GET /v1/nodes", s.handleNodes)
	s.mux.HandleFunc("GET /v1/events", s.handleEvents)
	s.mux.HandleFunc("POST /v1/send", s.handleSend)
	s.mux.HandleFunc("POST /v1/broadcast", s.handleBroadcast)
	s.mux.HandleFunc("/v1/", s.handleNoRoute)
	return s
}

// handleNoRoute answers 405 with the allowed methods when the path exists under another
// method, else 404.
func (s *apiServer) handleNoRoute(w http.ResponseWriter, r *http.Request) {
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
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		return
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API route %s %s; see docs/api.md for the routes", r.Method, r.URL.Path))
}

// Route registers an extra API route (used by the node's feature modules).
func (s *apiServer) route(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// listenUnix serves on a Unix socket with mode 0600 (only the owner may talk to the node).
func (s *apiServer) listenUnix(path string) error {
	if len(path) > 104 {
		return fmt.Errorf("node: API socket path %s is longer than the 104 bytes Unix sockets allow; use a shorter --data-dir", path)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("%w: %s answers", ErrDataDirInUse, path)
	}
	_ = os.Remove(path) // stale socket of a dead node (the data-dir lock is ours)
	old := syscallUmask(0o177)
	l, err := net.Listen("unix", path)
	syscallUmask(old)
	if err != nil {
		return fmt.Errorf("node: API socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("node: API socket: %w", err)
	}
	s.serve(l, s.mux)
	return nil
}

// listenTCP serves on a TCP address; every request needs the bearer token.
func (s *apiServer) listenTCP(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: API listen %s: %w", addr, err)
	}
	s.serve(l, s.requireToken(s.mux))
	return l.Addr(), nil
}

func (s *apiServer) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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

func (s *apiServer) requireToken(h http.Handler) http.Handler {
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if s.token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="constellation"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token: send 'Authorization: Bearer <token>' (the token is in <data-dir>/api.token)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *apiServer) close() {
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, APIError{Error: msg, Code: code})
}

// decodeBody decodes a JSON request body strictly: bounded size, unknown fields rejected,
// exactly one value.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", maxBodyBytes))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+jsonErrorText(err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: more than one JSON value")
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

func (s *apiServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.n.Status())
}

func (s *apiServer) handleNodes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.n.Nodes())
}

// SendRequest is the body of POST /v1/send.
type SendRequest struct {
	Node string          `json:"node"` // node name or peer ID
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// BroadcastRequest is the body of POST /v1/broadcast.
type BroadcastRequest struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// SendResult answers POST /v1/send and /v1/broadcast.
type SendResult struct {
	ID    string   `json:"id"`
	Nodes []string `json:"nodes"` // names of the nodes that acknowledged
}

func validMessage(w http.ResponseWriter, typ string, data json.RawMessage) bool {
	if typ == "" || len(typ) > 128 {
		writeError(w, http.StatusBadRequest, "bad_request", `field "type" is required: 1-128 characters, e.g. "config_update"`)
		return false
	}
	if len(data) == 0 {
		writeError(w, http.StatusBadRequest, "bad_request", `field "data" is required: any JSON value, e.g. {"key": "value"}`)
		return false
	}
	return true
}

func (s *apiServer) handleSend(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Node == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `field "node" is required: a node name or peer ID from 'constellation nodes'`)
		return
	}
	if !validMessage(w, req.Type, req.Data) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	res, err := s.n.Send(ctx, req.Node, req.Type, req.Data)
	if err != nil {
		writeNodeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *apiServer) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	var req BroadcastRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !validMessage(w, req.Type, req.Data) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	res, err := s.n.Broadcast(ctx, req.Type, req.Data)
	if err != nil {
		writeNodeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeNodeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNodeNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrNodeUnavailable):
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "timeout", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// handleEvents streams events as Server-Sent Events. Query: type=a,b filters by type;
// the Last-Event-ID header (or ?since=N) resumes after an event sequence number.
func (s *apiServer) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	types := map[string]bool{}
	if t := r.URL.Query().Get("type"); t != "" {
		for _, x := range strings.Split(t, ",") {
			switch x {
			case EventNodeJoin, EventNodeLeave, EventNodeSuspect, EventNodeDead, EventNodeAlive, EventMessage, EventInstance:
				types[x] = true
			default:
				writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown event type %q; known: node_join, node_leave, node_suspect, node_dead, node_alive, message, instance", x))
				return
			}
		}
	}
	// Without Last-Event-ID or ?since only new events are sent; ?since=0 replays all retained.
	after, replay := uint64(0), false
	if h := r.Header.Get("Last-Event-ID"); h != "" {
		after, replay = parseSeq(h), true
	}
	if r.URL.Query().Has("since") {
		after, replay = parseSeq(r.URL.Query().Get("since")), true
	}
	ch, cancel := s.n.events.subscribe(after, replay)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": constellation events from %s\n\n", s.n.cfg.Node)
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.n.done:
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case e := <-ch:
			if len(types) > 0 && !types[e.Type] {
				continue
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b)
			fl.Flush()
		}
	}
}
