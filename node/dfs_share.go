package node

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/rads-lang/constellation/dfs/share"
)

// buildShares builds the shared directories service (<data-dir>/dfs-shares) on the DFS and
// registers /v1/fs/shares. Its runners start with startShares, after the DFS.
func (n *Node) buildShares(log *slog.Logger) error {
	m, err := share.New(n.ctx, share.Config{Dir: filepath.Join(n.cfg.DataDir, "dfs-shares"), DataDir: n.cfg.DataDir,
		Node: n.cfg.Node, Metrics: n.registry, Log: log.With("svc", "dfs-share")}, n.dfs.svc)
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
