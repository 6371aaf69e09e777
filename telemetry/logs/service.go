package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/p2p"
)

func jsonUnmarshal(b []byte, v any) error           { return json.Unmarshal(b, v) }
func jsonCompact(dst *bytes.Buffer, b []byte) error { return json.Compact(dst, b) }

// Protocol is the cluster protocol of log search and follow between members.
const Protocol = "monitor-logs/1.0.0"

// Limits of the service.
const (
	MaxLimit       = 10000 // entries one search returns
	MaxSubmit      = 1000  // entries one POST carries
	maxWireFrame   = 4 << 20
	batchBytes     = 1 << 20 // entries per response frame, about
	defaultTimeout = 10 * time.Second
)

// Members is what the log service needs of membership.
type Members interface {
	Nodes() []api.NodeInfo
}

// Host is what the log service needs of the p2p host.
type Host interface {
	NewService(name string, cfg p2p.ServiceConfig, h p2p.Handler) (*p2p.Service, error)
}

// ServiceConfig configures the log service.
type ServiceConfig struct {
	Node string // this node's name
	// CallerInstance names the instance a request comes from (nil: every caller is an
	// admin). Entries an instance submits carry its name, deployment and namespace.
	CallerInstance func(ctx context.Context) (string, bool)
	// Meta returns an instance's deployment and namespace (nil: none).
	Meta func(instance string) (deployment, namespace string)
	// Timeout bounds a remote node's answer to a search (default 10s).
	Timeout time.Duration
	Now     func() time.Time
	// Metrics receives the constellation_logs_* collectors (nil: a private registry).
	Metrics prometheus.Registerer
}

// Service serves the node's log store to the cluster and the local API.
type Service struct {
	cfg     ServiceConfig
	store   *Store
	members Members
	svc     *p2p.Service
	log     *slog.Logger
	ctx     context.Context
	m       *metrics
}

var classifyOnce sync.Once

func classify() {
	httpapi.ClassifyFunc(http.StatusBadRequest, "bad_query", func(err error) (string, bool) {
		var qe *QueryError
		if errors.As(err, &qe) {
			return qe.Error(), true
		}
		return "", false
	})
}

// NewService registers the log protocol on host and the routes on srv (srv nil: none).
// ctx is the node's shutdown signal.
func NewService(ctx context.Context, cfg ServiceConfig, store *Store, host Host, members Members, srv *httpapi.Server, log *slog.Logger) (*Service, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	classifyOnce.Do(classify)
	s := &Service{cfg: cfg, store: store, members: members, log: log, ctx: ctx}
	if err := s.registerMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	var err error
	s.svc, err = host.NewService(Protocol, p2p.ServiceConfig{MaxFrame: maxWireFrame, ReadTimeout: cfg.Timeout}, s.serve)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		srv.Handle("GET /v1/monitor/logs", s.handleSearch)
		srv.Handle("POST /v1/monitor/logs", s.handleSubmit)
	}
	return s, nil
}

// Store is the node's store.
func (s *Service) Store() *Store { return s.store }

// Close stops serving (the store is closed by its owner) and waits for the handlers of
// members' searches and follows. Local follows end with the node's ctx.
func (s *Service) Close() {
	s.svc.Close()
}

// ---- wire ----

type wireReq struct {
	Q      string `cbor:"1,keyasint,omitempty"`
	From   int64  `cbor:"2,keyasint,omitempty"`
	To     int64  `cbor:"3,keyasint,omitempty"`
	Limit  int    `cbor:"4,keyasint,omitempty"`
	Follow bool   `cbor:"5,keyasint,omitempty"`
}

type wireEntry struct {
	T          int64             `cbor:"1,keyasint"`
	Node       string            `cbor:"2,keyasint,omitempty"`
	Instance   string            `cbor:"3,keyasint,omitempty"`
	Deployment string            `cbor:"4,keyasint,omitempty"`
	Namespace  string            `cbor:"5,keyasint,omitempty"`
	Stream     string            `cbor:"6,keyasint,omitempty"`
	Level      string            `cbor:"7,keyasint,omitempty"`
	Message    string            `cbor:"8,keyasint,omitempty"`
	Fields     map[string]string `cbor:"9,keyasint,omitempty"`
}

