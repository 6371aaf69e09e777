package content

import (
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// hotBytes bounds the blocks kept in memory after they were received and checked.
const hotBytes = 32 << 20

// hotBlocks keeps the blocks most recently received from peers (already checked against
// their CIDs) in memory, first in first out, so that the reader that asked for them gets
// them without reading them back from disk and hashing them again. Blocks read from
// disk are always checked.
type hotBlocks struct {
	mu    sync.Mutex
	m     map[string]blocks.Block
	order []string // insertion order; entries no longer in m are skipped
	bytes int
}

func (h *hotBlocks) get(c cid.Cid) blocks.Block {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[key(c)]
}

func (h *hotBlocks) put(b blocks.Block) {
	k := key(b.Cid())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]blocks.Block{}
	}
	if _, ok := h.m[k]; ok {
		return
	}
	h.m[k] = b
	h.order = append(h.order, k)
	h.bytes += len(b.RawData())
	for h.bytes > hotBytes && len(h.order) > 0 {
		old := h.order[0]
		h.order = h.order[1:]
		if ob, ok := h.m[old]; ok {
			h.bytes -= len(ob.RawData())
			delete(h.m, old)
		}
	}
	if len(h.order) > 4*len(h.m)+64 { // compact the order of dropped entries
		keep := h.order[:0]
		for _, k := range h.order {
			if _, ok := h.m[k]; ok {
				keep = append(keep, k)
			}
		}
		h.order = keep
	}
}

func (h *hotBlocks) drop(c cid.Cid) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.m[key(c)]; ok {
		h.bytes -= len(b.RawData())
		delete(h.m, key(c))
	}
}
