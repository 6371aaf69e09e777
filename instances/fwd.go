package instances

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/p2p"
)

// Forwarding protocol (/constellation/<cluster-hash>/instances/2.0.0, a p2p.Service between
// admitted members): an operation on an instance of another node travels to that node as
// the same local-API request, and its answer comes back unchanged (status, JSON body or
// error), so a forwarded request fails exactly like a local one.
//
//	A -> B  frame: fwdRequest (JSON)
//	B -> A  frame: fwdHead (JSON: status, content type)
//	B -> A  frames: body chunks (a followed log streams here), then B closes its side
//
// Frames are the service's (bounded, with write deadlines). Limits: request frame
// maxFwdRequest, head frame 4 KiB, body chunk maxFwdChunk. B reads the request within
// fwdRequestTimeout; A waits fwdHeadTimeout for each frame except for wait and followed
// logs, which last as long as the caller. A cancelled caller resets the stream, which
// cancels the operation on B (CancelOnRemoteClose).

const (
	instancesProtocol = "instances/2.0.0"
	maxFwdRequest     = httpapi.MaxBodyBytes + 8<<10
	maxFwdHead        = 4 << 10
	maxFwdChunk       = 256 << 10
	fwdRequestTimeout = 10 * time.Second
	fwdHeadTimeout    = 2 * time.Minute // plus an hour for stop, restart, restore and rm (their grace period)
)

// startForwarding registers the forwarding protocol.
func (m *Service) startForwarding() error {
	svc, err := m.host.NewService(instancesProtocol, p2p.ServiceConfig{MaxFrame: maxFwdRequest, ReadTimeout: fwdRequestTimeout}, m.handleForward)
	if err != nil {
		return err
	}
	m.fwd = svc
	return nil
}

// fwdRequest is a forwarded local-API request.
type fwdRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Body   []byte `json:"body,omitempty"`
	// Instance, InstanceID and Grants are the calling instance when the request came from
	// one: the receiving node applies the instance rules (authz.go) with them. The sending
	// node authenticated the instance (its socket and token); members are trusted to say
	// who calls, as they are trusted to forward at all.
	Instance   string   `json:"instance,omitempty"`
	InstanceID string   `json:"instance_id,omitempty"`
	Grants     []string `json:"grants,omitempty"`
	// RequestID is the caller's request ID (the audit logs of both nodes carry it).
	RequestID string `json:"request_id,omitempty"`
}

type fwdHead struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
}

// decodeFwdRequest decodes and checks a forwarded request: only the instance API travels.
func decodeFwdRequest(b []byte) (fwdRequest, error) {
	var req fwdRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("node: forwarded request: %w", err)
	}
	switch req.Method {
	case http.MethodGet, http.MethodPost, http.MethodDelete:
	default:
		return req, fmt.Errorf("node: forwarded request: method %q not allowed", req.Method)
	}
	if req.Path != "/v1/instances" && !strings.HasPrefix(req.Path, "/v1/instances/") || strings.Contains(req.Path, "..") {
		return req, fmt.Errorf("node: forwarded request: path %q is not an instance route", req.Path)
	}
	if len(req.Query) > 4096 || len(req.Instance) > 64 || len(req.InstanceID) > 64 || len(req.RequestID) > 64 {
		return req, errors.New("node: forwarded request: query or instance too long")
	}
	if len(req.Grants) > maxGrants {
		return req, fmt.Errorf("node: forwarded request: %d grants, at most %d", len(req.Grants), maxGrants)
	}
	for _, g := range req.Grants {
		if len(g) > 64 {
			return req, errors.New("node: forwarded request: grant name too long")
		}
	}
	if req.Instance == "" && (req.InstanceID != "" || len(req.Grants) > 0) {
		return req, errors.New("node: forwarded request: instance ID or grants without an instance")
	}
	return req, nil
}

