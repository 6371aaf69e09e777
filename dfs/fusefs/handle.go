package fusefs

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/rads-lang/constellation/dfs"
)

var handleSeq atomic.Uint64

// handle is an open file. Reads come from the DFS reader (seeking for random access)
// until the first write or truncate; then the file's bytes live in a buffer file in the
// mount's TempDir, and flush, fsync and close commit the buffer as one new version.
type handle struct {
	n     *node
	seq   uint64
	write bool // opened for writing

	mu    sync.Mutex
	r     io.ReadSeekCloser // the DFS reader, when not buffered
	rpos  int64
	size  int64 // the committed size when opened (unbuffered reads)
	mtime time.Time
	mode  uint32
	buf   *os.File // the write buffer
	dirty bool     // buf differs from what the DFS has
	// refused: the last commit failed and the writer was told (EIO); the last close
	// then drops the buffer instead of committing it behind the writer's back
	refused bool
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileFlusher  = (*handle)(nil)
	_ fs.FileFsyncer  = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

// newHandle opens a handle with no DFS content (create, O_TRUNC): an empty buffer.
func (n *node) newHandle(flags, mode uint32) (*handle, syscall.Errno) {
	h := &handle{n: n, seq: handleSeq.Add(1), write: true, mode: mode, mtime: time.Now()}
	if errno := h.startBuffer(nil); errno != 0 {
		return nil, errno
	}
	h.dirty = true
	n.addWriter(h)
	return h, 0
}

// openHandle opens the file's current version.
func (n *node) openHandle(ctx context.Context, flags uint32) (*handle, syscall.Errno) {
	write := flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0
	if cur := n.writer(); cur != nil && !write {
		// a reader sees what a writer here wrote so far
		cur.mu.Lock()
		if cur.buf != nil {
			h := &handle{n: n, seq: handleSeq.Add(1), mode: cur.mode}
			err := h.copyBuffer(cur.buf)
			cur.mu.Unlock()
			if err != 0 {
				return nil, err
			}
			return h, 0
		}
		cur.mu.Unlock()
	}
	if write && flags&syscall.O_TRUNC != 0 {
		e, _, found, err := n.m.lookupPath(n.dfsPath())
		if err != nil {
			return nil, n.m.errno("open", n.dfsPath(), err)
		}
		mode := e.Mode
		if !found || mode == 0 {
			mode = 0o644
		}
		return n.newHandle(flags, mode)
	}
	p := n.dfsPath()
	r, e, err := n.m.be.Open(ctx, p)
	if err != nil {
		return nil, n.m.errno("open", p, err)
	}
	h := &handle{n: n, seq: handleSeq.Add(1), write: write, r: r, size: e.Size, mtime: e.MTime, mode: e.Mode}
	if h.mode == 0 {
		h.mode = 0o644
	}
	if write {
		n.addWriter(h)
	}
	return h, 0
}

func (n *node) addWriter(h *handle) {
	n.mu.Lock()
	if n.writers == nil {
		n.writers = map[*handle]struct{}{}
	}
	n.writers[h] = struct{}{}
	n.mu.Unlock()
}

func (n *node) dropWriter(h *handle) {
	n.mu.Lock()
	delete(n.writers, h)
	n.mu.Unlock()
}

// copyBuffer gives a reader handle a private copy of a writer's buffer.
func (h *handle) copyBuffer(src *os.File) syscall.Errno {
	if errno := h.startBuffer(nil); errno != 0 {
		return errno
	}
	if _, err := io.Copy(h.buf, io.NewSectionReader(src, 0, 1<<62)); err != nil {
		h.n.m.log.Error("fusefs: copying a write buffer", "path", h.n.dfsPath(), "reason", err.Error())
		return syscall.EIO
	}
	return 0
}

// startBuffer creates the write buffer, filled from r (nil: empty).
func (h *handle) startBuffer(r io.Reader) syscall.Errno {
	f, err := os.CreateTemp(h.n.m.opts.TempDir, "fusefs-*.buf")
	if err != nil {
		h.n.m.log.Error("fusefs: write buffer", "path", h.n.dfsPath(), "reason", err.Error())
		return syscall.EIO
	}
	os.Remove(f.Name()) // anonymous: gone with the handle, even after a crash
	if r != nil {
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return h.n.m.errno("read", h.n.dfsPath(), err)
		}
	}
	h.buf = f
	return 0
}

func (h *handle) buffered() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf != nil
}

// toBuffer switches a handle from the DFS reader to a buffer holding the whole file
// (before its first write or truncate). h.mu held.
func (h *handle) toBuffer() syscall.Errno {
	if h.buf != nil {
		return 0
	}
	if _, err := h.r.Seek(0, io.SeekStart); err != nil {
		return h.n.m.errno("read", h.n.dfsPath(), err)
	}
	if errno := h.startBuffer(h.r); errno != 0 {
		return errno
	}
	h.r.Close()
	h.r = nil
	return 0
}

