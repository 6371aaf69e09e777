package logs

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log service's collectors (constellation_logs_*).
type metrics struct {
	searches  *prometheus.CounterVec // by scope: cluster, local, remote (answered for a member)
	searchDur prometheus.Histogram
	submitted prometheus.Counter
}

// register creates the collectors on reg (nil: a private registry).
func (s *Service) registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_logs_searches_total",
			Help: "Log searches run on this node, by scope: cluster (fanned out from here), local, remote (for a member)."}, []string{"scope"}),
		searchDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "constellation_logs_search_duration_seconds",
			Help: "Duration of log searches started on this node (fan-out and merge included).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_logs_submitted_entries_total",
			Help: "Structured entries accepted by POST /v1/monitor/logs."}),
	}
	st := s.store
	cs := []prometheus.Collector{m.searches, m.searchDur, m.submitted,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "constellation_logs_entries_total",
			Help: "Entries appended to this node's log store since it started."}, func() float64 { return float64(st.Stats().Appended) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "constellation_logs_disk_bytes",
			Help: "Bytes of the log store on disk (compressed sealed segments, their indexes and the active segment)."}, func() float64 { return float64(st.Stats().DiskBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "constellation_logs_segments",
			Help: "Sealed log segments on disk."}, func() float64 { return float64(st.Stats().Segments) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "constellation_logs_follow_dropped_entries_total",
			Help: "Entries a slow follower (logs search -f) did not receive."}, func() float64 { return float64(st.Stats().FollowDropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "constellation_logs_corrupt_segments_total",
			Help: "Segments found corrupt and skipped since the store opened."}, func() float64 { return float64(st.corruptCount()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	s.m = m
	return nil
}

func (s *Store) corruptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.badSeen)
}
