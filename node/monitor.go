package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/scheduler"
	"github.com/rads-lang/constellation/telemetry"
	"github.com/rads-lang/constellation/telemetry/health"
	"github.com/rads-lang/constellation/telemetry/metrics"
)

// newTelemetry builds the node's monitoring: one registry (served at GET /metrics), the
// metrics store and the cluster query protocol; the collectors read the instance
// service, the host and the state through the adapters below.
func (n *Node) newTelemetry() (*telemetry.Service, error) {
	cfg := n.cfg
	observeGossipDelay(n.st, n.registry)
	return telemetry.New(n.ctx, telemetry.Config{
		Name: cfg.Node, DataDir: cfg.DataDir, Retention: cfg.MetricsRetention, MaxBytes: cfg.MetricsMaxBytes,
		Interval: cfg.MetricsInterval, MetricsListen: cfg.MetricsListen, Registry: n.registry,
		Instances: instanceSource{n.instances}, Scrape: instanceSource{n.instances}, P2P: p2pSource{n}, StateKeys: stateSource{n.st}, State: n.st,
		LocalInstance: n.instances.LocalNamespace,
		Caller:        instances.CallerInstance,
	}, n.host, n.members, n.api, n.log)
}

// Telemetry is the node's monitoring service (PromQL engine and cluster-wide queryable for
// the alert engine, registry for features).
func (n *Node) Telemetry() *telemetry.Service { return n.tel }

type instanceSource struct{ s *instances.Service }

func (i instanceSource) InstanceSamples() []metrics.InstanceSample {
	us := i.s.Usage()
	out := make([]metrics.InstanceSample, 0, len(us))
	for _, u := range us {
		x := metrics.InstanceSample{Name: u.Name, Namespace: u.Namespace, Deployment: u.Deployment, Running: u.Running, CPUSeconds: u.CPUSeconds,
			RAMBytes: u.RAMBytes, DiskBytes: u.DiskBytes, PIDs: u.PIDs, Restarts: u.Restarts, OOMKills: u.OOMKills}
		if u.LastExit != nil {
			x.ExitCode, x.HasExit = u.LastExit.Code, true
		}
		out = append(out, x)
	}
	return out
}

func (i instanceSource) ScrapeTargets() []metrics.ScrapeTarget {
	var out []metrics.ScrapeTarget
	for _, u := range i.s.Usage() {
		if u.MetricsAddr != "" {
			out = append(out, metrics.ScrapeTarget{Instance: u.Name, Namespace: u.Namespace, Addr: u.MetricsAddr})
		}
	}
	return out
}

type p2pSource struct{ n *Node }

func (p p2pSource) P2PStats() metrics.P2PStats {
	s := p.n.host.Stats()
	return metrics.P2PStats{GossipSent: s.GossipSent, GossipReceived: s.GossipReceived, Syncs: s.Syncs,
		SyncFailures: s.SyncFailures, BytesIn: s.BytesIn, BytesOut: s.BytesOut, Admitted: s.Admitted,
		Connected: len(p.n.host.Libp2p().Network().Peers())}
}

type stateSource struct{ st *state.Store }

// stateCollections are the collections whose sizes are reported.
var stateCollections = []string{CollNodes, instances.Coll, instances.CollResources, scheduler.CollDeployments, scheduler.CollClaims,
	scheduler.CollRejections, scheduler.CollReservations, scheduler.CollQuotas, scheduler.CollDrains, health.CollChecks, health.CollResults}

func (s stateSource) StateKeys() map[string]int {
	out := map[string]int{}
	s.st.View(func(v *state.View) {
		for _, c := range stateCollections {
			out[c] = v.Len(c)
		}
	})
	return out
}

// deltaSizes observes the size of every local delta the state store publishes.
type deltaSizes struct {
	pub  state.Publisher
	hist prometheus.Histogram
}

func newDeltaSizes(pub state.Publisher, reg prometheus.Registerer) *deltaSizes {
	d := &deltaSizes{pub: pub, hist: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "constellation_state_delta_bytes",
		Help:    "Size of the local state changes this node published (one delta per update).",
		Buckets: prometheus.ExponentialBuckets(64, 4, 8), // 64 B to 1 MiB
	})}
	reg.MustRegister(d.hist)
	return d
}

// observeGossipDelay registers constellation_p2p_gossip_delay_seconds: for each gossiped
// delta that changed this node's state, the time from its HLC timestamp to its arrival
// (0 when the sender's clock is ahead).
func observeGossipDelay(st *state.Store, reg prometheus.Registerer) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "constellation_p2p_gossip_delay_seconds",
		Help:    "Time from a gossiped state change's HLC timestamp on its author to its arrival on this node (clock skew clamped to 0).",
		Buckets: prometheus.ExponentialBucketsRange(0.001, 30, 14),
	})
	reg.MustRegister(h)
	st.ObserveGossipDelay(func(d time.Duration) { h.Observe(d.Seconds()) })
}

func (d *deltaSizes) Publish(delta []byte) {
	d.hist.Observe(float64(len(delta)))
	d.pub.Publish(delta)
}
