package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/mesh/balance"
)

// caller makes calls by name: one balance.Balancer per service (its breakers, ejections,
// latency estimates and retry budget), reconfigured when the service's record changes.
type caller struct {
	m  *Service
	mu sync.Mutex
	bs map[string]*svcBalancer // NAMESPACE/NAME
}

type svcBalancer struct {
	b   *balance.Balancer
	cfg ServiceRecord
}

func newCaller(m *Service) *caller { return &caller{m: m, bs: map[string]*svcBalancer{}} }

func (c *caller) close() {
	c.mu.Lock()
	bs := c.bs
	c.bs = map[string]*svcBalancer{}
	c.mu.Unlock()
	for _, sb := range bs {
		sb.b.Close()
	}
}

func balanceConfig(r ServiceRecord) balance.Config {
	pol, _ := balance.ParsePolicy(r.LoadBalancer)
	return balance.Config{
		Policy:  pol,
		Breaker: balance.BreakerConfig{FailureThreshold: r.FailureThreshold, Timeout: time.Duration(r.BreakerTimeoutS) * time.Second, HalfOpenRequests: r.HalfOpenRequests},
		Retry:   balance.RetryConfig{MaxAttempts: r.Retries + 1, Timeout: time.Duration(r.TimeoutMs) * time.Millisecond},
		Hedge:   balance.HedgeConfig{Disabled: r.NoHedge},
	}
}

// each yields every service's balancer (NAMESPACE/NAME) for the metrics collector; it
// copies the map first so a scrape never holds the lock while collecting.
func (c *caller) each(yield func(string, *balance.Balancer) bool) {
	c.mu.Lock()
	list := make(map[string]*balance.Balancer, len(c.bs))
	for k, sb := range c.bs {
		list[k] = sb.b
	}
	c.mu.Unlock()
	for k, b := range list {
		if !yield(k, b) {
			return
		}
	}
}

// balancer returns the service's balancer, (re)configured from its record.
func (c *caller) balancer(key string, cfg ServiceRecord) (*balance.Balancer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sb := c.bs[key]
	if sb == nil {
		b, err := balance.New(balanceConfig(cfg))
		if err != nil {
			return nil, err
		}
		sb = &svcBalancer{b: b, cfg: cfg}
		c.bs[key] = sb
		return b, nil
	}
	if sb.cfg != cfg {
		if err := sb.b.Reconfigure(balanceConfig(cfg)); err != nil {
			return nil, err
		}
		sb.cfg = cfg
	}
	return sb.b, nil
}

// Balancer exposes a service's balancer state (tests, status).
func (m *Service) Balancer(ns, name string) *balance.Balancer {
	m.calls.mu.Lock()
	defer m.calls.mu.Unlock()
	if sb := m.calls.bs[ns+"/"+name]; sb != nil {
		return sb.b
	}
	return nil
}

// candidates turns endpoints into balance endpoints (unhealthy ones with their reason).
func (m *Service) candidates(eps []Endpoint) []balance.Endpoint {
	out := make([]balance.Endpoint, len(eps))
	for i, e := range eps {
		be := balance.Endpoint{ID: e.Key, Node: e.Rec.Node, Local: e.Peer == m.self, Zone: e.Rec.Labels["zone"], Region: e.Rec.Labels["region"]}
		if !be.Local {
			be.RTT = m.host.RTT(e.Peer)
		}
		if !e.Rec.Healthy {
			be.Down = "unhealthy: " + e.Rec.Reason
			if e.Rec.Reason == "not checked yet" {
				be.Down = "not checked yet"
			}
		}
		out[i] = be
	}
	return out
}

// report is what a call tells its entry point.
type report struct {
	attempts       []api.MeshAttempt
	endpoint, node string
	traceID        string
}

func (m *Service) toReport(rep balance.Report, byKey map[string]Endpoint) report {
	var r report
	for _, a := range rep.Attempts {
		e := byKey[a.Endpoint.ID]
		ma := api.MeshAttempt{Endpoint: e.ID(), Node: e.Rec.Node, Status: a.Status, DurationMs: float64(a.Latency.Microseconds()) / 1000, Hedge: a.Hedge}
		if a.Err != nil {
			ma.Error = a.Err.Error()
		} else if a.Outcome != balance.OK {
			ma.Error = a.Outcome.String()
		}
		r.attempts = append(r.attempts, ma)
		if a.Won {
			r.endpoint, r.node = e.ID(), e.Rec.Node
		}
	}
	return r
}

