package traces

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Span is one finished span as the store keeps it.
type Span struct {
	TraceID   string // 32 hex digits
	SpanID    string // 16 hex digits
	ParentID  string // 16 hex digits, empty for a root span
	Service   string
	Name      string // the operation
	Kind      string // internal, server, client, producer, consumer
	Start     time.Time
	End       time.Time
	Status    string // unset, ok, error
	StatusMsg string
	Attrs     map[string]string
	Node      string // the node that stored it
	Instance  string // the instance that submitted it, if one did
}

// Duration is End - Start.
func (s *Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Limits of one span.
const (
	MaxAttrs     = 32
	MaxAttrKey   = 128
	MaxAttrValue = 1024
	MaxName      = 256
	MaxSpanAge   = 24 * time.Hour // longest span accepted
)

// Validate checks a span's IDs, times and sizes.
func (s *Span) Validate() error {
	if err := checkHexID(s.TraceID, 16, "trace_id"); err != nil {
		return err
	}
	if err := checkHexID(s.SpanID, 8, "span_id"); err != nil {
		return err
	}
	if s.ParentID != "" {
		if err := checkHexID(s.ParentID, 8, "parent_span_id"); err != nil {
			return err
		}
	}
	switch {
	case s.Name == "" || len(s.Name) > MaxName:
		return fmt.Errorf(`"name" must have 1 to %d bytes`, MaxName)
	case len(s.Service) > MaxName || len(s.Kind) > 32 || len(s.StatusMsg) > MaxAttrValue || len(s.Instance) > MaxName || len(s.Node) > MaxName:
		return errors.New("service, kind, status message, node or instance too long")
	case s.Start.IsZero() || s.End.Before(s.Start):
		return errors.New(`"end" must not be before "start"`)
	case s.End.Sub(s.Start) > MaxSpanAge:
		return fmt.Errorf("span of %v: at most %v", s.End.Sub(s.Start), MaxSpanAge)
	case len(s.Attrs) > MaxAttrs:
		return fmt.Errorf("%d attributes: at most %d", len(s.Attrs), MaxAttrs)
	}
	switch s.Status {
	case "", "unset", "ok", "error":
	default:
		return fmt.Errorf(`invalid "status" %q: want unset, ok or error`, s.Status)
	}
	for k, v := range s.Attrs {
		if k == "" || len(k) > MaxAttrKey || len(v) > MaxAttrValue {
			return fmt.Errorf("attribute %.40q: keys of 1 to %d bytes, values of at most %d", k, MaxAttrKey, MaxAttrValue)
		}
	}
	return nil
}

func checkHexID(s string, n int, field string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n || strings.Trim(s, "0") == "" || strings.ToLower(s) != s {
		return fmt.Errorf("invalid %q %q: want %d lower-case hex digits, not all zero", field, s, 2*n)
	}
	return nil
}

// Config configures a Store.
type Config struct {
	Node     string
	MaxSpans int // spans kept, the oldest dropped first (default 100000)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is a bounded in-memory span store: a ring of the newest MaxSpans spans. It is
// an sdktrace.SpanExporter, so the node's TracerProvider writes into it.
type Store struct {
	cfg Config

	mu      sync.Mutex // guards the ring
	ring    []stored
	names   interner
	next    int
	full    bool
	dropped int64
	closed  bool
}

var _ sdktrace.SpanExporter = (*Store)(nil)

// NewStore returns an empty store.
func NewStore(cfg Config) *Store {
	if cfg.MaxSpans <= 0 {
		cfg.MaxSpans = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, ring: make([]stored, 0, min(cfg.MaxSpans, 4096))}
}

// Add stores spans (after Validate), evicting the oldest beyond MaxSpans.
func (s *Store) Add(spans ...Span) error {
	for i := range spans {
		if err := spans[i].Validate(); err != nil {
			return fmt.Errorf("span %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range spans {
		if sp.Node == "" {
			sp.Node = s.cfg.Node
		}
		if sp.Status == "" {
			sp.Status = "unset"
		}
		c := s.names.compact(&sp)
		if len(s.ring) < s.cfg.MaxSpans {
			s.ring = append(s.ring, c)
			continue
		}
		s.ring[s.next] = c
		s.next = (s.next + 1) % s.cfg.MaxSpans
		s.full = true
		s.dropped++
	}
	return nil
}

// Len is the number of spans held.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ring)
}

// ExportSpans implements sdktrace.SpanExporter.
func (s *Store) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]Span, 0, len(spans))
	for _, ro := range spans {
		out = append(out, FromReadOnly(ro, s.cfg.Node))
	}
	var errs []error
	for _, sp := range out {
		if err := s.Add(sp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Shutdown implements sdktrace.SpanExporter (the store stays readable).
func (s *Store) Shutdown(ctx context.Context) error { return nil }

// FromReadOnly converts an SDK span.
func FromReadOnly(ro sdktrace.ReadOnlySpan, node string) Span {
	sc := ro.SpanContext()
	sp := Span{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Name: ro.Name(),
		Kind: ro.SpanKind().String(), Start: ro.StartTime(), End: ro.EndTime(), Node: node}
	if p := ro.Parent(); p.SpanID().IsValid() {
		sp.ParentID = p.SpanID().String()
	}
	if len(sp.Name) > MaxName {
		sp.Name = sp.Name[:MaxName]
	}
	if sp.End.Before(sp.Start) {
		sp.End = sp.Start
	}
	if sp.End.Sub(sp.Start) > MaxSpanAge {
		sp.End = sp.Start.Add(MaxSpanAge)
	}
	switch st := ro.Status(); st.Code {
	case codes.Error:
		sp.Status, sp.StatusMsg = "error", trunc(st.Description, MaxAttrValue)
	case codes.Ok:
		sp.Status = "ok"
	default:
		sp.Status = "unset"
	}
	if r := ro.Resource(); r != nil {
		if v, ok := r.Set().Value(semconv.ServiceNameKey); ok {
			sp.Service = trunc(v.Emit(), MaxName)
		}
	}
	for _, kv := range ro.Attributes() {
		if len(sp.Attrs) >= MaxAttrs {
			break
		}
		if sp.Attrs == nil {
			sp.Attrs = map[string]string{}
		}
		if k := string(kv.Key); k != "" && len(k) <= MaxAttrKey {
			sp.Attrs[k] = trunc(kv.Value.Emit(), MaxAttrValue)
		}
	}
	// A mesh span is made by the node on a service's behalf: it belongs to the service it
	// carries a call to, so `monitor traces --service checkout` finds calls to checkout.
	if v := sp.Attrs["mesh.service"]; v != "" {
		sp.Service = trunc(v, MaxName)
	}
	return sp
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Query selects spans. Zero fields do not filter.
type Query struct {
	Service     string
	Operation   string
	MinDuration time.Duration
	Status      string // unset, ok, error
	From, To    time.Time
	TraceIDs    []string
	Limit       int // newest Limit spans (default 1000)
}

func (q *Query) match(sp *stored, ids [][16]byte) bool {
	switch {
	case q.Service != "" && !strings.EqualFold(sp.service, q.Service):
		return false
	case q.Operation != "" && !strings.EqualFold(sp.name, q.Operation):
		return false
	case q.MinDuration > 0 && sp.duration() < q.MinDuration:
		return false
	case q.Status != "" && sp.status != q.Status:
		return false
	case !q.From.IsZero() && sp.end < q.From.UnixNano():
		return false
	case !q.To.IsZero() && sp.start > q.To.UnixNano():
		return false
	case len(q.TraceIDs) > 0 && !slices.Contains(ids, sp.trace):
		return false
	}
	return true
}

// Find returns the newest spans matching q, newest start first.
func (s *Store) Find(q Query) []Span {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	var ids [][16]byte
	for _, id := range q.TraceIDs {
		var b [16]byte
		if n, err := hex.Decode(b[:], []byte(id)); err == nil && n == 16 {
			ids = append(ids, b)
		}
	}
	if len(q.TraceIDs) > 0 && len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	var out []Span
	for i := range s.ring {
		if q.match(&s.ring[i], ids) {
			out = append(out, s.ring[i].expand())
		}
	}
	s.mu.Unlock()
	SortNewestFirst(out)
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// SortNewestFirst orders spans by start, newest first (ties by span ID).
func SortNewestFirst(spans []Span) {
	slices.SortFunc(spans, func(a, b Span) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(a.SpanID, b.SpanID)
	})
}
