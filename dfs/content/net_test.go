package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"

	testutil2 "github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/p2p"
)

// TestNewWithRealHosts: content.New takes the real *p2p.Host; B pins and reads what A
// added, over the bulk protocol.
func TestNewWithRealHosts(t *testing.T) {
	hs := startHosts(t, 2, both)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	data := randBytes(30, 5<<20+7)
	added := add(t, a, data, "")
	if err := b.Pin(ctxT(t), added.Root, []peer.ID{hs[0].ID()}); err != nil {
		t.Fatalf("Pin on B from A: %v", err)
	}
	st, err := b.Stat(ctxT(t), added.Root)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Complete || st.Pins != 1 || st.LocalBlocks != added.Blocks || st.Size != int64(len(data)) {
		t.Errorf("B's stat after pin %+v; want complete, pinned, %d blocks", st, added.Blocks)
	}
	if got := testutil.ToFloat64(b.m.fetchedBlocks.WithLabelValues("bulk")); int(got) != added.Blocks {
		t.Errorf("B fetched %v blocks over bulk; want %d", got, added.Blocks)
	}
	if got := readAll(t, b, added.Root); !bytes.Equal(got, data) {
		t.Fatal("B read different bytes")
	}
	if u := b.Usage(); u.PinnedBytes < int64(len(data)) || u.CacheBytes != 0 {
		t.Errorf("B usage %+v; want the file pinned, nothing cached", u)
	}
}

// TestOpenFetchesIntoCache: a read on a non-holder fetches from the holder, and the
// blocks are cached (not pinned).
func TestOpenFetchesIntoCache(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	data := randBytes(31, 2<<20)
	added := add(t, a, data, "")
	if got := readAll(t, b, added.Root, hs[0].ID()); !bytes.Equal(got, data) {
		t.Fatal("B read different bytes")
	}
	st, _ := b.Stat(ctxT(t), added.Root)
	if !st.Complete || !st.Cached || st.Pins != 0 {
		t.Errorf("B stat %+v; want complete and cached", st)
	}
	if u := b.Usage(); u.CacheBytes < int64(len(data)) || u.PinnedBytes != 0 {
		t.Errorf("B usage %+v; want the file cached", u)
	}
}

// TestHolderFailover: the first holders have nothing or are unreachable; the blocks
// come from the one that has them.
func TestHolderFailover(t *testing.T) {
	hs := startHosts(t, 3, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	newStore(t, hs[2], nil) // C: a member without the file
	data := randBytes(32, 3<<20)
	added := add(t, a, data, "")
	k, _, _ := crypto.GenerateEd25519Key(nil)
	ghost, _ := peer.IDFromPrivateKey(k)
	if err := b.Pin(ctxT(t), added.Root, []peer.ID{ghost, hs[2].ID(), hs[0].ID()}); err != nil {
		t.Fatalf("Pin with a dead and an empty holder first: %v", err)
	}
	if got := readAll(t, b, added.Root); !bytes.Equal(got, data) {
		t.Fatal("B read different bytes")
	}
}

// TestCorruptRefetchedFromHolder: a block corrupted on B's disk is detected on read,
// counted, deleted and fetched again from A; the read succeeds.
func TestCorruptRefetchedFromHolder(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	data := randBytes(33, 1<<20)
	added := add(t, a, data, "")
	if err := b.Pin(ctxT(t), added.Root, []peer.ID{hs[0].ID()}); err != nil {
		t.Fatal(err)
	}
	links, _ := b.links(ctxT(t), added.Root)
	corruptBlock(t, b, links[1])
	if got := readAll(t, b, added.Root, hs[0].ID()); !bytes.Equal(got, data) {
		t.Fatal("read after corruption differs")
	}
	if got := testutil.ToFloat64(b.m.corrupt); got != 1 {
		t.Errorf("corrupt_blocks_total %v; want 1", got)
	}
	if has, _ := b.Has(ctxT(t), added.Root); !has {
		t.Error("the corrupt block was not fetched again")
	}
	if st, _ := b.Stat(ctxT(t), added.Root); st.Pins != 1 || st.Cached {
		t.Errorf("the re-fetched block left the pin: %+v", st)
	}
	if u := b.Usage(); u.CacheBytes != 0 {
		t.Errorf("the re-fetched block of a pinned file went to the cache: %+v", u)
	}
}

// TestBitswapFallback: with no holder given, the block comes over the cluster's bitswap.
func TestBitswapFallback(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	data := randBytes(34, 700<<10)
	added := add(t, a, data, "")
	f, err := b.Open(ctxT(t), added.Root, nil)
	if err != nil {
		t.Fatalf("Open over bitswap: %v", err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read over bitswap: %v", err)
	}
	if n := testutil.ToFloat64(b.m.fetchedBlocks.WithLabelValues("bulk")); n != 0 {
		t.Errorf("%v blocks over bulk without holders", n)
	}
}

// TestRepair: corrupt blocks of a pinned file are found by Repair and fetched again; the
// pin keeps them.
func TestRepair(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], nil)
	data := randBytes(35, 2<<20)
	added := add(t, a, data, "")
	if err := b.Pin(ctxT(t), added.Root, []peer.ID{hs[0].ID()}); err != nil {
		t.Fatal(err)
	}
	links, _ := b.links(ctxT(t), added.Root)
	corruptBlock(t, b, links[0])
	corruptBlock(t, b, links[5])
	n, err := b.Repair(ctxT(t), added.Root, []peer.ID{hs[0].ID()})
	if err != nil || n != 2 {
		t.Fatalf("Repair: %d blocks, %v; want 2", n, err)
	}
	if got := testutil.ToFloat64(b.m.corrupt); got != 2 {
		t.Errorf("corrupt_blocks_total %v; want 2", got)
	}
	if u := b.Usage(); u.CacheBytes != 0 || u.PinnedBytes < int64(len(data)) {
		t.Errorf("after repair %+v; want everything pinned", u)
	}
	if got := readAll(t, b, added.Root); !bytes.Equal(got, data) {
		t.Fatal("repaired file differs")
	}
}

