package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
	"github.com/rads-lang/constellation/dfs/fusefs"
)

// fuseBackend adapts the DFS service to what a FUSE mount needs (fusefs.Backend).
type fuseBackend struct{ s *dfs.Service }

func (b fuseBackend) Open(ctx context.Context, path string) (io.ReadSeekCloser, api.FSEntry, error) {
	return b.s.Open(ctx, path, 0)
}

func (b fuseBackend) List(prefix string, recursive bool) ([]api.FSEntry, error) {
	return b.s.List(prefix, recursive)
}

func (b fuseBackend) Put(ctx context.Context, path string, r io.Reader, mode uint32) (api.FSEntry, error) {
	return b.s.Put(ctx, path, r, dfs.PutOptions{Mode: mode})
}

func (b fuseBackend) Remove(path string, recursive bool) (int, error) {
	return b.s.Remove(path, recursive)
}
func (b fuseBackend) Move(from, to string) (int, error) { return b.s.Move(from, to) }

func (b fuseBackend) Watch(prefix string) (<-chan api.FSEvent, func() bool, func(), error) {
	return b.s.Watch(prefix)
}

// buildFSMounts starts the node's FUSE mount manager (fs mount, create --mount-fs): it
// first detaches what a crashed run left mounted, then serves /v1/fs/mounts.
func (n *Node) buildFSMounts(log *slog.Logger) error {
	g, err := fusefs.NewManager(fuseBackend{n.dfs.svc}, fusefs.ManagerConfig{DataDir: n.cfg.DataDir, Log: log.With("svc", "fs-mounts")})
	if err != nil {
		return fmt.Errorf("node: fs mounts: %w", err)
	}
	g.Register(n.api)
	n.dfs.mounts = g
	n.instances.SetFSMounts(g) // create --mount-fs
	return nil
}

// closeFSMounts unmounts every mount (before the DFS service closes).
func (n *Node) closeFSMounts() {
	if n.dfs.mounts != nil {
		if err := n.dfs.mounts.Close(); err != nil {
			n.log.Warn("node: unmounting the fs mounts", "err", err)
		}
	}
}
