package content

import (
	"context"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
)

// newBitswap starts the cluster-private bitswap: its protocols carry the cluster's
// prefix (plain IPFS nodes and other clusters do not speak them), it runs on the
// member-only host (a non-member's bitswap stream is reset before a byte is read, and
// no want-list is ever sent to one), and its request filter serves blocks to members
// only. Its wants go to the connected members and, with a content router (the private
// DHT), to the providers found there; it is asked only after the holders were asked over
// the bulk protocol.
func newBitswap(ctx context.Context, s *Store, net Network, cr routing.ContentRouting) *bitswap.Bitswap {
	bn := bsnet.NewFromIpfsHost(net.Libp2p(), bsnet.Prefix(protocol.ID(bitswapPrefix(s.cfg.ClusterID))))
	var finder routing.ContentDiscovery
	if cr != nil {
		finder = cr
	}
	return bitswap.New(ctx, bn, finder, s.bs,
		bitswap.WithPeerBlockRequestFilter(func(p peer.ID, _ cid.Cid) bool { return s.members.IsMember(p) }),
		bitswap.WithTargetMessageSize(1<<20),
	)
}

// announce tells the private DHT that this node holds root (after a pin), in the
// background, bounded by FetchTimeout.
func (s *Store) announce(root cid.Cid) {
	if s.router == nil {
		return
	}
	s.goRun(func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FetchTimeout)
		defer cancel()
		if err := s.router.Provide(ctx, root, true); err != nil && s.ctx.Err() == nil {
			s.log.Debug("dfs content: announce in the DHT", "root", root, "err", err)
		}
	})
}
