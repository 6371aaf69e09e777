package traces

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func span(i int, start time.Time, d time.Duration) Span {
	return Span{TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", i+1), Service: "svc", Name: "op",
		Kind: "server", Start: start, End: start.Add(d), Status: "ok"}
}

func TestStoreBound(t *testing.T) {
	s := NewStore(Config{Node: "n", MaxSpans: 100})
	t0 := time.Unix(1000, 0)
	for i := range 250 {
		if err := s.Add(span(i, t0.Add(time.Duration(i)*time.Second), time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 100 {
		t.Fatalf("%d spans held, bound 100", s.Len())
	}
	got := s.Find(Query{Limit: 1000})
	if len(got) != 100 || got[0].SpanID != fmt.Sprintf("%016x", 250) || got[99].SpanID != fmt.Sprintf("%016x", 151) {
		t.Fatalf("kept %d spans, newest %s oldest %s: want the newest 100", len(got), got[0].SpanID, got[len(got)-1].SpanID)
	}
}

func TestFindFilters(t *testing.T) {
	s := NewStore(Config{Node: "n"})
	t0 := time.Now()
	a := span(1, t0, 2*time.Second)
	a.Service, a.Name = "checkout", "POST /pay"
	b := span(2, t0, 10*time.Millisecond)
	b.Service, b.Status = "checkout", "error"
	c := span(3, t0.Add(-2*time.Hour), 5*time.Second)
	if err := s.Add(a, b, c); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		q    Query
		want int
	}{
		{Query{Service: "checkout"}, 2},
		{Query{Service: "CHECKOUT", MinDuration: time.Second}, 1},
		{Query{Status: "error"}, 1},
		{Query{Operation: "post /pay"}, 1},
		{Query{From: t0.Add(-time.Hour)}, 2},
		{Query{MinDuration: time.Second}, 2},
		{Query{TraceIDs: []string{c.TraceID}}, 1},
	}
	for _, tc := range cases {
		if got := s.Find(tc.q); len(got) != tc.want {
			t.Errorf("%+v: %d spans, want %d", tc.q, len(got), tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := span(1, time.Now(), time.Second)
	bad := []func(*Span){
		func(s *Span) { s.TraceID = "ABC" },
		func(s *Span) { s.TraceID = strings.Repeat("0", 32) },
		func(s *Span) { s.SpanID = "123" },
		func(s *Span) { s.ParentID = "zz" },
		func(s *Span) { s.Name = "" },
		func(s *Span) { s.End = s.Start.Add(-1) },
		func(s *Span) { s.End = s.Start.Add(25 * time.Hour) },
		func(s *Span) { s.Status = "weird" },
		func(s *Span) {
			s.Attrs = map[string]string{}
			for i := range MaxAttrs + 1 {
				s.Attrs[fmt.Sprint(i)] = "v"
			}
		},
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, f := range bad {
		s := ok
		f(&s)
		if s.Validate() == nil {
			t.Errorf("case %d accepted: %+v", i, s)
		}
	}
}

// The provider writes into the store; parent/child, service, status and attributes
// arrive; the sampler option is honoured.
func TestProviderExportsIntoStore(t *testing.T) {
	s := NewStore(Config{Node: "n1"})
	tp, err := NewTracerProvider(s, ProviderConfig{Service: "checkout", Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tp.Tracer("t").Start(context.Background(), "root")
	_, child := tp.Tracer("t").Start(ctx, "child", trace.WithAttributes(attribute.Int("http.status_code", 503)))
	child.SetStatus(codes.Error, "upstream")
	child.End()
	root.End()
	spans := s.Find(Query{})
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	var c Span
	for _, sp := range spans {
		if sp.Name == "child" {
			c = sp
		}
	}
	if c.Service != "checkout" || c.Status != "error" || c.StatusMsg != "upstream" || c.Attrs["http.status_code"] != "503" || c.ParentID == "" || c.Node != "n1" {
		t.Fatalf("child %+v", c)
	}
	tp.Shutdown(context.Background())

	never := NewStore(Config{})
	tp2, _ := NewTracerProvider(never, ProviderConfig{Sampler: sdktrace.NeverSample()})
	_, sp := tp2.Tracer("t").Start(context.Background(), "x")
	sp.End()
	if never.Len() != 0 {
		t.Fatal("NeverSample recorded a span")
	}
	if _, err := NewTracerProvider(never, ProviderConfig{SampleRatio: 2}); err == nil {
		t.Fatal("sample ratio 2 accepted")
	}
}

// The OTLP exporter posts OTLP/JSON a collector accepts: ids in hex, times in ns as
// strings, status codes mapped.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Token") != "k" {
			http.Error(w, "bad request", 400)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer srv.Close()
	s := NewStore(Config{})
	tp, err := NewTracerProvider(s, ProviderConfig{Service: "web", OTLPEndpoint: srv.URL, OTLPHeaders: map[string]string{"X-Token": "k"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tp.Tracer("lib").Start(context.Background(), "GET /")
	_, child := tp.Tracer("lib").Start(ctx, "db")
	child.SetStatus(codes.Error, "boom")
	child.End()
	root.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d posts", len(bodies))
	}
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []struct {
					Key   string
					Value struct{ StringValue string }
				}
			}
			ScopeSpans []struct {
				Scope struct{ Name string }
				Spans []struct {
					TraceID, SpanID, ParentSpanID, Name string
					StartTimeUnixNano                   string
					Kind                                int
					Status                              struct {
						Code    int
						Message string
					}
				}
			}
		}
	}
	if err := json.Unmarshal(bodies[0], &req); err != nil {
		t.Fatal(err)
	}
	rs := req.ResourceSpans[0]
	svc := ""
	for _, a := range rs.Resource.Attributes {
		if a.Key == "service.name" {
			svc = a.Value.StringValue
		}
	}
	sp := rs.ScopeSpans[0].Spans
	if svc != "web" || rs.ScopeSpans[0].Scope.Name != "lib" || len(sp) != 2 || len(sp[0].TraceID) != 32 || len(sp[0].SpanID) != 16 {
		t.Fatalf("body %s", bodies[0])
	}
	if sp[0].Name != "db" || sp[0].Status.Code != 2 || sp[0].Status.Message != "boom" || sp[0].ParentSpanID != sp[1].SpanID || sp[0].Kind != 1 {
		t.Fatalf("spans %+v", sp)
	}
	if _, err := NewOTLPExporter("ftp://x", nil, 0); err == nil {
		t.Fatal("ftp endpoint accepted")
	}
}

// BenchmarkSpanStoreMemory reports the heap held per 100k spans (a typical span: a
// service, an operation, three attributes).
func BenchmarkSpanStoreMemory(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		s := NewStore(Config{MaxSpans: 100000})
		t0 := time.Now()
		for i := range 100000 {
			sp := span(i, t0, time.Millisecond)
			sp.Service, sp.Name = "checkout", fmt.Sprintf("GET /api/items/%d", i%50)
			sp.Attrs = map[string]string{"http.method": "GET", "http.status_code": "200", "net.peer.name": fmt.Sprintf("10.0.0.%d", i%255)}
			s.Add(sp)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB/100k-spans")
		runtime.KeepAlive(s)
	}
}

func BenchmarkFind100k(b *testing.B) {
	s := NewStore(Config{MaxSpans: 100000})
	t0 := time.Now()
	for i := range 100000 {
		s.Add(span(i, t0.Add(time.Duration(i)*time.Millisecond), time.Duration(i%2000)*time.Millisecond))
	}
	for b.Loop() {
		s.Find(Query{Service: "svc", MinDuration: 1999 * time.Millisecond})
	}
}

// FuzzSpanJSON: a submitted span body never panics the conversion and validation, and a
// span that validates has sane times.
func FuzzSpanJSON(f *testing.F) {
	f.Add([]byte(`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","name":"x","start":"2026-01-01T00:00:00Z","duration_ms":5}`))
	f.Add([]byte(`{"trace_id":"","span_id":"zz","end":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a struct {
			TraceID    string            `json:"trace_id"`
			SpanID     string            `json:"span_id"`
			ParentID   string            `json:"parent_span_id"`
			Name       string            `json:"name"`
			Start, End time.Time         `json:"-"`
			Attrs      map[string]string `json:"attributes"`
			Status     string            `json:"status"`
		}
		if json.Unmarshal(b, &a) != nil {
			return
		}
		sp := Span{TraceID: a.TraceID, SpanID: a.SpanID, ParentID: a.ParentID, Name: a.Name, Attrs: a.Attrs, Status: a.Status,
			Start: time.Unix(1, 0), End: time.Unix(2, 0)}
		if sp.Validate() == nil {
			s := NewStore(Config{MaxSpans: 2})
			if err := s.Add(sp); err != nil || s.Len() != 1 {
				t.Fatalf("valid span refused: %v", err)
			}
		}
	})
}