// TestPinAnnouncedInDHT: a pin is announced in the private DHT, where a member that
// does not know the holders finds it (what bitswap's fallback looks up).
func TestPinAnnouncedInDHT(t *testing.T) {
	hs := startHosts(t, 3, quicOnly, func(c *p2p.Config) { c.DisableDHT = false })
	a := newStore(t, hs[0], nil)
	added := add(t, a, randBytes(36, 100<<10), "")
	if err := a.Pin(ctxT(t), added.Root, nil); err != nil {
		t.Fatal(err)
	}
	cr := hs[2].ContentRouting()
	if cr == nil {
		t.Fatal("no content routing on a host with the DHT")
	}
	testutil2.WaitFor(t, 20*time.Second, "provider record", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for p := range cr.FindProvidersAsync(ctx, added.Root, 1) {
			if p.ID == hs[0].ID() {
				return true, ""
			}
		}
		return false, "A not found as a provider"
	})
}

// TestPinDiskFull: a holder without room refuses the pin, naming itself and the bytes
// missing; nothing is pinned and nothing of the attempt stays protected.
func TestPinDiskFull(t *testing.T) {
	hs := startHosts(t, 2, quicOnly)
	a := newStore(t, hs[0], nil)
	b := newStore(t, hs[1], func(c *Config) { c.Capacity = 1 << 20 })
	added := add(t, a, randBytes(37, 3<<20), "")
	err := b.Pin(ctxT(t), added.Root, []peer.ID{hs[0].ID()})
	var de *diskFullError
	if !errors.As(err, &de) || !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Pin of 3 MiB into 1 MiB: %v; want ErrDiskFull", err)
	}
	if de.Node != hs[1].ID().String() || de.Missing < 1<<20 || !strings.Contains(err.Error(), hs[1].ID().String()) {
		t.Errorf("disk full error %q (%+v); want node %s and about 2 MiB missing", err, de, hs[1].ID())
	}
	t.Logf("the error: %v", err)
	if len(b.Pins()) != 0 {
		t.Errorf("pins after a failed pin: %v", b.Pins())
	}
	if u := b.Usage(); u.PinnedBytes != 0 || u.LeasedBytes != 0 {
		t.Errorf("a failed pin left protected blocks: %+v", u)
	}
}
