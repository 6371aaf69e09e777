package traces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/p2p"
)

// Protocol is the cluster protocol of trace queries between members.
const Protocol = "monitor-traces/1.0.0"

// Limits of the service.
const (
	MaxTraces      = 1000  // traces one query lists
	MaxSpansAnswer = 20000 // spans one node answers
	MaxSubmit      = 1000  // spans one POST carries
	maxWireFrame   = 16 << 20
)

// Members is what the trace service needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
}

// Host is what the trace service needs of the p2p host.
type Host interface {
	NewService(name string, cfg p2p.ServiceConfig, h p2p.Handler) (*p2p.Service, error)
}

// ServiceConfig configures the trace service.
type ServiceConfig struct {
	Node string
	// CallerInstance names the instance a request comes from (nil: admins only); spans it
	// submits carry its name, and its name is their service when they name none.
	CallerInstance func(ctx context.Context) (string, bool)
	Timeout        time.Duration // a member's answer (default 10s)
	Now            func() time.Time
	// Metrics receives the constellation_traces_* collectors (nil: a private registry).
	Metrics prometheus.Registerer
}

// Service serves the node's span store to the cluster and the local API.
type Service struct {
	cfg     ServiceConfig
	store   *Store
	members Members
	svc     *p2p.Service
	log     *slog.Logger
}

// NewService registers the trace protocol on host and the routes on srv (nil: none).
func NewService(cfg ServiceConfig, store *Store, host Host, members Members, srv *httpapi.Server, log *slog.Logger) (*Service, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, store: store, members: members, log: log}
	if err := s.registerMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	var err error
	if s.svc, err = host.NewService(Protocol, p2p.ServiceConfig{MaxFrame: maxWireFrame, ReadTimeout: cfg.Timeout}, s.serve); err != nil {
		return nil, err
	}
	if srv != nil {
		srv.Handle("GET /v1/monitor/traces", s.handleList)
		srv.Handle("GET /v1/monitor/traces/{trace}", s.handleTrace)
		srv.Handle("POST /v1/monitor/spans", s.handleSubmit)
	}
	return s, nil
}

// Store is the node's span store.
func (s *Service) Store() *Store { return s.store }

// Close stops serving and waits for the handlers.
func (s *Service) Close() { s.svc.Close() }

// ---- wire ----

type wireQuery struct {
	Service     string   `cbor:"1,keyasint,omitempty"`
	Operation   string   `cbor:"2,keyasint,omitempty"`
	MinDuration int64    `cbor:"3,keyasint,omitempty"`
	Status      string   `cbor:"4,keyasint,omitempty"`
	From        int64    `cbor:"5,keyasint,omitempty"`
	To          int64    `cbor:"6,keyasint,omitempty"`
	TraceIDs    []string `cbor:"7,keyasint,omitempty"`
	Limit       int      `cbor:"8,keyasint,omitempty"`
}

type wireSpan struct {
	TraceID   string            `cbor:"1,keyasint"`
	SpanID    string            `cbor:"2,keyasint"`
	ParentID  string            `cbor:"3,keyasint,omitempty"`
	Service   string            `cbor:"4,keyasint,omitempty"`
	Name      string            `cbor:"5,keyasint,omitempty"`
	Kind      string            `cbor:"6,keyasint,omitempty"`
	Start     int64             `cbor:"7,keyasint"`
	End       int64             `cbor:"8,keyasint"`
	Status    string            `cbor:"9,keyasint,omitempty"`
	StatusMsg string            `cbor:"10,keyasint,omitempty"`
	Attrs     map[string]string `cbor:"11,keyasint,omitempty"`
	Node      string            `cbor:"12,keyasint,omitempty"`
	Instance  string            `cbor:"13,keyasint,omitempty"`
}

type wireAnswer struct {
	Spans []wireSpan `cbor:"1,keyasint,omitempty"`
	Err   string     `cbor:"2,keyasint,omitempty"`
	// Truncated: more spans matched than fit in one answer (the newest are sent).
	Truncated bool `cbor:"3,keyasint,omitempty"`
}

// answerBytes bounds the spans of one answer (the frame limit is maxWireFrame).
const answerBytes = maxWireFrame * 3 / 4

