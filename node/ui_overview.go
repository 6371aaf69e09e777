package node

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/scheduler"
	"github.com/rads-lang/constellation/telemetry"
	"github.com/rads-lang/constellation/telemetry/alert"
)

// overviewColls are the collections whose changes end a blocking overview read: member
// records and statuses, instances, drains, alert states.
var overviewColls = []string{CollNodes, instances.Coll, scheduler.CollDrains, alert.CollState}

// overviewFresh is how long a computed overview is served again for the same state index
// (ten open dashboards cost one computation a second, not ten).
const overviewFresh = time.Second

// Host metrics come from PromQL over the whole cluster, which waits for a suspect node
// (up to the telemetry remote timeout): they are read at most every metricsFresh, in the
// background once a first sample is held, each read bounded by metricsBudget, so a
// member's status change shows at once.
const (
	metricsFresh  = 5 * time.Second
	metricsBudget = 3 * time.Second
)

// overviewCache holds the last overview and the state index it was computed at, and the
// last host metrics.
type overviewCache struct {
	mu         sync.Mutex
	index      uint64
	at         time.Time
	ov         api.ClusterOverview
	met        overviewMetrics
	refreshing bool
	closed     bool
	wg         sync.WaitGroup // the background metrics read
}

// overviewMetrics are the hosts' use by node name, as of at.
type overviewMetrics struct {
	at               time.Time
	cpu, ram, rx, tx map[string]float64
	warnings         []string
}

// close stops background reads (node shutdown, after the node's context ended).
func (c *overviewCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}

func (n *Node) registerOverview() {
	n.api.Handle("GET /v1/cluster/overview", func(w http.ResponseWriter, r *http.Request) {
		if !httpapi.Block(w, r, n.st, overviewColls...) {
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, n.ClusterOverview(r.Context()))
	})
}

// ClusterOverview is GET /v1/cluster/overview (recomputed at most once a second while the
// state does not change).
func (n *Node) ClusterOverview(ctx context.Context) api.ClusterOverview {
	idx := n.st.Index(overviewColls...)
	c := &n.overview
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.index == idx && !c.at.IsZero() && now.Sub(c.at) < overviewFresh {
		return c.ov
	}
	switch {
	case c.met.at.IsZero(): // the first read waits for the metrics
		c.met = n.readOverviewMetrics(ctx)
	case now.Sub(c.met.at) >= metricsFresh && !c.refreshing && !c.closed:
		c.refreshing = true
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			m := n.readOverviewMetrics(n.ctx)
			c.mu.Lock()
			c.met, c.refreshing = m, false
			c.mu.Unlock()
		}()
	}
	c.ov, c.index, c.at = n.computeOverview(c.met, now), idx, now
	return c.ov
}

// readOverviewMetrics reads every node's CPU, memory and network use (label node = name).
func (n *Node) readOverviewMetrics(ctx context.Context) overviewMetrics {
	ctx, cancel := context.WithTimeout(ctx, metricsBudget)
	defer cancel()
	now := time.Now()
	m := overviewMetrics{at: now}
	byNode := func(q string) map[string]float64 {
		out := map[string]float64{}
		res, err := n.tel.Instant(ctx, q, now)
		if err != nil {
			m.warnings = append(m.warnings, "host metrics: "+err.Error())
			return out
		}
		m.warnings = append(m.warnings, res.Warnings...)
		for _, s := range res.Series {
			if s.Value != nil && !math.IsNaN(s.Value.V) && !math.IsInf(s.Value.V, 0) {
				out[s.Metric["node"]] = s.Value.V
			}
		}
		return out
	}
	w := n.tel.RateWindow()
	m.cpu = byNode("max by (node) (constellation_node_cpu_percent)")
	m.ram = byNode("max by (node) (constellation_node_memory_used_percent)")
	m.rx = byNode("sum by (node) (rate(constellation_node_network_receive_bytes_total[" + w + "])) * 8 / 1e6")
	m.tx = byNode("sum by (node) (rate(constellation_node_network_transmit_bytes_total[" + w + "])) * 8 / 1e6")
	return m
}

