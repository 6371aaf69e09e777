package mesh

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rads-lang/constellation/api"
)

// otelProp reads and writes W3C traceparent/tracestate headers.
var otelProp = propagation.TraceContext{}

// spanTable holds the spans instances opened through POST /v1/mesh/spans until they end
// (bounded: at most maxOpenSpans, each ended after spanMaxAge).
type spanTable struct {
	tracer trace.Tracer
	now    func() time.Time
	mu     sync.Mutex
	open   map[string]openSpan
}

type openSpan struct {
	span trace.Span
	at   time.Time
}

const (
	maxOpenSpans = 4096
	spanMaxAge   = 10 * time.Minute
)

func newSpanTable(t trace.Tracer, now func() time.Time) *spanTable {
	return &spanTable{tracer: t, now: now, open: map[string]openSpan{}}
}

func (t *spanTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.open {
		s.span.End()
		delete(t.open, k)
	}
}

// handle starts, annotates or ends a span.
func (t *spanTable) handle(req api.MeshSpanRequest) (api.MeshSpan, error) {
	if len(req.Attributes) > 64 || len(req.Name) > 256 || len(req.Event) > 256 || len(req.Error) > 1024 {
		return api.MeshSpan{}, bad("span: at most 64 attributes, name and event of 256 bytes")
	}
	attrs := make([]attribute.KeyValue, 0, len(req.Attributes))
	for k, v := range req.Attributes {
		if len(k) > 128 || len(v) > 1024 {
			return api.MeshSpan{}, bad("field \"attributes\": key %.20q: keys up to 128 bytes, values up to 1024", k)
		}
		attrs = append(attrs, attribute.String(k, v))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked()
	if req.SpanID == "" {
		if req.Name == "" {
			return api.MeshSpan{}, bad("field \"name\": a new span needs a name (or give span_id to annotate or end one)")
		}
		if len(t.open) >= maxOpenSpans {
			return api.MeshSpan{}, fmt.Errorf("%w: %d spans are open; end some first", ErrUnavailable, maxOpenSpans)
		}
		ctx := context.Background()
		if req.Traceparent != "" {
			ctx = otelProp.Extract(ctx, propagation.HeaderCarrier(http.Header{"Traceparent": {req.Traceparent}}))
			if !trace.SpanContextFromContext(ctx).IsValid() {
				return api.MeshSpan{}, bad("field \"traceparent\": %q is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)", req.Traceparent)
			}
		}
		_, span := t.tracer.Start(ctx, req.Name, trace.WithAttributes(attrs...))
		sc := span.SpanContext()
		out := spanView(sc)
		if req.End {
			span.End()
			out.Ended = true
			return out, nil
		}
		t.open[sc.SpanID().String()] = openSpan{span: span, at: t.now()}
		return out, nil
	}
	s, ok := t.open[req.SpanID]
	if !ok {
		return api.MeshSpan{}, fmt.Errorf("%w: span %q is not open here (ended, expired after %s, or started on another node)", ErrUnknownService, req.SpanID, spanMaxAge)
	}
	s.span.SetAttributes(attrs...)
	if req.Event != "" {
		s.span.AddEvent(req.Event)
	}
	if req.Error != "" {
		s.span.SetStatus(codes.Error, req.Error)
	}
	out := spanView(s.span.SpanContext())
	if req.End {
		s.span.End()
		delete(t.open, req.SpanID)
		out.Ended = true
	}
	return out, nil
}

func (t *spanTable) expireLocked() {
	cut := t.now().Add(-spanMaxAge)
	for k, s := range t.open {
		if s.at.Before(cut) {
			s.span.SetAttributes(attribute.Bool("mesh.span_expired", true))
			s.span.End()
			delete(t.open, k)
		}
	}
}

func spanView(sc trace.SpanContext) api.MeshSpan {
	h := http.Header{}
	otelProp.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
	return api.MeshSpan{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Traceparent: h.Get("Traceparent")}
}

// StartSpan starts, annotates or ends an instance's span (POST /v1/mesh/spans).
func (m *Service) StartSpan(req api.MeshSpanRequest) (api.MeshSpan, error) {
	return m.spans.handle(req)
}
