package ui

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the dashboard's collectors (constellation_ui_*).
type Metrics struct {
	logins  *prometheus.CounterVec // result: ok, refused
	refused *prometheus.CounterVec // reason: csrf, origin, session
}

// NewMetrics registers the collectors on reg (nil: a private registry) with the number of
// live sessions of sessions.
func NewMetrics(reg prometheus.Registerer, sessions *Sessions) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_ui_logins_total",
			Help: "Dashboard logins by result (ok, refused: the token did not authenticate)."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_ui_requests_refused_total",
			Help: "Cookie-authenticated requests refused before the API: csrf (no or a wrong X-CSRF-Token), origin (another site), session (unknown or ended)."}, []string{"reason"}),
	}
	reg.MustRegister(m.logins, m.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "constellation_ui_sessions",
		Help: "Live dashboard sessions held in memory."}, func() float64 { return float64(sessions.Len()) }))
	return m
}

func (m *Metrics) login(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.logins.WithLabelValues("ok").Inc()
	} else {
		m.logins.WithLabelValues("refused").Inc()
	}
}

func (m *Metrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}