// computeOverview puts the members, instances and alerts as they are now together with
// the last host metrics.
func (n *Node) computeOverview(met overviewMetrics, now time.Time) api.ClusterOverview {
	ov := api.ClusterOverview{GeneratedAt: now.UTC(), Nodes: []api.OverviewNode{}, Links: []api.OverviewLink{}}
	ov.Warnings = append(ov.Warnings, met.warnings...)
	if age := now.Sub(met.at); age > 2*metricsFresh {
		ov.Warnings = append(ov.Warnings, fmt.Sprintf("host metrics are %v old", age.Round(time.Second)))
	}
	for _, a := range n.alerts.Alerts(false) {
		switch {
		case a.Silenced:
		case a.State == api.AlertFiring:
			ov.AlertsFiring++
		case a.State == api.AlertPending:
			ov.AlertsPending++
		}
	}
	running := map[string]int{}
	status := map[string]string{}
	for _, x := range n.members.Nodes() {
		status[x.ID] = x.Status
	}
	for _, r := range n.instances.List() {
		if status[r.NodeID] == api.StatusLeft {
			continue
		}
		ov.InstancesTotal++
		if r.Status == api.InstanceRunning && status[r.NodeID] == api.StatusAlive {
			ov.InstancesRunning++
			running[r.NodeID]++
		}
	}
	nodes := n.Nodes()
	var cpuSum, ramSum, maxRAM float64
	var cpuN, ramN int
	for _, x := range nodes {
		if x.Status == api.StatusLeft {
			continue
		}
		ov.NodesTotal++
		on := api.OverviewNode{Name: x.Name, ID: x.ID, Status: x.Status, Self: x.Self, Draining: x.Draining,
			Labels: x.Labels, LastSeen: x.LastSeen, CPUCores: x.CPUTotal, RAMTotalMB: x.RAMTotalMB,
			Instances: x.Instances, Running: running[x.ID], Reachability: x.Reachability, NATType: x.NATType}
		alive := x.Status == api.StatusAlive
		if alive {
			ov.NodesAlive++
		}
		if v, ok := met.cpu[x.Name]; ok {
			on.Metrics, on.CPUPercent = true, round1(v)
			if alive {
				cpuSum, cpuN = cpuSum+v, cpuN+1
			}
		}
		if v, ok := met.ram[x.Name]; ok {
			on.Metrics, on.RAMPercent = true, round1(v)
			on.RAMUsedMB = uint64(v / 100 * float64(x.RAMTotalMB))
			if alive {
				ramSum, ramN, maxRAM = ramSum+v, ramN+1, max(maxRAM, v)
			}
		}
		on.NetworkInMbps, on.NetworkOutMbps = round3(met.rx[x.Name]), round3(met.tx[x.Name])
		if alive {
			ov.NetworkInMbps += met.rx[x.Name]
			ov.NetworkOutMbps += met.tx[x.Name]
		}
		ov.Nodes = append(ov.Nodes, on)
	}
	if cpuN > 0 {
		ov.CPUPercent = round1(cpuSum / float64(cpuN))
	}
	if ramN > 0 {
		ov.RAMPercent = round1(ramSum / float64(ramN))
	}
	ov.NetworkInMbps, ov.NetworkOutMbps = round3(ov.NetworkInMbps), round3(ov.NetworkOutMbps)
	ov.Health, ov.Reasons = telemetry.Health(telemetry.HealthInput{NodesTotal: ov.NodesTotal, NodesAlive: ov.NodesAlive,
		CPUPercent: ov.CPUPercent, RAMPercent: ov.RAMPercent, MaxRAMPercent: maxRAM, Checks: n.tel.HealthChecks()})
	ov.Links = n.overviewLinks(nodes)
	return ov
}

// overviewLinks pairs every two members either of which measured an RTT to the other;
// the links of this node carry its connection type.
func (n *Node) overviewLinks(nodes []api.NodeInfo) []api.OverviewLink {
	byID := map[string]api.NodeInfo{}
	for _, x := range nodes {
		if x.Status != api.StatusLeft {
			byID[x.ID] = x
		}
	}
	var self api.NodeInfo
	for _, x := range nodes {
		if x.Self {
			self = x
		}
	}
	type pair struct{ a, b string }
	seen := map[pair]bool{}
	out := []api.OverviewLink{}
	for _, a := range byID {
		for _, b := range byID {
			if a.Name >= b.Name || seen[pair{a.ID, b.ID}] {
				continue
			}
			var sum float64
			k := 0
			if ms, ok := a.RTTs[b.ID]; ok && ms > 0 {
				sum, k = sum+ms, k+1
			}
			if ms, ok := b.RTTs[a.ID]; ok && ms > 0 {
				sum, k = sum+ms, k+1
			}
			l := api.OverviewLink{From: a.Name, To: b.Name, Connection: "unknown"}
			if other, ok := otherEnd(a, b, self.ID); ok {
				if other.Connection == "" && k == 0 {
					continue // not connected to it
				}
				if other.Connection != "" {
					l.Connection, l.Transport, l.Observer = other.Connection, other.Transport, self.Name
				}
				if other.RTTMs > 0 && k == 0 {
					sum, k = other.RTTMs, 1
				}
			}
			if k == 0 {
				continue
			}
			l.RTTMs = math.Round(sum/float64(k)*100) / 100
			seen[pair{a.ID, b.ID}] = true
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out
}

// otherEnd is the end of link a-b that is not this node, when one end is this node.
func otherEnd(a, b api.NodeInfo, self string) (api.NodeInfo, bool) {
	switch self {
	case "":
		return api.NodeInfo{}, false
	case a.ID:
		return b, true
	case b.ID:
		return a, true
	}
	return api.NodeInfo{}, false
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
