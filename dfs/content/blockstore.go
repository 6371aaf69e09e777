package content

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
)

// bstore is the store's blockstore: the pack store underneath, and on top
//
//   - every block read is checked against its CID; a mismatch deletes the block, counts
//     constellation_dfs_corrupt_blocks_total and answers "not found", so that the
//     blockservice above fetches it again from a holder;
//   - every write is charged to the store's capacity (ErrDiskFull with the bytes
//     missing) and accounted (pinned, leased, or cached in the LRU).
//
// It is the blockstore bitswap, the gateway and the DAG services see.
type bstore struct {
	s     *Store
	inner *packStore
	hot   hotBlocks
}

var _ blockstore.Blockstore = (*bstore)(nil)

func (b *bstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	return b.inner.Has(ctx, c)
}

func (b *bstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	return b.inner.GetSize(ctx, c)
}

func (b *bstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if blk := b.hot.get(c); blk != nil {
		b.s.touch(c)
		return blk, nil
	}
	blk, err := b.inner.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := verifyBlock(c, blk.RawData()); err != nil {
		b.s.corrupt(ctx, c, err)
		return nil, format.ErrNotFound{Cid: c}
	}
	b.s.touch(c)
	return blk, nil
}

// frame reads a block for the bulk protocol: frameBlock followed by the block's bytes,
// checked against c, in one buffer.
func (b *bstore) frame(ctx context.Context, c cid.Cid) ([]byte, error) {
	if blk := b.hot.get(c); blk != nil {
		b.s.touch(c)
		return append([]byte{frameBlock}, blk.RawData()...), nil
	}
	buf, err := b.inner.read(c, 1)
	if err != nil {
		return nil, err
	}
	if err := verifyBlock(c, buf[1:]); err != nil {
		b.s.corrupt(ctx, c, err)
		return nil, format.ErrNotFound{Cid: c}
	}
	buf[0] = frameBlock
	b.s.touch(c)
	return buf, nil
}

func (b *bstore) DeleteBlock(ctx context.Context, c cid.Cid) error {
	b.hot.drop(c)
	if err := b.inner.DeleteBlock(ctx, c); err != nil {
		return err
	}
	b.s.forget(c)
	return nil
}

func (b *bstore) Put(ctx context.Context, blk blocks.Block) error {
	return b.PutMany(ctx, []blocks.Block{blk})
}

// PutMany stores the blocks that are not there yet (appended; Sync makes them durable)
// after reserving their room.
func (b *bstore) PutMany(ctx context.Context, blks []blocks.Block) error {
	var fresh []blocks.Block
	var need int64
	seen := make(map[string]bool, len(blks))
	for _, blk := range blks {
		k := key(blk.Cid())
		if seen[k] || b.s.present(k) {
			continue
		}
		seen[k] = true
		fresh = append(fresh, blk)
		need += int64(len(blk.RawData()))
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := b.s.reserve(ctx, need); err != nil {
		return err
	}
	err := b.inner.PutMany(ctx, fresh)
	if err != nil {
		b.s.unreserve(need)
		if errors.Is(err, syscall.ENOSPC) {
			return b.s.diskFull(need, err)
		}
		return err
	}
	b.s.added(ctx, fresh, need)
	return nil
}

// putVerified stores blocks whose bytes were just checked against their CIDs (received
// from a peer) and, when they were fetched for a reader (withHot), keeps them in memory
// for it.
func (b *bstore) putVerified(ctx context.Context, blks []blocks.Block) error {
	if err := b.PutMany(ctx, blks); err != nil {
		return err
	}
	if ctx.Value(hotKey{}) != nil {
		for _, blk := range blks {
			b.hot.put(blk)
		}
	}
	return nil
}

type hotKey struct{}

// withHot marks a context of a read: blocks fetched under it stay in memory a while.
func withHot(ctx context.Context) context.Context { return context.WithValue(ctx, hotKey{}, true) }

func (b *bstore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	return b.inner.AllKeysChan(ctx)
}

// verifyBlock checks data against c's multihash.
func verifyBlock(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("%w: hash %s: %v", ErrBadData, c, err)
	}
	if !got.Equals(c) && string(got.Hash()) != string(c.Hash()) {
		return fmt.Errorf("%w: block %s: content hashes to %s", ErrBadData, c, got)
	}
	return nil
}

// key is the accounting key of a block: its multihash (the pack store keeps blocks by
// multihash, so the same bytes under a raw and a dag-pb CID are one block).
func key(c cid.Cid) string { return string(c.Hash()) }