// roundTrip runs one call by name: resolve, pick, attempt, retry, hedge. The response's
// body is the caller's to close.
func (c *caller) roundTrip(ctx context.Context, cs *callSpec) (*http.Response, report, error) {
	m := c.m
	start := m.now()
	svcKey := cs.ns + "/" + cs.service
	eps, cfg, ok := m.Resolve(cs.ns, cs.service)
	if !ok {
		m.metrics.observe(svcKey, "", "", 0, "unknown_service", 0)
		return nil, report{}, unknownService(m, cs.ns, cs.service)
	}
	b, err := c.balancer(svcKey, cfg)
	if err != nil {
		return nil, report{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	byKey := make(map[string]Endpoint, len(eps))
	for _, e := range eps {
		byKey[e.Key] = e
	}
	ctx, span := m.tracer.Start(otelProp.Extract(ctx, propagation.HeaderCarrier(cs.in.Header)), "mesh.call "+cs.service,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("mesh.service", cs.service),
			attribute.String("mesh.namespace", cs.ns), attribute.String("http.request.method", cs.in.Method)))
	defer span.End()
	cs.in.Header.Del("Traceparent")
	cs.in.Header.Del("Tracestate")

	// Buffer a small body so that retries and hedges can resend it.
	if cs.body == nil && cs.stream == nil && cs.in.Body != nil && cs.in.Body != http.NoBody {
		if cs.in.ContentLength >= 0 && cs.in.ContentLength <= maxBufferedBody {
			b, err := io.ReadAll(io.LimitReader(cs.in.Body, maxBufferedBody+1))
			if err != nil {
				return nil, report{}, fmt.Errorf("%w: reading the request body: %v", ErrBadRequest, err)
			}
			cs.body = b
		} else {
			cs.stream = cs.in.Body
		}
	}
	call := balance.CallInfo{Method: cs.in.Method, Idempotent: cs.idempotent, Key: cs.key,
		Region: m.cfg.Labels["region"], Zone: m.cfg.Labels["zone"]}
	if cs.timeoutMs > 0 {
		call.Timeout = time.Duration(cs.timeoutMs) * time.Millisecond
	}
	if cs.retries != nil {
		call.MaxAttempts = *cs.retries + 1
	}
	if cs.stream != nil {
		call.MaxAttempts = 1 // a streamed body cannot be sent twice
	}
	res, rep, err := b.Do(ctx, call, m.candidates(eps), func(actx context.Context, be balance.Endpoint) (balance.Result, error) {
		e := byKey[be.ID]
		// The request lives on after the attempt returns (its body streams to the caller):
		// it gets its own context, cancelled by the attempt's until the answer's head is
		// here, and later by Release (a lost hedge, a retried 5xx) or the body's Close.
		rctx, rcancel := context.WithCancel(ctx)
		stop := context.AfterFunc(actx, rcancel)
		actx2, aspan := m.tracer.Start(rctx, "mesh.attempt "+e.ID(), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("mesh.endpoint", e.ID()), attribute.String("mesh.node", e.Rec.Node)))
		resp, err := m.send(actx2, cs, e)
		if !stop() && err == nil && actx.Err() != nil {
			resp.Body.Close()
			err = actx.Err()
		}
		if err != nil {
			rcancel()
			aspan.SetStatus(codes.Error, err.Error())
			aspan.End()
			var ae *attemptError
			if errors.As(err, &ae) {
				if errors.Is(ae.err, ErrDenied) {
					return balance.Result{Status: ae.status, Outcome: balance.OK, Value: err}, nil
				}
				if ae.notReached {
					return balance.Result{}, balance.NotReached(err)
				}
				if ae.status != 0 {
					return balance.Result{}, &balance.OutcomeError{Outcome: balance.ServerError, Err: err}
				}
			}
			return balance.Result{}, err
		}
		aspan.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 500 {
			aspan.SetStatus(codes.Error, resp.Status)
		}
		resp.Body = &spanBody{ReadCloser: resp.Body, span: aspan, cancel: rcancel}
		return balance.Result{Status: resp.StatusCode, Value: resp, Release: func() { resp.Body.Close() }}, nil
	})
	r := m.toReport(rep, byKey)
	r.traceID = span.SpanContext().TraceID().String()
	if !span.SpanContext().IsValid() {
		r.traceID = ""
	}
	dur := m.now().Sub(start)
	for _, a := range rep.Attempts[min(1, len(rep.Attempts)):] {
		kind := "retry"
		if a.Hedge {
			kind = "hedge"
		}
		m.metrics.retries.WithLabelValues(svcKey, kind).Inc()
	}
	if err != nil {
		class := errClass(err)
		m.metrics.observe(svcKey, "", "", 0, class, dur)
		span.SetStatus(codes.Error, err.Error())
		return nil, r, callError(cs, err)
	}
	if denied, ok := res.Value.(error); ok {
		m.metrics.observe(svcKey, r.endpoint, r.node, res.Status, "denied", dur)
		return nil, r, denied
	}
	resp := res.Value.(*http.Response)
	class := ""
	if resp.StatusCode >= 500 {
		class = "server_error"
		span.SetStatus(codes.Error, resp.Status)
	}
	m.metrics.observe(svcKey, r.endpoint, r.node, resp.StatusCode, class, dur)
	return resp, r, nil
}

