package locks

import "github.com/prometheus/client_golang/prometheus"

// metrics are the lock service's collectors.
type metrics struct {
	acquire prometheus.Histogram
	granted prometheus.Counter
	expired prometheus.Counter
	changes prometheus.Counter
	leader  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		acquire: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "constellation_locks_acquire_seconds",
			Help: "Time to acquire a lock through this node (waits included).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		granted: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_locks_granted_total", Help: "Locks granted to callers of this node."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_locks_expired_total", Help: "Leases this node expired as leader."}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_locks_membership_changes_total", Help: "Raft membership changes this node made as leader."}),
		leader:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "constellation_locks_leader", Help: "1 when this node leads the lock group."}),
	}
	for _, c := range []prometheus.Collector{m.acquire, m.granted, m.expired, m.changes, m.leader} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
