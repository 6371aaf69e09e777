package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// P2PStats are the networking layer's cumulative counters (p2p.Host.Stats).
type P2PStats struct {
	GossipSent, GossipReceived, Syncs, SyncFailures uint64
	BytesIn, BytesOut                               int64
	Admitted, Connected                             int
}

// P2PSource reads the networking layer's counters.
type P2PSource interface{ P2PStats() P2PStats }

// StateSource reads the replicated document's size.
type StateSource interface {
	// StateKeys counts the document's keys per collection.
	StateKeys() map[string]int
}

// ClusterCollector reports p2p and replicated-state metrics.
type ClusterCollector struct {
	p2p P2PSource
	st  StateSource

	admitted, connected, gossipSent, gossipRecv, syncs, syncFail, bytesIn, bytesOut, keys *prometheus.Desc
}

// NewClusterCollector reads p and s at every scrape (either may be nil).
func NewClusterCollector(p P2PSource, s StateSource) *ClusterCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("constellation_"+name, help, labels, nil)
	}
	return &ClusterCollector{p2p: p, st: s,
		admitted:   d("p2p_admitted_peers", "Members admitted on this node's host (the cluster key proved)."),
		connected:  d("p2p_connected_peers", "Peers with an open connection (admitted or not)."),
		gossipSent: d("p2p_gossip_sent_total", "Gossip messages published (delta batches and pull notices)."),
		gossipRecv: d("p2p_gossip_received_total", "Gossip messages received from other members."),
		syncs:      d("state_anti_entropy_rounds_total", "Anti-entropy exchanges completed, either role."),
		syncFail:   d("state_anti_entropy_failures_total", "Anti-entropy exchanges that failed."),
		bytesIn:    d("p2p_receive_bytes_total", "Bytes received over libp2p."),
		bytesOut:   d("p2p_transmit_bytes_total", "Bytes sent over libp2p."),
		keys:       d("state_keys", "Keys of the replicated document, per collection.", "collection"),
	}
}

// Describe implements prometheus.Collector.
func (c *ClusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.admitted, c.connected, c.gossipSent, c.gossipRecv, c.syncs, c.syncFail,
		c.bytesIn, c.bytesOut, c.keys} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ClusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.p2p != nil {
		s := c.p2p.P2PStats()
		g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
		k := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
		}
		g(c.admitted, float64(s.Admitted))
		g(c.connected, float64(s.Connected))
		k(c.gossipSent, float64(s.GossipSent))
		k(c.gossipRecv, float64(s.GossipReceived))
		k(c.syncs, float64(s.Syncs))
		k(c.syncFail, float64(s.SyncFailures))
		k(c.bytesIn, float64(s.BytesIn))
		k(c.bytesOut, float64(s.BytesOut))
	}
	if c.st != nil {
		for coll, n := range c.st.StateKeys() {
			ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(n), coll)
		}
	}
}
