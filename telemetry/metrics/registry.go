package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the node's one registry: Gatherer for GET /metrics and the TSDB sampler,
// Registerer (every series gets node="<name>") for the features.
type Registry struct {
	reg *prometheus.Registry
	// Registerer adds the node label to everything registered through it.
	prometheus.Registerer
}

// NewRegistry returns a registry with the Go runtime and process collectors registered,
// whose Registerer labels every series with node=name.
func NewRegistry(node string) *Registry {
	reg := prometheus.NewRegistry()
	r := &Registry{reg: reg, Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg)}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Gatherer is what GET /metrics and the sampler read.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }
