package traces

import "github.com/prometheus/client_golang/prometheus"

// registerMetrics creates the span store's collectors (constellation_traces_*) on reg
// (nil: a private registry).
func (s *Service) registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	st := s.store
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "constellation_traces_spans",
			Help: "Spans held in this node's span store."}, func() float64 { return float64(st.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "constellation_traces_spans_evicted_total",
			Help: "Spans dropped from the span store to keep its bound (oldest first)."}, func() float64 { return float64(st.Evicted()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Evicted is the number of spans dropped to keep the bound.
func (s *Store) Evicted() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
