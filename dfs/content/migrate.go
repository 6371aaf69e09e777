package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	flatfs "github.com/ipfs/go-ds-flatfs"
)

// migrateFlatfs moves the blocks of a store written by an earlier version (flatfs, one
// file per block, in dir/blocks) into the pack store, so that a node upgraded in place
// loses nothing. Every block is checked against its multihash on the way (a damaged one
// is left behind and counted in the log: it is fetched again when needed). The flatfs
// directory is removed only once the copies are durable; a crash before that repeats
// the migration at the next start (puts of blocks already there are skipped).
func migrateFlatfs(ctx context.Context, dir string, pack *packStore, log *slog.Logger) error {
	old := filepath.Join(dir, "blocks")
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ds, err := flatfs.Open(old, false)
	if err != nil {
		return fmt.Errorf("dfs content: open the old block store %s to migrate it: %w", old, err)
	}
	bs := blockstore.NewBlockstore(ds, blockstore.NoPrefix())
	keys, err := bs.AllKeysChan(ctx)
	if err != nil {
		ds.Close()
		return fmt.Errorf("dfs content: list the old block store %s: %w", old, err)
	}
	var moved, bad int
	var batch []blocks.Block
	var batchBytes int
	flush := func() error {
		err := pack.PutMany(ctx, batch)
		batch, batchBytes = batch[:0], 0
		return err
	}
	for c := range keys {
		blk, err := bs.Get(ctx, c)
		if err == nil {
			err = verifyBlock(c, blk.RawData())
		}
		if err != nil {
			bad++
			log.Warn("dfs content: a block of the old store is unreadable or damaged; it is not migrated (it will be fetched again)", "cid", c, "err", err)
			continue
		}
		batch = append(batch, blk)
		batchBytes += len(blk.RawData())
		moved++
		if batchBytes >= 16<<20 {
			if err := flush(); err != nil {
				ds.Close()
				return fmt.Errorf("dfs content: migrate blocks: %w", err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		ds.Close()
		return err
	}
	if err := flush(); err != nil {
		ds.Close()
		return fmt.Errorf("dfs content: migrate blocks: %w", err)
	}
	ds.Close()
	if err := pack.Sync(); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("dfs content: remove the migrated block store %s: %w", old, err)
	}
	log.Info("dfs content: migrated the block store from flatfs to segments", "blocks", moved, "damaged", bad)
	return nil
}