type wireResp struct {
	Entries  []wireEntry `cbor:"1,keyasint,omitempty"`
	Warnings []string    `cbor:"2,keyasint,omitempty"`
	Done     bool        `cbor:"3,keyasint,omitempty"`
	Err      string      `cbor:"4,keyasint,omitempty"`
}

func toWire(e Entry) wireEntry {
	return wireEntry{T: e.Time.UnixNano(), Node: e.Node, Instance: e.Instance, Deployment: e.Deployment,
		Namespace: e.Namespace, Stream: e.Stream, Level: e.Level, Message: e.Message, Fields: e.Fields}
}

func fromWire(w wireEntry) (Entry, error) {
	e := Entry{Time: time.Unix(0, w.T).UTC(), Node: w.Node, Instance: w.Instance, Deployment: w.Deployment,
		Namespace: w.Namespace, Stream: w.Stream, Level: w.Level, Message: w.Message, Fields: w.Fields}
	return e, e.Validate()
}

func wireSize(w *wireEntry) int {
	n := 64 + len(w.Node) + len(w.Instance) + len(w.Deployment) + len(w.Namespace) + len(w.Stream) + len(w.Level) + len(w.Message)
	for k, v := range w.Fields {
		n += len(k) + len(v) + 8
	}
	return n
}

// serve answers one member's search or follow.
func (s *Service) serve(ctx context.Context, st *p2p.Stream) error {
	var req wireReq
	if err := st.ReadMsg(&req); err != nil {
		return err
	}
	q, err := Parse(req.Q)
	if err != nil {
		return st.WriteMsg(wireResp{Err: err.Error(), Done: true})
	}
	if req.Follow {
		st.CancelOnRemoteClose()
		return s.serveFollow(ctx, st, q)
	}
	limit := min(max(req.Limit, 1), MaxLimit)
	sreq := Request{Query: q, Limit: limit}
	if req.From != 0 {
		sreq.From = time.Unix(0, req.From)
	}
	if req.To != 0 {
		sreq.To = time.Unix(0, req.To)
	}
	s.m.searches.WithLabelValues("remote").Inc()
	res, err := s.store.Search(ctx, sreq)
	if err != nil {
		return st.WriteMsg(wireResp{Err: err.Error(), Done: true})
	}
	var batch []wireEntry
	size := 0
	for _, e := range res.Entries {
		w := toWire(e)
		batch = append(batch, w)
		if size += wireSize(&w); size >= batchBytes {
			if err := st.WriteMsg(wireResp{Entries: batch}); err != nil {
				return err
			}
			batch, size = nil, 0
		}
	}
	return st.WriteMsg(wireResp{Entries: batch, Warnings: res.Warnings, Done: true})
}

func (s *Service) serveFollow(ctx context.Context, st *p2p.Stream, q *Query) error {
	ch, stop := s.store.Follow(q, 4096)
	defer stop()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		var batch []wireEntry
		select {
		case <-ctx.Done():
			return nil
		case <-keep.C:
			if err := st.WriteMsg(wireResp{}); err != nil {
				return err
			}
			continue
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			batch = append(batch, toWire(e))
		}
		size := wireSize(&batch[0])
	drain:
		for size < batchBytes {
			select {
			case e, ok := <-ch:
				if !ok {
					break drain
				}
				w := toWire(e)
				batch = append(batch, w)
				size += wireSize(&w)
			default:
				break drain
			}
		}
		if err := st.WriteMsg(wireResp{Entries: batch}); err != nil {
			return err
		}
	}
}

// ---- cluster side ----

// SearchResult is a cluster-wide search's answer.
type SearchResult struct {
	Entries  []Entry
	Nodes    []string // answered
	Warnings []string
}

