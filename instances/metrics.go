package instances

import (
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/sandbox"
)

// Usage is one local instance's state and cumulative resource use, for telemetry.
type Usage struct {
	Name, Namespace string
	Deployment      string // empty: a standalone instance
	Running         bool
	CPUSeconds      float64
	RAMBytes        float64
	DiskBytes       float64
	PIDs            int64
	Restarts        int
	OOMKills        int
	LastExit        *sandbox.Exit
	// MetricsAddr is HOST:PORT where the running instance serves /metrics (create
	// --metrics-port), reachable from the node; empty when it declares none.
	MetricsAddr string
}

// Usage reads every local instance's stats (nothing when the runtime never opened).
func (m *Service) Usage() []Usage {
	rt := m.local()
	if rt == nil {
		return nil
	}
	var out []Usage
	for _, in := range rt.List() {
		u := Usage{Name: in.Name, Running: in.State == sandbox.StateRunning, Restarts: in.Restarts, LastExit: in.LastExit}
		if r, ok := m.record(in.Name); ok {
			u.Namespace, u.Deployment = r.namespace(), r.Deployment
			if r.MetricsPort > 0 && u.Running {
				host := in.IP
				if host == "" || in.Spec.Network == sandbox.NetworkHost {
					host = "127.0.0.1"
				}
				u.MetricsAddr = net.JoinHostPort(host, strconv.Itoa(r.MetricsPort))
			}
		}
		if st, err := rt.Stats(in.Name); err == nil {
			u.CPUSeconds, u.RAMBytes, u.DiskBytes, u.PIDs = st.CPUSeconds, st.RAMMB*(1<<20), st.DiskMB*(1<<20), st.PIDs
			u.Restarts = st.Restarts
		}
		m.oomMu.Lock()
		u.OOMKills = m.ooms[in.Name]
		m.oomMu.Unlock()
		out = append(out, u)
	}
	return out
}

// LocalNamespace reports whether instance name runs on this node, and its namespace.
func (m *Service) LocalNamespace(name string) (string, bool) {
	rt := m.local()
	if rt == nil {
		return "", false
	}
	if _, err := rt.Get(name); err != nil {
		return "", false
	}
	r, ok := m.record(name)
	if !ok {
		return "default", true
	}
	return r.namespace(), true
}

// countOOM counts runs ended by the OOM killer (onEvent).
func (m *Service) countOOM(ev sandbox.Event) {
	if ev.Exit == nil || ev.Exit.Reason != sandbox.ReasonOOMKilled {
		return
	}
	m.oomMu.Lock()
	if m.ooms == nil {
		m.ooms = map[string]int{}
	}
	m.ooms[ev.Instance]++
	m.oomMu.Unlock()
}

// serviceMetrics are the instance service's own collectors.
type serviceMetrics struct {
	phase *prometheus.HistogramVec
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &serviceMetrics{phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "constellation_sandbox_start_seconds",
		Help: "Time of each phase of an instance create on this node: admit (resource admission), create (sandbox set-up), start (the program started).",
		// 1 ms to 30 s: a create is a few ms to a few hundred ms; a cold image takes seconds.
		Buckets: prometheus.ExponentialBucketsRange(0.001, 30, 16),
	}, []string{"phase"})}
	reg.MustRegister(m.phase)
	return m
}

// observeCreate records the phases of one create (started: the program was started).
func (m *serviceMetrics) observeCreate(admit, create, start time.Duration, started bool) {
	m.phase.WithLabelValues("admit").Observe(admit.Seconds())
	m.phase.WithLabelValues("create").Observe(create.Seconds())
	if started {
		m.phase.WithLabelValues("start").Observe(start.Seconds())
	}
}
