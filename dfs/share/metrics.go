package share

import "github.com/prometheus/client_golang/prometheus"

// metrics are the constellation_dfs_share_* collectors.
type metrics struct {
	shares    prometheus.Gauge
	lag       *prometheus.HistogramVec
	lastLag   *prometheus.GaugeVec
	applied   *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	errors    prometheus.Counter
	rounds    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		shares: prometheus.NewGauge(prometheus.GaugeOpts{Name: "constellation_dfs_share_shares",
			Help: "Shared directories on this node."}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "constellation_dfs_share_lag_seconds",
			Help:    "From a change on one side of a share to its application on the other (direction up: local to DFS, down: DFS to local).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"direction"}),
		lastLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "constellation_dfs_share_last_lag_seconds",
			Help: "The lag of the last change a share applied."}, []string{"share"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_dfs_share_applied_total",
			Help: "Changes applied by shares, by operation (upload, download, delete-remote, delete-local, keep-local, keep-remote)."}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_dfs_share_bytes_total",
			Help: "Bytes moved by shares (up: uploaded, down: downloaded)."}, []string{"direction"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_dfs_share_conflicts_total",
			Help: "Paths changed on both sides and resolved by the share's policy."}, []string{"policy"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_share_errors_total",
			Help: "Steps of a share that failed (retried at the next round)."}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_share_rounds_total",
			Help: "Reconciliation rounds run by shares."}),
	}
	for _, c := range []prometheus.Collector{m.shares, m.lag, m.lastLag, m.applied, m.bytes, m.conflicts, m.errors, m.rounds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
