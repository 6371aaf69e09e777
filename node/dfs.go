package node

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/dfs/content"
)

// nodeDFS is the DFS part of the node: the content store, the namespace service and its
// pin protocol, built in that order and closed in reverse.
type nodeDFS struct {
	content *content.Store
	svc     *dfs.Service
	pins    *dfs.PinProtocol
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
		ClusterID: n.cfg.Cluster, Log: log.With("svc", "dfs-content"),
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
		CapacityBytes: c.CapacityMB << 20, Grace: c.Grace}, dfs.StoreContent{S: store}, n.members, nil, n.st, log)
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
	n.dfs = nodeDFS{content: store, svc: svc, pins: pins}
	return nil
}

// closeDFS closes the namespace service, its protocol and the content store.
func (n *Node) closeDFS() {
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
