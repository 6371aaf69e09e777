// Package balancemetrics exports the state of mesh/balance Balancers as
// Prometheus metrics, read at scrape time (no goroutine, no copy kept):
//
//	constellation_mesh_endpoint_breaker_state{service,endpoint,state}  1 for the current state (closed, open, half_open)
//	constellation_mesh_endpoint_breaker_opens_total{service,endpoint}  times the breaker opened
//	constellation_mesh_endpoint_ejected{service,endpoint}              1 while outlier-ejected
//	constellation_mesh_endpoint_in_flight{service,endpoint}            requests in flight from this node
//	constellation_mesh_endpoint_latency_ewma_seconds{service,endpoint} p2c_ewma's latency estimate (measured endpoints)
//	constellation_mesh_retry_budget_remaining{service}                 retries (and hedges) the budget still allows now
//	constellation_mesh_hedge_delay_seconds{service}                    current hedge delay (0: not hedging)
//
// Register it on the node's registry with the function that lists the live
// Balancers by service name (NAMESPACE/NAME):
//
//	reg.MustRegister(balancemetrics.New(func(yield func(string, *balance.Balancer) bool) {
//		for name, b := range balancers() { if !yield(name, b) { return } }
//	}))
package balancemetrics

import (
	"iter"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/mesh/balance"
)

var (
	breakerState = prometheus.NewDesc("constellation_mesh_endpoint_breaker_state",
		"Circuit breaker state of an endpoint as seen by this node: 1 for the current state.", []string{"service", "endpoint", "state"}, nil)
	breakerOpens = prometheus.NewDesc("constellation_mesh_endpoint_breaker_opens_total",
		"Times an endpoint's circuit breaker opened on this node.", []string{"service", "endpoint"}, nil)
	ejected = prometheus.NewDesc("constellation_mesh_endpoint_ejected",
		"1 while the endpoint is ejected by outlier detection on this node.", []string{"service", "endpoint"}, nil)
	inFlight = prometheus.NewDesc("constellation_mesh_endpoint_in_flight",
		"Requests from this node in flight to the endpoint.", []string{"service", "endpoint"}, nil)
	latency = prometheus.NewDesc("constellation_mesh_endpoint_latency_ewma_seconds",
		"Peak-EWMA latency estimate of the endpoint (p2c_ewma), for measured endpoints.", []string{"service", "endpoint"}, nil)
	budget = prometheus.NewDesc("constellation_mesh_retry_budget_remaining",
		"Retries and hedges the service's retry budget still allows now.", []string{"service"}, nil)
	hedgeDelay = prometheus.NewDesc("constellation_mesh_hedge_delay_seconds",
		"Delay after which an idempotent call is hedged (0: too few samples or hedging off).", []string{"service"}, nil)
)

var states = []balance.BreakerState{balance.Closed, balance.Open, balance.HalfOpen}

// Collector is a prometheus.Collector over a changing set of Balancers.
type Collector struct {
	list iter.Seq2[string, *balance.Balancer]
}

// New returns a Collector reading the Balancers list yields at each scrape.
// list must not hold a lock the Balancers' methods could wait for.
func New(list iter.Seq2[string, *balance.Balancer]) *Collector { return &Collector{list: list} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{breakerState, breakerOpens, ejected, inFlight, latency, budget, hedgeDelay} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for svc, b := range c.list {
		if b == nil {
			continue
		}
		st := b.Stats()
		ch <- prometheus.MustNewConstMetric(budget, prometheus.GaugeValue, st.RetryAllowance, svc)
		ch <- prometheus.MustNewConstMetric(hedgeDelay, prometheus.GaugeValue, st.HedgeDelay.Seconds(), svc)
		for _, e := range b.Status() {
			for _, s := range states {
				v := 0.0
				if e.Breaker == s {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(breakerState, prometheus.GaugeValue, v, svc, e.ID, s.String())
			}
			ch <- prometheus.MustNewConstMetric(breakerOpens, prometheus.CounterValue, float64(e.BreakerOpens), svc, e.ID)
			ej := 0.0
			if e.Ejected {
				ej = 1
			}
			ch <- prometheus.MustNewConstMetric(ejected, prometheus.GaugeValue, ej, svc, e.ID)
			ch <- prometheus.MustNewConstMetric(inFlight, prometheus.GaugeValue, float64(e.InFlight), svc, e.ID)
			if e.Latency > 0 {
				ch <- prometheus.MustNewConstMetric(latency, prometheus.GaugeValue, e.Latency.Seconds(), svc, e.ID)
			}
		}
	}
}
