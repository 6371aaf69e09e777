package content

import "context"

// Cache classes bound the cache share of a part of the namespace (a DFS tree's
// cache_mb): the blocks a read stores under WithCacheClass belong to its class while
// they are cached, and past the class's bound its least recently used blocks are
// evicted first. Config.CacheBytes still bounds the whole cache.

type cacheClassKey struct{}

type cacheClass struct {
	name  string
	limit int64
}

// WithCacheClass returns a context under which the blocks that Open fetches are
// charged to class name (e.g. a tree's prefix), bounded to limit bytes while cached.
// limit <= 0: no bound of its own (only Config.CacheBytes).
func WithCacheClass(ctx context.Context, name string, limit int64) context.Context {
	if limit <= 0 || name == "" {
		return ctx
	}
	return context.WithValue(ctx, cacheClassKey{}, cacheClass{name: name, limit: limit})
}

func classOf(ctx context.Context) (cacheClass, bool) {
	c, ok := ctx.Value(cacheClassKey{}).(cacheClass)
	return c, ok
}

// classifyLocked charges the fresh block k to ctx's class, if any.
func (s *Store) classifyLocked(ctx context.Context, k string) {
	c, ok := classOf(ctx)
	if !ok {
		return
	}
	if s.blockClass == nil {
		s.blockClass, s.classBytes, s.classLimit = map[string]string{}, map[string]int64{}, map[string]int64{}
	}
	s.blockClass[k] = c.name
	s.classLimit[c.name] = c.limit
	if _, cached := s.lruIdx[k]; cached {
		s.classBytes[c.name] += s.sizes[k]
	}
}

// classCachedLocked follows k entering (d=+1) or leaving (d=-1) the LRU.
func (s *Store) classCachedLocked(k string, n int64, d int64) {
	if c, ok := s.blockClass[k]; ok {
		s.classBytes[c] += d * n
	}
}

// evictClassesLocked evicts the least recently used blocks of every class over its
// bound.
func (s *Store) evictClassesLocked(ctx context.Context) {
	for c, n := range s.classBytes {
		if n <= s.classLimit[c] {
			continue
		}
		for e := s.lru.Back(); e != nil && s.classBytes[c] > s.classLimit[c]; {
			prev := e.Prev()
			k := e.Value.(string)
			if s.blockClass[k] == c {
				if err := s.bs.inner.DeleteBlock(ctx, cidOfKey(k)); err != nil {
					s.log.Warn("dfs content: evict block", "err", err)
					return
				}
				s.forgetLocked(k)
				s.m.evicted.Inc()
			}
			e = prev
		}
	}
}

// CacheClassBytes is the bytes cached under class name (WithCacheClass).
func (s *Store) CacheClassBytes(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.classBytes[name]
}
