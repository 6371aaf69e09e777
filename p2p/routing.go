package p2p

import "github.com/libp2p/go-libp2p/core/routing"

// ContentRouting is the cluster's private DHT as a content router: provider records are
// exchanged with admitted members only. It is nil before Start and with DisableDHT. The
// DFS announces the roots it pins there, and its bitswap looks providers up in it when
// no known holder has a block.
func (h *Host) ContentRouting() routing.ContentRouting {
	if h.dht == nil {
		return nil
	}
	return h.dht
}