func spanSize(w *wireSpan) int {
	n := 96 + len(w.TraceID) + len(w.SpanID) + len(w.ParentID) + len(w.Service) + len(w.Name) + len(w.Kind) +
		len(w.Status) + len(w.StatusMsg) + len(w.Node) + len(w.Instance)
	for k, v := range w.Attrs {
		n += len(k) + len(v) + 8
	}
	return n
}

func (q Query) wire() wireQuery {
	w := wireQuery{Service: q.Service, Operation: q.Operation, MinDuration: int64(q.MinDuration), Status: q.Status,
		TraceIDs: q.TraceIDs, Limit: q.Limit}
	if !q.From.IsZero() {
		w.From = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		w.To = q.To.UnixNano()
	}
	return w
}

func (w wireQuery) query() (Query, error) {
	if len(w.TraceIDs) > MaxTraces {
		return Query{}, fmt.Errorf("%d trace IDs: at most %d", len(w.TraceIDs), MaxTraces)
	}
	q := Query{Service: w.Service, Operation: w.Operation, MinDuration: time.Duration(w.MinDuration), Status: w.Status,
		TraceIDs: w.TraceIDs, Limit: min(max(w.Limit, 1), MaxSpansAnswer)}
	if w.From != 0 {
		q.From = time.Unix(0, w.From)
	}
	if w.To != 0 {
		q.To = time.Unix(0, w.To)
	}
	return q, nil
}

func toWire(s Span) wireSpan {
	return wireSpan{TraceID: s.TraceID, SpanID: s.SpanID, ParentID: s.ParentID, Service: s.Service, Name: s.Name,
		Kind: s.Kind, Start: s.Start.UnixNano(), End: s.End.UnixNano(), Status: s.Status, StatusMsg: s.StatusMsg,
		Attrs: s.Attrs, Node: s.Node, Instance: s.Instance}
}

func fromWire(w wireSpan) (Span, error) {
	s := Span{TraceID: w.TraceID, SpanID: w.SpanID, ParentID: w.ParentID, Service: w.Service, Name: w.Name,
		Kind: w.Kind, Start: time.Unix(0, w.Start).UTC(), End: time.Unix(0, w.End).UTC(), Status: w.Status,
		StatusMsg: w.StatusMsg, Attrs: w.Attrs, Node: w.Node, Instance: w.Instance}
	return s, s.Validate()
}

func (s *Service) serve(ctx context.Context, st *p2p.Stream) error {
	var wq wireQuery
	if err := st.ReadMsg(&wq); err != nil {
		return err
	}
	q, err := wq.query()
	if err != nil {
		return st.WriteMsg(wireAnswer{Err: err.Error()})
	}
	var ans wireAnswer
	size := 0
	for _, sp := range s.store.Find(q) {
		w := toWire(sp)
		if size += spanSize(&w); size > answerBytes {
			ans.Truncated = true
			break
		}
		ans.Spans = append(ans.Spans, w)
	}
	return st.WriteMsg(ans)
}

// ---- cluster side ----

// FindResult is a cluster-wide span query's answer.
type FindResult struct {
	Spans    []Span
	Nodes    []string
	Warnings []string
}

// Find runs q on this node and (unless local) every alive member, merged newest first.
func (s *Service) Find(ctx context.Context, q Query, local bool) FindResult {
	q.Limit = min(max(q.Limit, 1), MaxSpansAnswer)
	type answer struct {
		name      string
		spans     []Span
		truncated bool
		err       error
	}
	var answers []answer
	var mu sync.Mutex
	var wg sync.WaitGroup
	if !local {
		for _, n := range s.members.Nodes() {
			if n.Self || n.Status != api.StatusAlive {
				continue
			}
			id, err := peer.Decode(n.ID)
			if err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				spans, trunc, err := s.findRemote(ctx, id, q)
				mu.Lock()
				answers = append(answers, answer{n.Name, spans, trunc, err})
				mu.Unlock()
			}()
		}
	}
	own := s.store.Find(q)
	wg.Wait()
	out := FindResult{Spans: own, Nodes: []string{s.cfg.Node}}
	slices.SortFunc(answers, func(a, b answer) int { return strings.Compare(a.name, b.name) })
	for _, a := range answers {
		if a.err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s did not answer: %v", a.name, a.err))
			continue
		}
		out.Nodes = append(out.Nodes, a.name)
		out.Spans = append(out.Spans, a.spans...)
		if a.truncated {
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s: more spans matched than one answer holds; narrow the query", a.name))
		}
	}
	SortNewestFirst(out.Spans)
	return out
}

