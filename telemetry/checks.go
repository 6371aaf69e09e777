package telemetry

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/telemetry/health"
)

func init() {
	httpapi.Classify(http.StatusBadRequest, "bad_request", health.ErrBadCheck)
}

// checkInfo joins a check and its result for the API.
func checkInfo(c health.Check, r health.Result, ok bool) api.HealthCheck {
	h := api.HealthCheck{Name: c.Name, Node: c.Node, Instance: c.Instance, Kind: c.Kind, Target: c.Target, Status: "pending"}
	if ok {
		h.Node, h.Status, h.Output, h.Since = r.Node, r.Status, r.Output, r.Since
	}
	return h
}

// HealthChecks lists every check of the cluster with its last result.
func (s *Service) HealthChecks() []api.HealthCheck {
	if s.cfg.State == nil {
		return []api.HealthCheck{}
	}
	cs, rs := health.List(s.cfg.State)
	out := make([]api.HealthCheck, 0, len(cs))
	for _, c := range cs {
		r, ok := rs[c.Name]
		out = append(out, checkInfo(c, r, ok))
	}
	return out
}

func (s *Service) handleAddCheck(w http.ResponseWriter, r *http.Request) {
	var spec api.HealthCheckSpec
	if !httpapi.Decode(w, r, &spec) {
		return
	}
	if s.cfg.State == nil {
		httpapi.WriteErr(w, fmt.Errorf("%w: health checks need the replicated state", ErrNoStore))
		return
	}
	c := health.Check{Name: spec.Name, Instance: spec.Instance, Kind: spec.Kind, Target: spec.Target}
	for _, d := range []struct {
		s    string
		into *int
		what string
	}{{spec.Interval, &c.IntervalS, "interval"}, {spec.Timeout, &c.TimeoutS, "timeout"}} {
		if d.s == "" {
			continue
		}
		v, err := ParseDuration(d.s)
		if err != nil || v.Seconds() < 1 {
			httpapi.WriteErr(w, httpapi.BadRequest("field %q: %q is not a duration of at least 1s (e.g. 30s)", d.what, d.s))
			return
		}
		*d.into = int(v.Seconds())
	}
	if c.Instance == "" {
		node := spec.Node
		if node == "" {
			node = s.cfg.Name
		}
		_, name, err := s.members.Resolve(node)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		c.Node = name
	} else if spec.Node != "" {
		httpapi.WriteErr(w, fmt.Errorf(`%w: give "node" or "instance", not both: an instance's check runs on the node that runs it`, health.ErrBadCheck))
		return
	}
	if cs, _ := health.List(s.cfg.State); len(cs) >= health.MaxChecks {
		exists := false
		for _, x := range cs {
			exists = exists || x.Name == c.Name
		}
		if !exists {
			httpapi.WriteErr(w, httpapi.BadRequest("the cluster has %d health checks, the limit; remove one first", len(cs)))
			return
		}
	}
	if err := health.Put(s.cfg.State, c); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, checkInfo(c, health.Result{}, false))
}

func (s *Service) handleListChecks(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.HealthChecks())
}

func (s *Service) handleRemoveCheck(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.cfg.State == nil {
		httpapi.WriteErr(w, ErrNoStore)
		return
	}
	ok, err := health.Remove(s.cfg.State, name)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if !ok {
		httpapi.WriteErr(w, httpapi.Errorf(http.StatusNotFound, "not_found", "no health check %q; see 'constellation monitor check list'", name))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkCollector reports the checks this node probes.
type checkCollector struct{ s *Service }

var descCheckUp = prometheus.NewDesc("constellation_health_check_up", "1 while the named health check passes, 0 while it fails (checks this node probes).",
	[]string{"check", "instance"}, nil)

func (c checkCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCheckUp }

func (c checkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.s.HealthChecks() {
		if h.Node != c.s.cfg.Name || h.Status == "pending" {
			continue
		}
		v := 0.0
		if h.Status == health.Passing {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descCheckUp, prometheus.GaugeValue, v, h.Name, h.Instance)
	}
}