type remote struct {
	id   peer.ID
	name string
}

// remotes are the alive members but this node.
func (s *Service) remotes() []remote {
	var out []remote
	for _, n := range s.members.Nodes() {
		if n.Self || n.Status != api.StatusAlive {
			continue
		}
		id, err := peer.Decode(n.ID)
		if err != nil {
			continue
		}
		out = append(out, remote{id, n.Name})
	}
	return out
}

// Search runs req on this node and, unless local, on every alive member, and merges the
// answers by time (the limit applies after the merge). A member that does not answer
// in time is a warning.
func (s *Service) Search(ctx context.Context, req Request, local bool) (SearchResult, error) {
	if req.Query == nil {
		req.Query = MustParse("")
	}
	req.Limit = min(max(req.Limit, 1), MaxLimit)
	scope := "cluster"
	if local {
		scope = "local"
	}
	s.m.searches.WithLabelValues(scope).Inc()
	defer prometheus.NewTimer(s.m.searchDur).ObserveDuration()
	type answer struct {
		name     string
		entries  []Entry
		warnings []string
		err      error
	}
	var rs []remote
	if !local {
		rs = s.remotes()
	}
	answers := make([]answer, len(rs)+1)
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es, ws, err := s.searchRemote(ctx, r, req)
			answers[i+1] = answer{r.name, es, ws, err}
		}()
	}
	res, err := s.store.Search(ctx, req)
	answers[0] = answer{s.cfg.Node, res.Entries, res.Warnings, err}
	wg.Wait()
	if err != nil {
		return SearchResult{}, err
	}
	var out SearchResult
	for _, a := range answers {
		if a.err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s did not answer: %v", a.name, a.err))
			continue
		}
		out.Nodes = append(out.Nodes, a.name)
		out.Entries = append(out.Entries, a.entries...)
		for _, w := range a.warnings {
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s: %s", a.name, w))
		}
	}
	SortNewestFirst(out.Entries)
	if len(out.Entries) > req.Limit {
		out.Entries = out.Entries[:req.Limit]
	}
	return out, nil
}

func (req Request) wire(follow bool) wireReq {
	w := wireReq{Q: req.Query.String(), Limit: req.Limit, Follow: follow}
	if !req.From.IsZero() {
		w.From = req.From.UnixNano()
	}
	if !req.To.IsZero() {
		w.To = req.To.UnixNano()
	}
	return w
}

func (s *Service) searchRemote(ctx context.Context, r remote, req Request) ([]Entry, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	st, err := s.svc.Open(ctx, r.id)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	if err := st.WriteMsg(req.wire(false)); err != nil {
		st.Reset()
		return nil, nil, err
	}
	st.CloseWrite()
	st.SetReadTimeout(s.cfg.Timeout)
	var out []Entry
	for {
		var resp wireResp
		if err := st.ReadMsg(&resp); err != nil {
			st.Reset()
			return nil, nil, err
		}
		if resp.Err != "" {
			return nil, nil, errors.New(resp.Err)
		}
		for _, w := range resp.Entries {
			e, err := fromWire(w)
			if err != nil {
				st.Reset()
				return nil, nil, fmt.Errorf("bad entry: %w", err)
			}
			out = append(out, e)
			if len(out) > req.Limit {
				st.Reset()
				return nil, nil, fmt.Errorf("answered more than the %d entries asked", req.Limit)
			}
		}
		if resp.Done {
			return out, resp.Warnings, nil
		}
	}
}

// followRescan is how often Follow looks for members to follow: alive ones it does not
// follow yet (joined, or back after a failure).
const followRescan = 2 * time.Second

