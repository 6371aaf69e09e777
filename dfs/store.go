package dfs

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/dfs/content"
)

// CARs is the optional part of Content for CAR export and import (fs export/import).
type CARs interface {
	ExportCAR(ctx context.Context, root cid.Cid, w io.Writer, holders []peer.ID) error
	ImportCAR(ctx context.Context, r io.Reader, maxBytes int64) ([]cid.Cid, error)
}

// StoreContent adapts a content.Store to Content (and CARs). The namespace pins a root
// at most once per node (the store counts pins), and Unpin drops it whole and ends the
// write lease of an Add.
type StoreContent struct{ S *content.Store }

var (
	_ Content = StoreContent{}
	_ CARs    = StoreContent{}
)

// Add implements Content.
func (c StoreContent) Add(ctx context.Context, r io.Reader, chunker string) (cid.Cid, int64, error) {
	a, err := c.S.Add(ctx, r, content.AddOptions{Chunker: chunker})
	return a.Root, a.Size, err
}

// Open implements Content.
func (c StoreContent) Open(ctx context.Context, root cid.Cid, holders []peer.ID) (io.ReadSeekCloser, error) {
	return c.S.Open(ctx, root, holders)
}

// Pin implements Content (once per root).
func (c StoreContent) Pin(ctx context.Context, root cid.Cid, holders []peer.ID) error {
	if st, err := c.S.Stat(ctx, root); err == nil && st.Pins > 0 && st.Complete {
		return nil
	}
	return c.S.Pin(ctx, root, holders)
}

// Unpin implements Content: every pin of root and its write lease.
func (c StoreContent) Unpin(root cid.Cid) error {
	c.S.Release(root)
	// Each Unpin drops one pin; ErrNotPinned says none is left (no DAG walk per round).
	for i := 0; i < 1024; i++ {
		if err := c.S.Unpin(root); errors.Is(err, content.ErrNotPinned) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Has implements Content.
func (c StoreContent) Has(ctx context.Context, root cid.Cid) (bool, error) { return c.S.Has(ctx, root) }

// UsedBytes implements Content: the bytes that cannot be evicted (pinned and leased).
func (c StoreContent) UsedBytes() int64 {
	u := c.S.Usage()
	return u.PinnedBytes + u.LeasedBytes
}

// GC implements Content.
func (c StoreContent) GC(ctx context.Context, keep func(cid.Cid) bool) error {
	_, err := c.S.GC(ctx, keep)
	return err
}

// ExportCAR implements CARs.
func (c StoreContent) ExportCAR(ctx context.Context, root cid.Cid, w io.Writer, holders []peer.ID) error {
	return c.S.ExportCAR(ctx, root, w, holders)
}

// ImportCAR implements CARs.
func (c StoreContent) ImportCAR(ctx context.Context, r io.Reader, maxBytes int64) ([]cid.Cid, error) {
	return c.S.ImportCAR(ctx, r, maxBytes)
}

// Gateway is the store's read-only trustless gateway.
func (c StoreContent) Gateway() http.Handler { return c.S.Gateway() }
