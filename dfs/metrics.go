package dfs

import "github.com/prometheus/client_golang/prometheus"

// metrics are the DFS collectors (constellation_dfs_...).
type metrics struct {
	writes        prometheus.Counter
	writeBytes    prometheus.Counter
	writeFailures prometheus.Counter
	reads         prometheus.Counter
	repairs       prometheus.Counter
	gcRuns        prometheus.Counter
	pinSeconds    prometheus.Histogram
	watchDropped  prometheus.Counter
	strongCommits prometheus.Counter
	strongRetries prometheus.Counter
	staleTokens   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		writes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_writes_total", Help: "Files written through this node."}),
		writeBytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_write_bytes_total", Help: "Bytes of files written through this node."}),
		writeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_write_failures_total", Help: "Writes not acknowledged by enough holders."}),
		reads:         prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_reads_total", Help: "Files opened through this node."}),
		repairs:       prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_repairs_total", Help: "Roots this node pinned to restore their replication factor."}),
		gcRuns:        prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_gc_runs_total", Help: "Block store collections after unreferenced pins were dropped."}),
		pinSeconds:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "constellation_dfs_pin_seconds", Help: "Time to pin a root on this node (fetch and fsync).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		watchDropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_watch_dropped_total", Help: "Watchers ended because they fell behind."}),
		strongCommits: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_strong_commits_total", Help: "Versions of strong trees committed through the lock service by this node."}),
		strongRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_strong_cas_conflicts_total", Help: "Compare-and-set attempts of strong writes that lost to another writer and retried."}),
		staleTokens:   prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_stale_tokens_total", Help: "Strong writes refused for a stale fencing token (here as a holder or by the lock service)."}),
	}
	for _, c := range []prometheus.Collector{m.writes, m.writeBytes, m.writeFailures, m.reads, m.repairs, m.gcRuns, m.pinSeconds, m.watchDropped, m.strongCommits, m.strongRetries, m.staleTokens} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