// Follow streams the entries matching q written from now on, on this node and (unless
// local) on every alive member, to fn (called from one goroutine at a time), until ctx
// ends. Members that join or come back are followed within followRescan. warn gets the
// members that cannot be followed or stop answering.
func (s *Service) Follow(ctx context.Context, q *Query, local bool, fn func(Entry) error, warn func(string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan Entry, 1024)
	type ended struct {
		r   remote
		err error
	}
	ends := make(chan ended, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	following := map[peer.ID]bool{}
	req := Request{Query: q}
	rescan := func() {
		if local {
			return
		}
		for _, r := range s.remotes() {
			if following[r.id] {
				continue
			}
			following[r.id] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.followRemote(ctx, r, req, out)
				select {
				case ends <- ended{r, err}:
				case <-ctx.Done():
				}
			}()
		}
	}
	ch, stop := s.store.Follow(q, 4096)
	defer stop()
	rescan()
	tick := time.NewTicker(followRescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case <-tick.C:
			rescan()
		case e := <-ends:
			delete(following, e.r.id) // followed again at a rescan while it is alive
			if e.err != nil && warn != nil && ctx.Err() == nil {
				warn(fmt.Sprintf("node %s: follow stopped: %v", e.r.name, e.err))
			}
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		case e := <-out:
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

func (s *Service) followRemote(ctx context.Context, r remote, req Request, out chan<- Entry) error {
	st, err := s.svc.Open(ctx, r.id) // ctx has no deadline: the dial is bounded by DialTimeout
	if err != nil {
		return err
	}
	defer st.Close()
	stopOnCtx := context.AfterFunc(ctx, st.Reset)
	defer stopOnCtx()
	if err := st.WriteMsg(req.wire(true)); err != nil {
		st.Reset()
		return err
	}
	// Keepalives come every 15 s: a member silent for 45 s is gone.
	st.SetReadTimeout(45 * time.Second)
	for {
		var resp wireResp
		if err := st.ReadMsg(&resp); err != nil {
			st.Reset()
			return err
		}
		if resp.Err != "" {
			return errors.New(resp.Err)
		}
		for _, w := range resp.Entries {
			e, err := fromWire(w)
			if err != nil {
				st.Reset()
				return fmt.Errorf("bad entry: %w", err)
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// ---- local API ----

// ToAPI converts an entry for the API.
func ToAPI(e Entry) api.LogEntry {
	return api.LogEntry{Time: e.Time.UTC(), Node: e.Node, Instance: e.Instance, Deployment: e.Deployment,
		Namespace: e.Namespace, Stream: e.Stream, Level: e.Level, Message: e.Message, Fields: e.Fields}
}

// ParseSearch reads the query parameters of GET /v1/monitor/logs.
func ParseSearch(r *http.Request, now time.Time) (Request, bool, error) {
	v := r.URL.Query()
	q, err := Parse(v.Get("q"))
	if err != nil {
		return Request{}, false, err
	}
	req := Request{Query: q, Limit: 100}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Request{}, false, httpapi.BadRequest("invalid parameter \"limit\": %q: want a number from 1 to %d", s, MaxLimit)
		}
		req.Limit = n
	}
	if s := v.Get("since"); s != "" {
		d, err := ParseSince(s)
		if err != nil {
			return Request{}, false, httpapi.BadRequest("invalid parameter \"since\": %v", err)
		}
		req.From = now.Add(-d)
	}
	if s := v.Get("until"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Request{}, false, httpapi.BadRequest("invalid parameter \"until\": %q: want an RFC 3339 time like 2026-01-02T15:04:05Z", s)
		}
		req.To = t
	}
	local := v.Get("local") == "1" || v.Get("local") == "true"
	return req, local, nil
}

// ParseSince reads a duration: Go's form (90m, 1h30m) or days ("7d").
func ParseSince(s string) (time.Duration, error) {
	if n, ok := bytes.CutSuffix([]byte(s), []byte("d")); ok {
		d, err := strconv.Atoi(string(n))
		if err == nil && d > 0 && d < 100000 {
			return time.Duration(d) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration like 15m, 24h or 7d", s)
	}
	return d, nil
}

func (s *Service) handleSearch(w http.ResponseWriter, r *http.Request) {
	req, local, err := ParseSearch(r, s.cfg.Now())
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if v := r.URL.Query().Get("follow"); v == "1" || v == "true" {
		s.handleFollow(w, r, req.Query, local)
		return
	}
	res, err := s.Search(r.Context(), req, local)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	out := api.LogSearchResult{Entries: make([]api.LogEntry, 0, len(res.Entries)), Nodes: res.Nodes, Warnings: res.Warnings}
	for _, e := range res.Entries {
		out.Entries = append(out.Entries, ToAPI(e))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleFollow(w http.ResponseWriter, r *http.Request, q *Query, local bool) {
	sse, err := httpapi.StartSSE(w, "following logs")
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	var id uint64
	var mu sync.Mutex // fn and warn may run from the same loop only, but keep writes ordered
	_ = s.Follow(r.Context(), q, local, func(e Entry) error {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal(ToAPI(e))
		id++
		return sse.Send(id, "log", b)
	}, func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal(msg)
		id++
		sse.Send(id, "warning", b)
	})
}

func (s *Service) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req api.LogSubmitRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	subs := req.Entries
	if req.Message != "" || req.LogSubmit.Fields != nil {
		if len(subs) > 0 {
			httpapi.WriteErr(w, httpapi.BadRequest(`give one entry at the top level or several in "entries", not both`))
			return
		}
		subs = []api.LogSubmit{req.LogSubmit}
	}
	if len(subs) == 0 {
		httpapi.WriteErr(w, httpapi.BadRequest(`no entry: give "message" (and "level", "fields") or "entries": [...]`))
		return
	}
	if len(subs) > MaxSubmit {
		httpapi.WriteErr(w, httpapi.BadRequest(`%d entries: at most %d per request`, len(subs), MaxSubmit))
		return
	}
	caller, isInstance := "", false
	if s.cfg.CallerInstance != nil {
		caller, isInstance = s.cfg.CallerInstance(r.Context())
	}
	now := s.cfg.Now()
	es := make([]Entry, 0, len(subs))
	for i, sub := range subs {
		e, err := s.entryOf(sub, now, caller, isInstance)
		if err != nil {
			httpapi.WriteErr(w, httpapi.BadRequest("entry %d: %v", i, err))
			return
		}
		es = append(es, e)
	}
	if err := s.store.Append(es...); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	s.m.submitted.Add(float64(len(es)))
	httpapi.WriteJSON(w, http.StatusOK, api.LogSubmitResult{Accepted: len(es)})
}

func (s *Service) entryOf(sub api.LogSubmit, now time.Time, caller string, isInstance bool) (Entry, error) {
	if sub.Message == "" {
		return Entry{}, errors.New(`"message" is empty`)
	}
	lvl, ok := NormalizeLevel(sub.Level)
	if !ok {
		return Entry{}, fmt.Errorf(`invalid "level" %q: want debug, info, warn or error`, sub.Level)
	}
	e := Entry{Time: now, Node: s.cfg.Node, Stream: StreamAPI, Level: lvl, Message: sub.Message,
		Instance: sub.Instance, Deployment: sub.Deployment, Namespace: sub.Namespace}
	if sub.Time != nil && sub.Time.After(now.Add(-time.Hour)) && sub.Time.Before(now.Add(time.Minute)) {
		e.Time = *sub.Time
	}
	if isInstance {
		e.Instance, e.Deployment, e.Namespace = caller, "", ""
		if s.cfg.Meta != nil {
			e.Deployment, e.Namespace = s.cfg.Meta(caller)
		}
	}
	if len(sub.Fields) > 0 {
		e.Fields = make(map[string]string, len(sub.Fields))
		for k, raw := range sub.Fields {
			v, err := FieldText(raw)
			if err != nil {
				return Entry{}, fmt.Errorf("field %q: %v", k, err)
			}
			e.Fields[k] = v
		}
	}
	return e, e.Validate()
}
