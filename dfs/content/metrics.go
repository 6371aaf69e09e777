package content

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	storedN        atomic.Int64 // blocks written (what stored counts)
	corrupt        prometheus.Counter
	badBlocks      prometheus.Counter
	stored         prometheus.Counter
	evicted        prometheus.Counter
	gcFreed        prometheus.Counter
	compacted      prometheus.Counter
	addedBytes     prometheus.Counter
	servedBytes    prometheus.Counter
	holderFailures prometheus.Counter
	importedBlocks prometheus.Counter
	fetchedBlocks  *prometheus.CounterVec
	fetchedBytes   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *Store) (*metrics, error) {
	m := &metrics{
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_corrupt_blocks_total",
			Help: "Blocks read from the local disk whose content did not match their CID (deleted and fetched again)."}),
		badBlocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_bad_received_blocks_total",
			Help: "Blocks received from a peer that did not match the CID asked for (dropped)."}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_blocks_stored_total",
			Help: "Blocks written to the local block store."}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_cache_evictions_total",
			Help: "Cached blocks deleted by the LRU bound."}),
		gcFreed: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_gc_freed_bytes_total",
			Help: "Bytes deleted by GC."}),
		compacted: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_compacted_bytes_total",
			Help: "Bytes of block segments given back to the disk by compaction (dead blocks after GC, eviction or corruption)."}),
		addedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_added_bytes_total",
			Help: "File bytes added on this node."}),
		servedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_bulk_served_bytes_total",
			Help: "Block bytes sent to members over the bulk protocol."}),
		holderFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_holder_failures_total",
			Help: "Bulk requests to a holder that failed (the rest went to other holders)."}),
		importedBlocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "constellation_dfs_imported_blocks_total",
			Help: "Blocks read from imported CAR files."}),
		fetchedBlocks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_dfs_fetched_blocks_total",
			Help: "Blocks fetched from other nodes, by path (bulk, bitswap)."}, []string{"path"}),
		fetchedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "constellation_dfs_fetched_bytes_total",
			Help: "Block bytes fetched from other nodes, by path (bulk, bitswap)."}, []string{"path"}),
	}
	gauge := func(name, help string, f func(Usage) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(s.Usage())) })
	}
	cs := []prometheus.Collector{m.corrupt, m.badBlocks, m.stored, m.evicted, m.gcFreed, m.compacted, m.addedBytes, m.servedBytes, m.holderFailures, m.importedBlocks, m.fetchedBlocks, m.fetchedBytes,
		gauge("constellation_dfs_pinned_bytes", "Bytes of blocks reached by pinned roots.", func(u Usage) int64 { return u.PinnedBytes }),
		gauge("constellation_dfs_cache_bytes", "Bytes of cached (unpinned, unleased) blocks.", func(u Usage) int64 { return u.CacheBytes }),
		gauge("constellation_dfs_used_bytes", "Bytes of all blocks in the store.", func(u Usage) int64 { return u.UsedBytes }),
		gauge("constellation_dfs_disk_bytes", "Bytes of the block segments on disk (live blocks and dead ones not compacted yet).", func(u Usage) int64 { return u.DiskBytes }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("dfs content: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) storedCount() int64 { return m.storedN.Load() }
