package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ExportCAR writes root's DAG to w as a CARv1 (root first, then the blocks in depth-first
// order, each once), which any IPFS implementation can verify and import. Missing blocks
// are fetched from holders first (bitswap as the fallback); they stay cached.
func (s *Store) ExportCAR(ctx context.Context, root cid.Cid, w io.Writer, holders []peer.ID) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	l := s.newLease(root, false) // nothing of it is evicted while it is written
	defer s.dropLease(l)
	if err := s.fetchDAG(ctx, root, holders, l); err != nil {
		return s.notFound(root, holders, err)
	}
	cw, err := storage.NewWritable(w, []cid.Cid{root}, carv2.WriteAsCarV1(true))
	if err != nil {
		return fmt.Errorf("dfs content: export: %w", err)
	}
	var werr error
	err = s.walkLocal(ctx, root, func(c cid.Cid) {
		if werr != nil {
			return
		}
		blk, err := s.bs.Get(ctx, c)
		if err != nil {
			werr = fmt.Errorf("dfs content: export %s: block %s: %w", root, c, err)
			return
		}
		werr = cw.Put(ctx, c.KeyString(), blk.RawData())
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	return cw.Finalize()
}

// ImportCAR reads a CAR (v1 or v2) of at most maxBytes bytes from r, checks every block
// against its CID, stores the blocks, and returns the CAR's roots. Every root's DAG must
// be complete (in the CAR or already here). The blocks are held by a write lease per
// root, as after Add: Pin or Release each root. On any error nothing of the import
// stays protected.
func (s *Store) ImportCAR(ctx context.Context, r io.Reader, maxBytes int64) (roots []cid.Cid, err error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if maxBytes <= 0 {
		return nil, fmt.Errorf("%w: ImportCAR needs maxBytes > 0 (the largest CAR accepted)", ErrConfig)
	}
	lr := &limitReader{r: r, left: maxBytes}
	br, err := carv2.NewBlockReader(lr,
		carv2.WithTrustedCAR(false),
		carv2.MaxAllowedHeaderSize(1<<20),
		carv2.MaxAllowedSectionSize(MaxBlockSize+128),
	)
	if err != nil {
		return nil, s.carErr(lr, fmt.Errorf("%w: not a CAR (v1 or v2): %v", ErrBadData, err))
	}
	if len(br.Roots) == 0 {
		return nil, fmt.Errorf("%w: the CAR names no root", ErrBadData)
	}
	if len(br.Roots) > 64 {
		return nil, fmt.Errorf("%w: the CAR names %d roots (at most 64)", ErrBadData, len(br.Roots))
	}
	all := s.newLease(cid.Undef, false)
	defer s.dropLease(all)
	var batch []blocks.Block
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.bs.PutMany(ctx, batch)
		batch = batch[:0]
		return err
	}
	n := 0
	for {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.abandon(ctx, all)
			return nil, s.carErr(lr, fmt.Errorf("%w: CAR block %d: %v", ErrBadData, n+1, err))
		}
		if err := verifyBlock(blk.Cid(), blk.RawData()); err != nil { // WithTrustedCAR(false) did; keep the guarantee local
			s.abandon(ctx, all)
			return nil, err
		}
		n++
		s.hold(all, blk.Cid())
		batch = append(batch, blk)
		if len(batch) >= storeBatch {
			if err := flush(); err != nil {
				s.abandon(ctx, all)
				return nil, err
			}
		}
	}
	err = flush()
	if err == nil {
		err = s.syncDisk()
	}
	if err != nil {
		s.abandon(ctx, all)
		return nil, err
	}
	for _, root := range br.Roots {
		missing, err := s.walkLocalMissing(ctx, root, func(cid.Cid) {})
		if err != nil {
			s.abandon(ctx, all)
			return nil, err
		}
		if missing > 0 {
			s.abandon(ctx, all)
			return nil, fmt.Errorf("%w: the CAR does not hold the whole DAG of root %s (%d blocks missing here)", ErrBadData, root, missing)
		}
	}
	for _, root := range br.Roots {
		l := s.newLease(root, true)
		s.walkLocal(ctx, root, func(c cid.Cid) { s.hold(l, c) })
		s.mu.Lock()
		s.noteRootLocked(root)
		s.mu.Unlock()
	}
	s.m.importedBlocks.Add(float64(n))
	return br.Roots, nil
}

func (s *Store) carErr(lr *limitReader, err error) error {
	if lr.over {
		return fmt.Errorf("%w: the CAR is larger than the %d bytes allowed", ErrTooLarge, lr.max())
	}
	return err
}

// limitReader fails once more than left bytes are read.
type limitReader struct {
	r    io.Reader
	left int64
	read int64
	over bool
}

func (l *limitReader) max() int64 { return l.read + l.left }

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.read += int64(n)
	return n, err
}
