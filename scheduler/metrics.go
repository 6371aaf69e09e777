package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// schedMetrics are the scheduler's collectors (registered on Config.Metrics).
type schedMetrics struct {
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
	m := &schedMetrics{
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

func (m *schedMetrics) pass(d time.Duration) { m.passes.Observe(d.Seconds()) }

func (m *schedMetrics) writes(w *schedWrites) {
	for coll, kv := range w.puts {
		if k, ok := writeKinds[coll]; ok {
			m.written.WithLabelValues(k).Add(float64(len(kv)))
		}
	}
}
