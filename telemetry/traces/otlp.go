package traces

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// OTLPExporter sends spans to an OpenTelemetry collector over OTLP/HTTP with the JSON
// encoding (POST <endpoint>/v1/traces, Content-Type application/json), written with the
// SDK's types and the standard library: the otlptracehttp module would pull gRPC and
// protobuf (about 11 MB) for the same request.
type OTLPExporter struct {
	url     string
	headers map[string]string
	client  *http.Client
}

var _ sdktrace.SpanExporter = (*OTLPExporter)(nil)

// NewOTLPExporter checks endpoint (http or https URL; "/v1/traces" added when it has no
// path) and returns the exporter.
func NewOTLPExporter(endpoint string, headers map[string]string, timeout time.Duration) (*OTLPExporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("traces: OTLP endpoint %q: want an http(s) URL like http://collector:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &OTLPExporter{url: u.String(), headers: headers, client: &http.Client{Timeout: timeout}}, nil
}

type otlpKV struct {
	Key   string  `json:"key"`
	Value otlpAny `json:"value"`
}

type otlpAny struct {
	StringValue *string    `json:"stringValue,omitempty"`
	BoolValue   *bool      `json:"boolValue,omitempty"`
	IntValue    *string    `json:"intValue,omitempty"` // int64 as a string (proto3 JSON)
	DoubleValue *float64   `json:"doubleValue,omitempty"`
	ArrayValue  *otlpArray `json:"arrayValue,omitempty"`
}

type otlpArray struct {
	Values []otlpAny `json:"values"`
}

type otlpSpan struct {
	TraceID           string      `json:"traceId"`
	SpanID            string      `json:"spanId"`
	ParentSpanID      string      `json:"parentSpanId,omitempty"`
	Name              string      `json:"name"`
	Kind              int         `json:"kind"`
	StartTimeUnixNano string      `json:"startTimeUnixNano"`
	EndTimeUnixNano   string      `json:"endTimeUnixNano"`
	Attributes        []otlpKV    `json:"attributes,omitempty"`
	Events            []otlpEvent `json:"events,omitempty"`
	Status            otlpStatus  `json:"status"`
}

type otlpEvent struct {
	TimeUnixNano string   `json:"timeUnixNano"`
	Name         string   `json:"name"`
	Attributes   []otlpKV `json:"attributes,omitempty"`
}

type otlpStatus struct {
	Code    int    `json:"code,omitempty"` // 0 unset, 1 ok, 2 error
	Message string `json:"message,omitempty"`
}

type otlpScopeSpans struct {
	Scope struct {
		Name    string `json:"name,omitempty"`
		Version string `json:"version,omitempty"`
	} `json:"scope"`
	Spans []otlpSpan `json:"spans"`
}

type otlpResourceSpans struct {
	Resource struct {
		Attributes []otlpKV `json:"attributes,omitempty"`
	} `json:"resource"`
	ScopeSpans []*otlpScopeSpans `json:"scopeSpans"`
}

type otlpRequest struct {
	ResourceSpans []*otlpResourceSpans `json:"resourceSpans"`
}

func anyOf(v attribute.Value) otlpAny {
	switch v.Type() {
	case attribute.BOOL:
		b := v.AsBool()
		return otlpAny{BoolValue: &b}
	case attribute.INT64:
		s := strconv.FormatInt(v.AsInt64(), 10)
		return otlpAny{IntValue: &s}
	case attribute.FLOAT64:
		f := v.AsFloat64()
		return otlpAny{DoubleValue: &f}
	case attribute.STRINGSLICE:
		var a otlpArray
		for _, s := range v.AsStringSlice() {
			a.Values = append(a.Values, otlpAny{StringValue: &s})
		}
		return otlpAny{ArrayValue: &a}
	case attribute.INT64SLICE:
		var a otlpArray
		for _, n := range v.AsInt64Slice() {
			s := strconv.FormatInt(n, 10)
			a.Values = append(a.Values, otlpAny{IntValue: &s})
		}
		return otlpAny{ArrayValue: &a}
	case attribute.BOOLSLICE:
		var a otlpArray
		for _, b := range v.AsBoolSlice() {
			a.Values = append(a.Values, otlpAny{BoolValue: &b})
		}
		return otlpAny{ArrayValue: &a}
	case attribute.FLOAT64SLICE:
		var a otlpArray
		for _, f := range v.AsFloat64Slice() {
			a.Values = append(a.Values, otlpAny{DoubleValue: &f})
		}
		return otlpAny{ArrayValue: &a}
	}
	s := v.Emit()
	return otlpAny{StringValue: &s}
}

func kvs(attrs []attribute.KeyValue) []otlpKV {
	out := make([]otlpKV, 0, len(attrs))
	for _, kv := range attrs {
		out = append(out, otlpKV{Key: string(kv.Key), Value: anyOf(kv.Value)})
	}
	return out
}

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// Encode builds the OTLP/JSON request body for spans.
func Encode(spans []sdktrace.ReadOnlySpan) ([]byte, error) {
	var req otlpRequest
	byRes := map[string]*otlpResourceSpans{}
	byScope := map[string]*otlpScopeSpans{}
	for _, ro := range spans {
		rkey := ""
		var rattrs []attribute.KeyValue
		if r := ro.Resource(); r != nil {
			rkey, rattrs = r.Encoded(attribute.DefaultEncoder()), r.Attributes()
		}
		rs, ok := byRes[rkey]
		if !ok {
			rs = &otlpResourceSpans{}
			rs.Resource.Attributes = kvs(rattrs)
			byRes[rkey] = rs
			req.ResourceSpans = append(req.ResourceSpans, rs)
		}
		scope := ro.InstrumentationScope()
		skey := rkey + "\x00" + scope.Name + "\x00" + scope.Version
		ss, ok := byScope[skey]
		if !ok {
			ss = &otlpScopeSpans{}
			ss.Scope.Name, ss.Scope.Version = scope.Name, scope.Version
			byScope[skey] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		sc := ro.SpanContext()
		sp := otlpSpan{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Name: ro.Name(),
			Kind: int(ro.SpanKind()), StartTimeUnixNano: nanos(ro.StartTime()), EndTimeUnixNano: nanos(ro.EndTime()),
			Attributes: kvs(ro.Attributes())}
		if p := ro.Parent(); p.SpanID().IsValid() {
			sp.ParentSpanID = p.SpanID().String()
		}
		switch st := ro.Status(); st.Code {
		case codes.Ok:
			sp.Status.Code = 1
		case codes.Error:
			sp.Status = otlpStatus{Code: 2, Message: st.Description}
		}
		for _, ev := range ro.Events() {
			sp.Events = append(sp.Events, otlpEvent{TimeUnixNano: nanos(ev.Time), Name: ev.Name, Attributes: kvs(ev.Attributes)})
		}
		ss.Spans = append(ss.Spans, sp)
	}
	return json.Marshal(req)
}

// ExportSpans implements sdktrace.SpanExporter: one POST per batch.
func (e *OTLPExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	body, err := Encode(spans)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("traces: OTLP export to %s: %w", e.url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("traces: OTLP export to %s: %s: %s", e.url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (e *OTLPExporter) Shutdown(ctx context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}
