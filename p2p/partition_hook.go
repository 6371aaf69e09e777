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

// SetNoDirect makes the host refuse direct connections (dialled or accepted) with the
// peers cut returns true for, as if both sat behind symmetric NATs: only connections
// through a relay reach them. nil lifts it. For tests of relayed paths in-process.
func (h *Host) SetNoDirect(cut func(peer.ID) bool) {
	h.mu.Lock()
	h.noDirect = cut
	h.mu.Unlock()
}
