package content

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestNonMemberGetsNothing: a raw libp2p host that knows the cluster's protocol IDs but
// did not pass admission gets no block over the bulk protocol nor bitswap, and is sent no
// want-list.
func TestNonMemberGetsNothing(t *testing.T) {
	hs := startHosts(t, 1, tcpOnly)
	a := newStore(t, hs[0], nil)
	secret := add(t, a, randBytes(40, 300<<10), "")

	raw, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
		t.Logf("connect (may be refused by admission): %v", err)
	}

	// Bulk protocol: the stream is reset before the request is read, or no frame comes.
	if s, err := raw.NewStream(ctx, hs[0].ID(), hs[0].ProtocolID(bulkProtocol)); err == nil {
		req, _ := encodeWant([]cid.Cid{secret.Root})
		s.SetDeadline(time.Now().Add(3 * time.Second))
		writeRawFrame(s, req)
		s.CloseWrite()
		buf := make([]byte, 64)
		if n, err := s.Read(buf); n > 0 {
			t.Fatalf("a non-member got %d bytes from the bulk protocol (err %v)", n, err)
		}
		s.Reset()
	}

	// bitswap under the cluster's prefix, with a block the member will want.
	theirs := blocks.NewBlock(randBytes(41, 1000))
	bstore := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	bstore.Put(ctx, theirs)
	bn := bsnet.NewFromIpfsHost(raw, bsnet.Prefix(protocol.ID(bitswapPrefix("dfs-test"))))
	bs := bitswap.New(ctx, bn, nil, bstore)
	defer bs.Close()
	raw.Connect(ctx, peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()})
	gctx, gcancel := context.WithTimeout(ctx, 3*time.Second)
	if blk, err := bs.GetBlock(gctx, secret.Root); err == nil {
		t.Fatalf("a non-member got block %s over bitswap", blk.Cid())
	}
	gcancel()

	// The member wants the non-member's block: no want-list may reach the non-member.
	a.cfg.FetchTimeout = 2 * time.Second
	octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
	if _, err := a.Open(octx, theirs.Cid(), nil); err == nil {
		t.Fatal("the member got a block that only a non-member has")
	}
	ocancel()
	if wl := bs.WantlistForPeer(hs[0].ID()); len(wl) != 0 {
		t.Fatalf("the non-member received the member's want-list %v", wl)
	}
}

func writeRawFrame(s interface{ Write([]byte) (int, error) }, b []byte) {
	var hdr [10]byte
	n := putUvarint(hdr[:], uint64(len(b)))
	s.Write(append(hdr[:n], b...))
}

func putUvarint(buf []byte, x uint64) int {
	i := 0
	for x >= 0x80 {
		buf[i] = byte(x) | 0x80
		x >>= 7
		i++
	}
	buf[i] = byte(x)
	return i + 1
}

// TestMembersFilter: the store's own Members check, independent of admission: a
// connected, admitted peer that Members refuses gets no block over bulk or bitswap.
func TestMembersFilter(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], func(c *Config) { c.Members = MembersFunc(func(peer.ID) bool { return false }) })
	b := newStore(t, hs[1], func(c *Config) { c.FetchTimeout = 2 * time.Second })
	added := add(t, a, randBytes(42, 300<<10), "")
	err := b.Pin(ctxT(t), added.Root, []peer.ID{hs[0].ID()})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Pin from a holder whose Members refuses us: %v; want ErrNotFound", err)
	}
	if has, _ := b.Has(ctxT(t), added.Root); has {
		t.Fatal("B got the file")
	}
}