func (s *Service) findRemote(ctx context.Context, id peer.ID, q Query) ([]Span, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var ans wireAnswer
	if err := s.svc.CallMsg(ctx, id, q.wire(), &ans); err != nil {
		return nil, false, err
	}
	if ans.Err != "" {
		return nil, false, errors.New(ans.Err)
	}
	if len(ans.Spans) > q.Limit {
		return nil, false, fmt.Errorf("answered %d spans, more than the %d asked", len(ans.Spans), q.Limit)
	}
	out := make([]Span, 0, len(ans.Spans))
	for _, w := range ans.Spans {
		sp, err := fromWire(w)
		if err != nil {
			return nil, false, fmt.Errorf("bad span: %w", err)
		}
		out = append(out, sp)
	}
	return out, ans.Truncated, nil
}

// Traces lists the newest traces (at most limit) having a span that matches q: matching
// spans are found over the cluster, then every span of their traces.
func (s *Service) Traces(ctx context.Context, q Query, limit int, local bool) ([]api.TraceSummary, []string, []string) {
	limit = min(max(limit, 1), MaxTraces)
	first := s.Find(ctx, q, local)
	var ids []string
	for _, sp := range first.Spans {
		if !slices.Contains(ids, sp.TraceID) {
			ids = append(ids, sp.TraceID)
			if len(ids) == limit {
				break
			}
		}
	}
	if len(ids) == 0 {
		return []api.TraceSummary{}, first.Nodes, first.Warnings
	}
	all := s.Find(ctx, Query{TraceIDs: ids, Limit: MaxSpansAnswer}, local)
	byTrace := map[string][]Span{}
	for _, sp := range all.Spans {
		byTrace[sp.TraceID] = append(byTrace[sp.TraceID], sp)
	}
	out := make([]api.TraceSummary, 0, len(ids))
	for _, id := range ids {
		if spans := byTrace[id]; len(spans) > 0 {
			out = append(out, Summarize(id, spans))
		}
	}
	return out, all.Nodes, append(first.Warnings, all.Warnings...)
}