// spanBody ends the attempt's span and releases its context when the body is closed.
type spanBody struct {
	io.ReadCloser
	span   trace.Span
	cancel context.CancelFunc
	once   sync.Once
}

func (s *spanBody) Close() error {
	err := s.ReadCloser.Close()
	s.once.Do(func() {
		s.span.End()
		s.cancel()
	})
	return err
}

// Write lets a 101 (WebSocket) body stay writable through the wrapper.
func (s *spanBody) Write(p []byte) (int, error) {
	if w, ok := s.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("mesh: response body is not writable")
}

func errClass(err error) string {
	switch {
	case errors.Is(err, balance.ErrNoEndpoint):
		return "no_endpoint"
	case errors.Is(err, balance.ErrDeadline), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, balance.ErrNotReached):
		return "connect_error"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "failure"
}

// callError turns Do's error into the mesh's: 503 naming each endpoint's reason, 504 naming
// the attempts, 502 when every attempt failed.
func callError(cs *callSpec, err error) error {
	var ce *balance.CallError
	if !errors.As(err, &ce) {
		return err
	}
	switch {
	case errors.Is(ce.Kind, balance.ErrNoEndpoint) || ce.NoEndpoint != nil && len(ce.Report.Attempts) == 0:
		return fmt.Errorf("%w for %s: %s", ErrNoHealthy, cs.service, ce.Error())
	case errors.Is(ce.Kind, balance.ErrDeadline):
		return &deadlineError{service: cs.service, msg: ce.Error()}
	case errors.Is(ce.Kind, context.Canceled):
		return fmt.Errorf("%w: call to %s cancelled: %s", context.Canceled, cs.service, ce.Error())
	}
	return &badGatewayError{service: cs.service, msg: ce.Error()}
}

type deadlineError struct{ service, msg string }

func (e *deadlineError) Error() string { return "mesh: call to " + e.service + ": " + e.msg }
func (e *deadlineError) Unwrap() error { return context.DeadlineExceeded }

type badGatewayError struct{ service, msg string }

func (e *badGatewayError) Error() string { return "mesh: call to " + e.service + ": " + e.msg }

// callTransport is the RoundTripper of the loopback entry point: a call by name.
type callTransport struct {
	m    *Service
	spec *callSpec
}

func (t callTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	cs := *t.spec
	cs.in = r
	resp, _, err := t.m.calls.roundTrip(r.Context(), &cs)
	return resp, err
}

// dialService opens a raw TCP connection to an endpoint of a service (CONNECT).
func (c *caller) dialService(ctx context.Context, ns, name, callerNS, callerName, key string) (net.Conn, error) {
	m := c.m
	eps, cfg, ok := m.Resolve(ns, name)
	if !ok {
		return nil, unknownService(m, ns, name)
	}
	b, err := c.balancer(ns+"/"+name, cfg)
	if err != nil {
		return nil, err
	}
	byKey := map[string]Endpoint{}
	for _, e := range eps {
		byKey[e.Key] = e
	}
	cs := &callSpec{service: name}
	res, _, err := b.Do(ctx, balance.CallInfo{Key: key, NoHedge: true}, m.candidates(eps), func(actx context.Context, be balance.Endpoint) (balance.Result, error) {
		conn, err := m.dialTunnel(actx, byKey[be.ID], callerNS, callerName)
		if err != nil {
			if errors.Is(err, ErrDenied) {
				return balance.Result{Outcome: balance.OK, Value: err}, nil
			}
			return balance.Result{}, balance.NotReached(err)
		}
		return balance.Result{Value: conn, Release: func() { conn.Close() }}, nil
	})
	if err != nil {
		return nil, callError(cs, err)
	}
	if e, ok := res.Value.(error); ok {
		return nil, e
	}
	return res.Value.(net.Conn), nil
}
