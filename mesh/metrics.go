package mesh

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
)

// metrics are the mesh's Prometheus collectors plus a bounded window of recent calls per
// service for `mesh metrics` (rps and percentiles over the last minutes).
type metrics struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	retries  *prometheus.CounterVec
	now      func() time.Time

	mu  sync.Mutex
	win map[string]*window // NAMESPACE/NAME
}

// windowSize bounds the samples kept per service (the oldest go first).
const windowSize = 16384

type sample struct {
	at       int64 // unix ns
	dur      time.Duration
	endpoint string
	node     string
	class    string // "" for success
}

type window struct {
	buf  []sample
	next int
	full bool
}

func newMetrics(reg prometheus.Registerer, now func() time.Time) (*metrics, error) {
	m := &metrics{now: now, win: map[string]*window{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_mesh_requests_total",
			Help: "Calls made by this node through the mesh, by service, endpoint and status class."}, []string{"service", "endpoint", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_mesh_request_errors_total",
			Help: "Failed calls by service and error class (server_error, timeout, connect_error, failure, no_endpoint, denied)."}, []string{"service", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "constellation_mesh_request_duration_seconds",
			Help:                        "Duration of calls through the mesh (retries and hedges included), by service and endpoint.",
			Buckets:                     []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 100}, []string{"service", "endpoint"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_mesh_retries_total",
			Help: "Extra attempts (retries and hedges) by service."}, []string{"service", "kind"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.errors, m.latency, m.retries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func codeClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case status >= 200:
		return "2xx"
	}
	return "none"
}

// observe records one finished call.
func (m *metrics) observe(svc, endpoint, node string, status int, class string, d time.Duration) {
	m.requests.WithLabelValues(svc, endpoint, codeClass(status)).Inc()
	if class != "" {
		m.errors.WithLabelValues(svc, class).Inc()
	}
	m.latency.WithLabelValues(svc, endpoint).Observe(d.Seconds())
	m.mu.Lock()
	w := m.win[svc]
	if w == nil {
		w = &window{buf: make([]sample, 0, 256)}
		m.win[svc] = w
	}
	s := sample{at: m.now().UnixNano(), dur: d, endpoint: endpoint, node: node, class: class}
	if len(w.buf) < windowSize {
		w.buf = append(w.buf, s)
	} else {
		w.buf[w.next] = s
		w.next = (w.next + 1) % windowSize
	}
	m.mu.Unlock()
}

// summary computes MeshMetrics over the last span.
func (m *metrics) summary(svc string, span time.Duration) api.MeshMetrics {
	out := api.MeshMetrics{Service: svc, WindowS: span.Seconds(), Errors: map[string]int64{}, Endpoints: []api.MeshEndpointMetrics{}}
	now := m.now()
	from := now.Add(-span).UnixNano()
	m.mu.Lock()
	var ss []sample
	if w := m.win[svc]; w != nil {
		for _, s := range w.buf {
			if s.at >= from {
				ss = append(ss, s)
			}
		}
	}
	m.mu.Unlock()
	if len(ss) == 0 {
		return out
	}
	out.Requests = int64(len(ss))
	out.RPS = float64(len(ss)) / span.Seconds()
	all := make([]time.Duration, 0, len(ss))
	per := map[string][]sample{}
	var errs int64
	for _, s := range ss {
		all = append(all, s.dur)
		per[s.endpoint] = append(per[s.endpoint], s)
		if s.class != "" {
			errs++
			out.Errors[s.class]++
		}
	}
	out.P50Ms, out.P95Ms, out.P99Ms = pct(all, .5), pct(all, .95), pct(all, .99)
	out.ErrorRate = 100 * float64(errs) / float64(len(ss))
	for ep, es := range per {
		d := make([]time.Duration, 0, len(es))
		var e int64
		for _, s := range es {
			d = append(d, s.dur)
			if s.class != "" {
				e++
			}
		}
		out.Endpoints = append(out.Endpoints, api.MeshEndpointMetrics{Endpoint: ep, Node: es[0].node, Requests: int64(len(es)), Errors: e,
			P50Ms: pct(d, .5), P99Ms: pct(d, .99), ErrorRate: 100 * float64(e) / float64(len(es))})
	}
	sort.Slice(out.Endpoints, func(i, j int) bool { return out.Endpoints[i].Endpoint < out.Endpoints[j].Endpoint })
	return out
}

// pct is the p-quantile of ds in milliseconds (ds is sorted in place).
func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(p*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return float64(ds[i].Microseconds()) / 1000
}