// Read implements fs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.buf != nil {
		n, err := h.buf.ReadAt(dest, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, h.n.m.errno("read", h.n.dfsPath(), err)
		}
		return fuse.ReadResultData(dest[:n]), 0
	}
	if off != h.rpos {
		if _, err := h.r.Seek(off, io.SeekStart); err != nil {
			return nil, h.n.m.errno("read", h.n.dfsPath(), err)
		}
		h.rpos = off
	}
	n, err := io.ReadFull(h.r, dest)
	h.rpos += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, h.n.m.errno("read", h.n.dfsPath(), err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write implements fs.FileWriter.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.n.m.opts.ReadOnly || !h.write {
		return 0, syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if errno := h.toBuffer(); errno != 0 {
		return 0, errno
	}
	n, err := h.buf.WriteAt(data, off)
	if err != nil {
		h.n.m.log.Error("fusefs: write buffer", "path", h.n.dfsPath(), "reason", err.Error())
		if errors.Is(err, syscall.ENOSPC) {
			return uint32(n), syscall.ENOSPC
		}
		return uint32(n), syscall.EIO
	}
	h.dirty = true
	h.mtime = time.Now()
	return uint32(n), 0
}

// truncate sets the buffer's size (hasSize) and marks the handle for a commit.
func (h *handle) truncate(ctx context.Context, hasSize bool, size int64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hasSize && h.buf == nil && size <= h.size {
		// copy only the bytes kept (none for O_TRUNC)
		if _, err := h.r.Seek(0, io.SeekStart); err != nil {
			return h.n.m.errno("read", h.n.dfsPath(), err)
		}
		if errno := h.startBuffer(io.LimitReader(h.r, size)); errno != 0 {
			return errno
		}
		h.r.Close()
		h.r = nil
	}
	if errno := h.toBuffer(); errno != 0 {
		return errno
	}
	if hasSize {
		if err := h.buf.Truncate(size); err != nil {
			return h.n.m.errno("truncate", h.n.dfsPath(), err)
		}
		h.mtime = time.Now()
	}
	h.dirty = true
	return 0
}

func (h *handle) setMode(mode uint32) {
	h.mu.Lock()
	h.mode = mode
	h.mu.Unlock()
}

// attr fills a file's attributes from the handle (its buffer's size when buffered).
func (h *handle) attr(out *fuse.Attr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	size := h.size
	if h.buf != nil {
		if fi, err := h.buf.Stat(); err == nil {
			size = fi.Size()
		}
	}
	out.Mode = syscall.S_IFREG | h.mode&permBits
	out.Size = uint64(size)
	out.Blocks = (out.Size + 511) / 512
	out.Nlink = 1
	setTime(out, h.mtime)
}

// commit writes a dirty buffer to the DFS as one new version. A refusal (quorum lost,
// disk full, unavailable) is logged with the path and reason and answers EIO; the DFS
// keeps its previous version and the buffer stays dirty for a later flush or fsync.
func (h *handle) commit(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.dirty || h.buf == nil {
		return 0
	}
	p := h.n.dfsPath()
	if p == "" {
		return syscall.ENOENT
	}
	if err := dfs.CheckPath(p); err != nil {
		return h.n.m.errno("write", p, err)
	}
	_, err := h.n.m.be.Put(ctx, p, io.NewSectionReader(h.buf, 0, 1<<62), h.mode&permBits)
	if err != nil {
		h.n.m.log.Error("fusefs: commit refused; the previous version stays", "path", p, "reason", err.Error())
		h.n.m.invalidateLater(h.n.EmbeddedInode()) // the kernel's pages hold the refused bytes
		h.refused = true
		return syscall.EIO
	}
	h.dirty, h.refused = false, false
	return 0
}

// Flush implements fs.FileFlusher (every close of a descriptor).
func (h *handle) Flush(ctx context.Context) syscall.Errno { return h.commit(ctx) }

// Fsync implements fs.FileFsyncer.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno { return h.commit(ctx) }

// Release implements fs.FileReleaser: the last close. A dirty buffer is committed unless
// its last commit was refused (the writer got EIO for it): then it is dropped.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	refused := h.refused
	h.mu.Unlock()
	var errno syscall.Errno
	if !refused {
		errno = h.commit(context.WithoutCancel(ctx))
	}
	h.n.dropWriter(h)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r != nil {
		h.r.Close()
		h.r = nil
	}
	if h.buf != nil {
		h.buf.Close()
		h.buf = nil
	}
	return errno
}
