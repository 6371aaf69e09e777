package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/dfs/content"
	"github.com/rads-lang/constellation/dfs/fusefs"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/scheduler"
)

// nodeDFS is the DFS part of the node: the content store, the namespace service and its
// pin protocol, built in that order and closed in reverse.
type nodeDFS struct {
	content *content.Store
	svc     *dfs.Service
	pins    *dfs.PinProtocol
	mounts  *fusefs.Manager // FUSE views (fsmount.go)
	// capacityMB is the configured block store size (0: the disk's free space).
	capacityMB int64
}

// buildDFS builds the content store (<data-dir>/dfs) and the namespace service and
// registers the /v1/fs routes and the gateway (GET /ipfs/{cid}).
func (n *Node) buildDFS(log *slog.Logger) error {
	c := n.cfg.DFS
	if err := c.validate(); err != nil {
		return err
	}
	cacheBytes := c.CacheMB << 20
	if c.CacheMB < 0 {
		cacheBytes = -1
	}
	store, err := content.New(n.ctx, content.Config{
		Dir: filepath.Join(n.cfg.DataDir, "dfs"), CacheBytes: cacheBytes, Capacity: c.CapacityMB << 20,
		ClusterID: n.cfg.Cluster, Log: log.With("svc", "dfs-content"), Metrics: n.registry,
	}, n.host)
	if err != nil {
		return fmt.Errorf("node: dfs content store: %w", err)
	}
	zone := n.cfg.Labels[c.ZoneLabel]
	if c.ZoneLabel == "" {
		zone = n.cfg.Labels["zone"]
		if zone == "" {
			zone = n.cfg.Labels["region"]
		}
	}
	svc, err := dfs.New(n.ctx, dfs.Config{Self: n.host.ID(), NodeName: n.cfg.Node, Zone: zone,
		CapacityBytes: c.CapacityMB << 20, Grace: c.Grace, RepairInterval: c.RepairInterval, Ledger: dfsRoom{n},
		Metrics: n.registry, Consensus: dfsConsensus{n}, StrongTimeout: c.StrongTimeout}, dfs.StoreContent{S: store}, n.members, nil, n.st, log)
	if err != nil {
		store.Close()
		return err
	}
	pins, err := dfs.NewPinProtocol(n.host, svc)
	if err != nil {
		store.Close()
		return err
	}
	svc.SetPeers(pins)
	svc.Register(n.api, store.Gateway())
	n.dfs = nodeDFS{content: store, svc: svc, pins: pins, capacityMB: c.CapacityMB}
	return n.buildFSMounts(log)
}

// closeDFS closes the namespace service, its protocol and the content store.
func (n *Node) closeDFS() {
	n.closeFSMounts()
	if n.dfs.svc != nil {
		n.dfs.svc.Close()
	}
	if n.dfs.pins != nil {
		n.dfs.pins.Close()
	}
	if n.dfs.content != nil {
		if err := n.dfs.content.Close(); err != nil {
			n.log.Warn("dfs content store close", "err", err)
		}
	}
}

// dfsLedger is the scheduler's reservations as the instance service sees them, plus the
// disk the DFS block store holds: instance admission (and, through the node's resource
// record, other nodes' placements) never counts on disk the DFS uses.
type dfsLedger struct {
	*scheduler.Scheduler
	d *nodeDFS
}

// Reserved adds the DFS's share to what reservations hold.
func (l dfsLedger) Reserved() (cpuPercent float64, ramMB, diskMB int64) {
	cpu, ram, disk := l.Scheduler.Reserved()
	return cpu, ram, disk + l.d.chargeMB()
}

// chargeMB is the disk the DFS holds: its configured share, else what is pinned or
// leased in its block store (the cache is evictable and not charged).
func (d *nodeDFS) chargeMB() int64 {
	if d.capacityMB > 0 {
		return d.capacityMB
	}
	if d.content == nil {
		return 0
	}
	u := d.content.Usage()
	return (u.PinnedBytes + u.LeasedBytes + 1<<20 - 1) >> 20
}

// dfsRoom tells the DFS how much of the disk it may hold in all: what it holds plus the
// disk capacity instances and reservations leave (the node's own resource record).
type dfsRoom struct{ n *Node }

func (r dfsRoom) DFSRoomBytes() int64 {
	var rec instances.ResourceRecord
	ok := false
	r.n.st.View(func(v *state.View) {
		if b, _, found := v.GetLWW(instances.CollResources, r.n.host.ID().String()); found {
			ok = state.Decode(b, &rec) == nil
		}
	})
	if !ok || rec.DiskCapacityMB == 0 {
		return 0 // unknown: the DFS uses its configured capacity or the disk's free space
	}
	_, _, resv := r.n.sched.Reserved()
	room := rec.DiskCapacityMB - rec.DiskAllocatedMB - resv
	return max(0, room)<<20 + r.n.dfs.chargeMB()<<20
}

// dfsConsensus gives strong DFS trees the node's lock service (built after the DFS, so
// looked up at each call).
type dfsConsensus struct{ n *Node }

func (c dfsConsensus) CAS(ctx context.Context, key string, expectRev uint64, value []byte, token uint64) (uint64, error) {
	if c.n.locks.svc == nil {
		return 0, errNoLocks
	}
	return c.n.locks.svc.CAS(ctx, key, expectRev, value, token)
}

func (c dfsConsensus) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if c.n.locks.svc == nil {
		return nil, 0, errNoLocks
	}
	return c.n.locks.svc.Get(ctx, key)
}

var errNoLocks = httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "the lock service is not running on this node")

// DFS is the node's file system service (for benchmarks and tests; users go through the
// /v1/fs API).
func (n *Node) DFS() *dfs.Service { return n.dfs.svc }
