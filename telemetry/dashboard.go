package telemetry

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Thresholds of the cluster health rule (docs/monitor.md, "Dashboard"):
//
//	critical  at most half of the cluster's nodes are alive, or the cluster's average
//	          memory use is at least CriticalPercent
//	degraded  any node is not alive (suspect, dead), or the average CPU or memory use is
//	          at least DegradedPercent, or one node's memory use is at least CriticalPercent,
//	          or a named health check fails
//	healthy   otherwise
//
// Nodes that left gracefully do not count.
const (
	DegradedPercent = 90
	CriticalPercent = 95
)

// Dashboard computes the seed's monitor.dashboard() over the whole cluster.
func (s *Service) Dashboard(ctx context.Context) api.Dashboard {
	d := api.Dashboard{}
	for _, n := range s.members.Nodes() {
		if n.Status == api.StatusLeft {
			continue
		}
		d.NodesTotal++
		if n.Status == api.StatusAlive {
			d.NodesHealthy++
			d.InstancesTotal += n.Instances
		}
	}
	now := time.Now()
	val := func(q string) (float64, bool) {
		res, err := s.Instant(ctx, q, now)
		if err != nil {
			d.Warnings = append(d.Warnings, err.Error())
			return 0, false
		}
		d.Warnings = append(d.Warnings, res.Warnings...)
		if len(res.Series) == 0 || res.Series[0].Value == nil || math.IsNaN(res.Series[0].Value.V) {
			return 0, false
		}
		return res.Series[0].Value.V, true
	}
	round := func(v float64) float64 { return math.Round(v*10) / 10 }
	window := s.RateWindow()
	cpu, _ := val("avg(constellation_node_cpu_percent)")
	ram, _ := val("avg(constellation_node_memory_used_percent)")
	maxRAM, _ := val("max(constellation_node_memory_used_percent)")
	in, _ := val("sum(rate(constellation_node_network_receive_bytes_total[" + window + "])) * 8 / 1e6")
	out, _ := val("sum(rate(constellation_node_network_transmit_bytes_total[" + window + "])) * 8 / 1e6")
	d.CPUPercent, d.RAMPercent, d.NetworkInMbps, d.NetworkOutMbps = round(cpu), round(ram), math.Round(in*1000)/1000, math.Round(out*1000)/1000
	d.Checks = s.HealthChecks()
	d.Health, d.Reasons = Health(HealthInput{NodesTotal: d.NodesTotal, NodesAlive: d.NodesHealthy,
		CPUPercent: cpu, RAMPercent: ram, MaxRAMPercent: maxRAM, Checks: d.Checks})
	return d
}

// RateWindow is the range of rate() over the node counters: four scrapes, at least a minute.
func (s *Service) RateWindow() string {
	return fmt.Sprintf("%ds", int(max(time.Minute, 4*s.cfg.Interval).Seconds()))
}

// HealthInput is what the cluster health rule looks at.
type HealthInput struct {
	NodesTotal, NodesAlive                int // nodes that left gracefully do not count
	CPUPercent, RAMPercent, MaxRAMPercent float64
	Checks                                []api.HealthCheck
}

// Health applies the cluster health rule (see the thresholds above): healthy, degraded or
// critical, and why it is not healthy.
func Health(in HealthInput) (string, []string) {
	health := api.HealthHealthy
	var reasons []string
	degrade := func(why string) {
		if health == api.HealthHealthy {
			health = api.HealthDegraded
		}
		reasons = append(reasons, why)
	}
	if in.NodesTotal > 0 && in.NodesAlive*2 <= in.NodesTotal {
		health = api.HealthCritical
		reasons = append(reasons, fmt.Sprintf("only %d of %d nodes are alive", in.NodesAlive, in.NodesTotal))
	} else if in.NodesAlive < in.NodesTotal {
		degrade(fmt.Sprintf("%d of %d nodes are not alive", in.NodesTotal-in.NodesAlive, in.NodesTotal))
	}
	if in.RAMPercent >= CriticalPercent {
		health = api.HealthCritical
		reasons = append(reasons, fmt.Sprintf("cluster memory use %.0f%% >= %d%%", in.RAMPercent, CriticalPercent))
	} else if in.RAMPercent >= DegradedPercent {
		degrade(fmt.Sprintf("cluster memory use %.0f%% >= %d%%", in.RAMPercent, DegradedPercent))
	} else if in.MaxRAMPercent >= CriticalPercent {
		degrade(fmt.Sprintf("a node's memory use is %.0f%% >= %d%%", in.MaxRAMPercent, CriticalPercent))
	}
	if in.CPUPercent >= DegradedPercent {
		degrade(fmt.Sprintf("cluster CPU use %.0f%% >= %d%%", in.CPUPercent, DegradedPercent))
	}
	for _, c := range in.Checks {
		if c.Status == "failing" {
			degrade(fmt.Sprintf("health check %s failing on %s: %s", c.Name, c.Node, c.Output))
		}
	}
	return health, reasons
}

func (s *Service) handleDashboard(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.Dashboard(r.Context()))
}
