package p2p

import "github.com/libp2p/go-libp2p/core/peer"

// SetPartition makes the host refuse every connection to the peers cut returns true for
// and closes its current connections to them; nil heals (peers are dialled again by the
// join loops, membership and anti-entropy). For tests that partition in-process clusters.
func (h *Host) SetPartition(cut func(peer.ID) bool) {
	h.mu.Lock()
	h.partitioned = cut
	h.mu.Unlock()
	if cut == nil {
		return
	}
	for _, p := range h.h.Network().Peers() {
		if cut(p) {
			_ = h.h.Network().ClosePeer(p)
		}
	}
}
