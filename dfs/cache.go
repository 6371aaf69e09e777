package dfs

import (
	"context"

	"github.com/rads-lang/constellation/dfs/content"
	"github.com/rads-lang/constellation/internal/state"
)

// cacheCtx applies the cache_mb of name's tree (fs init --cache-mb) to the blocks a read
// of name fetches into this node's cache: they are charged to the tree, and past its
// bound the tree's least recently used cached blocks go first. The node-wide
// --dfs-cache-mb still bounds the whole cache. A tree without cache_mb shares the node's
// cache.
func (s *Service) cacheCtx(ctx context.Context, name string) context.Context {
	var tree TreeRecord
	s.st.View(func(vw *state.View) { tree = s.treeOf(vw, name) })
	if tree.CacheMB <= 0 {
		return ctx
	}
	return content.WithCacheClass(ctx, tree.Prefix, tree.CacheMB<<20)
}