// forward sends r (whose body was already read) to node `to` and relays the answer.
func (m *Service) forward(w http.ResponseWriter, r *http.Request, body []byte, to peer.ID, toName string) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	unavailable := func(err error) {
		httpapi.WriteErr(w, fmt.Errorf("%w: node %s cannot be reached to forward %s %s: %v", membership.ErrNodeUnavailable, toName, r.Method, r.URL.Path, err))
	}
	if m.fwd == nil {
		unavailable(errors.New("forwarding not started"))
		return
	}
	s, err := m.fwd.Open(ctx, to) // the stream is reset when the caller goes away
	if err != nil {
		unavailable(err)
		return
	}
	defer s.Close()
	req := fwdRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, RequestID: httpapi.RequestID(r.Context())}
	if c, ok := callerOf(r.Context()); ok {
		req.Instance, req.InstanceID, req.Grants = c.name, c.id, c.grants
	}
	b, _ := json.Marshal(req)
	if err := s.WriteFrame(b); err != nil {
		unavailable(err)
		return
	}
	streaming := strings.HasSuffix(r.URL.Path, "/wait") || (strings.HasSuffix(r.URL.Path, "/logs") && r.URL.Query().Get("follow") != "" && r.URL.Query().Get("follow") != "0")
	if !streaming {
		limit := fwdHeadTimeout
		if r.Method == http.MethodDelete || strings.HasSuffix(r.URL.Path, "/stop") || strings.HasSuffix(r.URL.Path, "/restart") ||
			strings.HasSuffix(r.URL.Path, "/restore") {
			limit += time.Hour // a stop's grace period may be up to an hour
		}
		s.SetReadTimeout(limit)
	}
	hb, err := s.ReadFrame()
	if err == nil && len(hb) > maxFwdHead {
		err = fmt.Errorf("answer head of %d bytes over %d", len(hb), maxFwdHead)
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the caller went away
		}
		unavailable(err)
		return
	}
	var head fwdHead
	if err := json.Unmarshal(hb, &head); err != nil || head.Status < 100 || head.Status > 599 {
		unavailable(fmt.Errorf("bad answer head %q", hb))
		return
	}
	if head.ContentType != "" {
		w.Header().Set("Content-Type", head.ContentType)
	}
	w.WriteHeader(head.Status)
	fl, _ := w.(http.Flusher)
	for {
		chunk, err := s.ReadFrame()
		if err != nil || len(chunk) > maxFwdChunk {
			return // EOF: complete; anything else: the body is cut short, as a local error would
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

// handleForward serves one forwarded request from an admitted member.
func (m *Service) handleForward(sctx context.Context, s *p2p.Stream) error {
	b, err := s.ReadFrame()
	if err != nil {
		return err
	}
	req, err := decodeFwdRequest(b)
	if err != nil {
		m.log.Warn("bad forwarded request", "peer", s.Peer().String(), "err", err)
		return err
	}
	// The caller writes nothing more: its closing or resetting the stream cancels sctx.
	s.CancelOnRemoteClose()
	ctx, cancel := context.WithCancel(m.ctx)
	defer cancel()
	stop := context.AfterFunc(sctx, cancel)
	defer stop()
	ctx = context.WithValue(ctx, ctxForwarded, true)
	if req.Instance != "" {
		ctx = withCaller(ctx, caller{name: req.Instance, id: req.InstanceID, grants: req.Grants})
	}
	target := req.Path
	if req.Query != "" {
		target += "?" + req.Query
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, target, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	hr.RemoteAddr = "libp2p:" + s.Peer().String()
	if req.RequestID != "" {
		hr.Header.Set("X-Request-Id", req.RequestID)
	}
	fw := &frameWriter{s: s, header: http.Header{}}
	m.fwdMux.ServeHTTP(fw, hr)
	err = fw.finish()
	if m.OnForwarded != nil && req.Method != http.MethodGet {
		m.OnForwarded(Forwarded{From: s.Peer(), Method: req.Method, Path: req.Path, Instance: req.Instance,
			InstanceID: req.InstanceID, RequestID: req.RequestID, Status: fw.status})
	}
	return err
}

// frameWriter is the http.ResponseWriter of a forwarded request: it writes the head frame
// on the first write and every body write as chunk frames.
type frameWriter struct {
	s       *p2p.Stream
	header  http.Header
	status  int
	started bool
	err     error
}

func (f *frameWriter) Header() http.Header { return f.header }

func (f *frameWriter) WriteHeader(status int) {
	if f.started {
		return
	}
	f.started = true
	f.status = status
	b, _ := json.Marshal(fwdHead{Status: status, ContentType: f.header.Get("Content-Type")})
	f.err = f.write(b)
}

func (f *frameWriter) write(b []byte) error { return f.s.WriteFrame(b) }

func (f *frameWriter) Write(p []byte) (int, error) {
	if !f.started {
		f.WriteHeader(http.StatusOK)
	}
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxFwdChunk)
		if f.err = f.write(p[:k]); f.err != nil {
			return n, f.err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Flush is a no-op: every Write is a frame already on its way.
func (f *frameWriter) Flush() {}

func (f *frameWriter) finish() error {
	if !f.started {
		f.WriteHeader(http.StatusOK)
	}
	return f.err
}

// Forwarded describes a mutating request another node forwarded here, once answered
// (Service.OnForwarded: the audit log).
type Forwarded struct {
	From                 peer.ID
	Method, Path         string
	Instance, InstanceID string // the calling instance, if any
	RequestID            string
	Status               int
}

// fwdHint is where a forwarded create went (see Service.hints).
type fwdHint struct {
	node   string
	nodeID peer.ID
	until  time.Time
}

// hintTTL bounds how long a hint stands in for the replicated record.
const hintTTL = 30 * time.Second

func (m *Service) setHint(name, node string, id peer.ID) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, h := range m.hints {
		if now.After(h.until) {
			delete(m.hints, k)
		}
	}
	if len(m.hints) < 10000 {
		m.hints[name] = fwdHint{node: node, nodeID: id, until: now.Add(hintTTL)}
	}
}

func (m *Service) hint(name string) (fwdHint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.hints[name]
	if !ok || time.Now().After(h.until) {
		return fwdHint{}, false
	}
	return h, true
}

// statusRecorder calls onStatus with a forwarded answer's status before the answer goes
// out (the caller may act on it at once).
type statusRecorder struct {
	http.ResponseWriter
	onStatus func(int)
	done     bool
}

func (s *statusRecorder) WriteHeader(st int) {
	if !s.done {
		s.done = true
		s.onStatus(st)
	}
	s.ResponseWriter.WriteHeader(st)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
