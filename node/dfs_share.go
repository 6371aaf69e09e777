package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/share"
)

// buildShares builds the shared directories service (<data-dir>/dfs-shares) on the DFS and
// registers /v1/fs/shares. Its runners start with startShares, after the DFS.
func (n *Node) buildShares(log *slog.Logger) error {
	m, err := share.New(n.ctx, share.Config{Dir: filepath.Join(n.cfg.DataDir, "dfs-shares"), DataDir: n.cfg.DataDir,
		Node: n.cfg.Node, Metrics: n.registry, Log: log.With("svc", "dfs-share"), Ready: n.namespaceCaughtUp}, n.dfs.svc)
	if err != nil {
		return fmt.Errorf("node: dfs shares: %w", err)
	}
	m.Register(n.api)
	n.shares = m
	return nil
}

// startShares resumes the persisted shares (each catches up on what changed while the
// node was down).
func (n *Node) startShares() error {
	if n.shares == nil {
		return nil
	}
	return n.shares.Start()
}

// closeShares stops the share runners (before the DFS they write to).
func (n *Node) closeShares() {
	if n.shares != nil {
		n.shares.Close()
	}
}

// Shares is the node's shared directories service (for tests).
func (n *Node) Shares() *share.Manager { return n.shares }

// shareReadyWait bounds how long a share's first round waits for the node to catch up.
const shareReadyWait = 20 * time.Second

// namespaceCaughtUp returns once this node ran an anti-entropy exchange with another
// member that is alive or suspect (its namespace then holds what changed while it was
// down), at once on a lone node (no other member known, none to join), and after shareReadyWait at the latest.
func (n *Node) namespaceCaughtUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, shareReadyWait)
	defer cancel()
	for {
		others := 0
		for _, m := range n.Nodes() {
			if m.ID == n.host.ID().String() || (m.Status != api.StatusAlive && m.Status != api.StatusSuspect) {
				continue
			}
			id, err := peer.Decode(m.ID)
			if err != nil {
				continue
			}
			others++
			sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
			err = n.host.SyncWith(sctx, id)
			scancel()
			if err == nil {
				return
			}
		}
		if others == 0 && len(n.cfg.Join) == 0 {
			return // a lone node (one that joins others waits to know them)
		}
		select {
		case <-ctx.Done():
			n.log.Warn("dfs shares: not caught up with any member; the first rounds compare against this node's view", "waited", shareReadyWait)
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