// Summarize describes one trace from its spans.
func Summarize(id string, spans []Span) api.TraceSummary {
	t := api.TraceSummary{TraceID: id, Spans: len(spans), Status: "unset"}
	have := map[string]bool{}
	for _, sp := range spans {
		have[sp.SpanID] = true
	}
	var root *Span
	var start, end time.Time
	for i := range spans {
		sp := &spans[i]
		if start.IsZero() || sp.Start.Before(start) {
			start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
		if (sp.ParentID == "" || !have[sp.ParentID]) && (root == nil || sp.Start.Before(root.Start)) {
			root = sp
		}
		if !slices.Contains(t.Nodes, sp.Node) {
			t.Nodes = append(t.Nodes, sp.Node)
		}
		switch {
		case sp.Status == "error":
			t.Status = "error"
		case sp.Status == "ok" && t.Status == "unset":
			t.Status = "ok"
		}
	}
	slices.Sort(t.Nodes)
	t.Start, t.DurationMs = start.UTC(), ms(end.Sub(start))
	if root != nil {
		t.Service, t.Operation = root.Service, root.Name
	}
	return t
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ToAPI converts a span for the API.
func ToAPI(sp Span) api.Span {
	return api.Span{TraceID: sp.TraceID, SpanID: sp.SpanID, ParentID: sp.ParentID, Service: sp.Service, Name: sp.Name,
		Kind: sp.Kind, Start: sp.Start.UTC(), End: sp.End.UTC(), DurationMs: ms(sp.Duration()), Status: sp.Status,
		StatusMsg: sp.StatusMsg, Attributes: sp.Attrs, Node: sp.Node, Instance: sp.Instance}
}

// ---- local API ----

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := Query{Service: v.Get("service"), Operation: v.Get("operation"), Status: v.Get("status"), Limit: MaxSpansAnswer}
	switch q.Status {
	case "", "unset", "ok", "error":
	default:
		httpapi.WriteErr(w, httpapi.BadRequest(`invalid parameter "status" %q: want unset, ok or error`, q.Status))
		return
	}
	if x := v.Get("min_duration"); x != "" {
		d, err := time.ParseDuration(x)
		if err != nil || d < 0 {
			httpapi.WriteErr(w, httpapi.BadRequest(`invalid parameter "min_duration" %q: want a duration like 250ms or 1s`, x))
			return
		}
		q.MinDuration = d
	}
	if x := v.Get("since"); x != "" {
		d, err := time.ParseDuration(x)
		if err != nil || d <= 0 {
			httpapi.WriteErr(w, httpapi.BadRequest(`invalid parameter "since" %q: want a positive duration like 15m or 1h`, x))
			return
		}
		q.From = s.cfg.Now().Add(-d)
	}
	limit := 20
	if x := v.Get("limit"); x != "" {
		n, err := strconv.Atoi(x)
		if err != nil || n < 1 || n > MaxTraces {
			httpapi.WriteErr(w, httpapi.BadRequest(`invalid parameter "limit" %q: want a number from 1 to %d`, x, MaxTraces))
			return
		}
		limit = n
	}
	local := v.Get("local") == "1" || v.Get("local") == "true"
	ts, nodes, warns := s.Traces(r.Context(), q, limit, local)
	httpapi.WriteJSON(w, http.StatusOK, api.TraceList{Traces: ts, Nodes: nodes, Warnings: warns})
}

func (s *Service) handleTrace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("trace")
	if err := checkHexID(id, 16, "trace"); err != nil {
		httpapi.WriteErr(w, httpapi.BadRequest("%v", err))
		return
	}
	local := r.URL.Query().Get("local") == "1"
	res := s.Find(r.Context(), Query{TraceIDs: []string{id}, Limit: MaxSpansAnswer}, local)
	if len(res.Spans) == 0 {
		httpapi.WriteErr(w, httpapi.Errorf(http.StatusNotFound, "not_found", "no node has a span of trace %s (spans are kept in memory, the newest first)", id))
		return
	}
	out := api.Trace{TraceID: id, Nodes: res.Nodes, Warnings: res.Warnings}
	slices.SortFunc(res.Spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	for _, sp := range res.Spans {
		out.Spans = append(out.Spans, ToAPI(sp))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req api.SpanSubmitRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	if len(req.Spans) == 0 || len(req.Spans) > MaxSubmit {
		httpapi.WriteErr(w, httpapi.BadRequest(`"spans": give 1 to %d spans`, MaxSubmit))
		return
	}
	caller, isInstance := "", false
	if s.cfg.CallerInstance != nil {
		caller, isInstance = s.cfg.CallerInstance(r.Context())
	}
	spans := make([]Span, 0, len(req.Spans))
	for i, a := range req.Spans {
		sp := Span{TraceID: a.TraceID, SpanID: a.SpanID, ParentID: a.ParentID, Service: a.Service, Name: a.Name,
			Kind: a.Kind, Start: a.Start, End: a.End, Status: a.Status, StatusMsg: a.StatusMsg, Attrs: a.Attributes,
			Node: s.cfg.Node, Instance: a.Instance}
		if sp.Kind == "" {
			sp.Kind = "internal"
		}
		if sp.End.IsZero() && a.DurationMs >= 0 {
			sp.End = sp.Start.Add(time.Duration(a.DurationMs * float64(time.Millisecond)))
		}
		if isInstance {
			sp.Instance = caller
			if sp.Service == "" {
				sp.Service = caller
			}
		}
		if err := sp.Validate(); err != nil {
			httpapi.WriteErr(w, httpapi.BadRequest("span %d: %v", i, err))
			return
		}
		spans = append(spans, sp)
	}
	if err := s.store.Add(spans...); err != nil {
		httpapi.WriteErr(w, httpapi.BadRequest("%v", err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, api.SpanSubmitResult{Accepted: len(spans)})
}
