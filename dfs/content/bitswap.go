package content

import (
	"context"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// newBitswap starts the cluster-private bitswap: its protocols carry the cluster's
// prefix (plain IPFS nodes and other clusters do not speak them), it runs on the
// member-only host (a non-member's bitswap stream is reset before a byte is read, and
// no want-list is ever sent to one), and its request filter serves blocks to members
// only. It has no content routing: wants go to the connected members, after the
// holders were asked over the bulk protocol.
func newBitswap(ctx context.Context, s *Store, net Network) *bitswap.Bitswap {
	bn := bsnet.NewFromIpfsHost(net.Libp2p(), bsnet.Prefix(protocol.ID(bitswapPrefix(s.cfg.ClusterID))))
	return bitswap.New(ctx, bn, nil, s.bs,
		bitswap.WithPeerBlockRequestFilter(func(p peer.ID, _ cid.Cid) bool { return s.members.IsMember(p) }),
		bitswap.WithTargetMessageSize(1<<20),
	)
}
