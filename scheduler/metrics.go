package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/sched"
)

// schedMetrics are the scheduler's collectors (registered on Config.Metrics).
type schedMetrics struct {
	reg     prometheus.Registerer
	passes  prometheus.Histogram
	written *prometheus.CounterVec
}

// writeKinds names the records a pass writes, by collection, as the metric's label.
var writeKinds = map[string]string{
	CollClaims:       "claim",
	CollRejections:   "rejection",
	CollDeployments:  "deployment",
	CollReservations: "reservation",
	CollDeployStatus: "status",
}

func newSchedMetrics(reg prometheus.Registerer) *schedMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &schedMetrics{reg: reg,
		passes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "constellation_scheduler_pass_seconds",
			Help:    "Duration of the scheduler's passes on this node (a pass decides the deployments this node owns and admits its claims).",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 10, 16),
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "constellation_scheduler_records_written_total",
			Help: "Scheduling records this node wrote: claims (placement decisions), rejections, deployment and status records, reservations.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.passes, m.written)
	return m
}

// pendingCollector reports, at each scrape, the replicas each deployment this node owns
// (its rendezvous owner) wants but has not placed: only the owner reports a deployment,
// so a sum over the cluster counts each one once.
type pendingCollector struct {
	s    *Scheduler
	desc *prometheus.Desc
}

func newPendingCollector(s *Scheduler) *pendingCollector {
	return &pendingCollector{s: s, desc: prometheus.NewDesc("constellation_scheduler_pending_instances",
		"Replicas a deployment wants but has no live placement for (instances - placed, at least 0), reported by the deployment's owner node.",
		[]string{"deployment", "namespace"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.s.pendingByDeployment() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(p.pending), p.name, p.namespace)
	}
}

type pendingDeployment struct {
	name, namespace string
	pending         int
}

// pendingByDeployment is, for each live deployment this node owns, the replicas it wants
// and has not placed.
func (s *Scheduler) pendingByDeployment() []pendingDeployment {
	st := s.snapshot()
	rv := sched.NewRendezvous(st.members)
	var out []pendingDeployment
	for _, name := range sortedKeys(st.deps) {
		d := st.deps[name]
		if d.Deleted || rv.Owner(name) != st.self {
			continue
		}
		status := s.status(st, d)
		out = append(out, pendingDeployment{name: d.Name, namespace: d.Namespace, pending: max(0, status.Instances-status.Placed)})
	}
	return out
}

func (m *schedMetrics) pass(d time.Duration) { m.passes.Observe(d.Seconds()) }

func (m *schedMetrics) writes(w *schedWrites) {
	for coll, kv := range w.puts {
		if k, ok := writeKinds[coll]; ok {
			m.written.WithLabelValues(k).Add(float64(len(kv)))
		}
	}
}
