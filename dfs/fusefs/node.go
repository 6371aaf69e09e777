package fusefs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
)

// node is a file or directory of a mount. Its DFS path is computed from its place in the
// tree (go-fuse moves inodes on rename), so it holds no path of its own.
type node struct {
	fs.Inode
	m   *Mount
	dir bool

	mu      sync.Mutex
	writers map[*handle]struct{} // handles open for writing
	path    string               // last known path, for an inode no longer in the tree
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
)

// dfsPath is the node's current DFS path.
func (n *node) dfsPath() string {
	if n == n.m.root {
		return n.m.opts.Prefix
	}
	if _, parent := n.Parent(); parent == nil {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.path
	}
	p := n.m.dfsPath(n.Path(n.m.root.EmbeddedInode()))
	n.mu.Lock()
	n.path = p
	n.mu.Unlock()
	return p
}

func (n *node) child(name string) string {
	base := n.dfsPath()
	if base == "/" {
		return "/" + name
	}
	return base + "/" + name
}

// lookupPath finds what path is in the DFS: a file (its entry), a directory (files or
// a marker under it) or nothing. A path that is both a file and a prefix shows the file.
func (m *Mount) lookupPath(p string) (e api.FSEntry, isDir, found bool, err error) {
	if p == m.opts.Prefix {
		return api.FSEntry{}, true, true, nil
	}
	es, err := m.be.List(p, false)
	if err != nil {
		return e, false, false, err
	}
	for _, x := range es {
		if x.Path == p {
			return x, false, true, nil
		}
	}
	return api.FSEntry{}, len(es) > 0, len(es) > 0, nil
}

func (m *Mount) fillFile(out *fuse.Attr, e api.FSEntry) {
	mode := e.Mode & permBits
	if mode == 0 {
		mode = 0o644
	}
	if m.opts.ReadOnly {
		mode &^= 0o222
	}
	out.Mode = syscall.S_IFREG | mode
	out.Size = uint64(e.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Nlink = 1
	setTime(out, e.MTime)
}

func (m *Mount) fillDir(out *fuse.Attr, mtime time.Time) {
	mode := uint32(0o755)
	if m.opts.ReadOnly {
		mode = 0o555
	}
	out.Mode = syscall.S_IFDIR | mode
	out.Nlink = 2
	out.Size = 4096
	setTime(out, mtime)
}

func setTime(out *fuse.Attr, t time.Time) {
	if t.IsZero() {
		return
	}
	out.SetTimes(nil, &t, &t)
}

// newChild returns the inode for name, the cached one when it is of the same kind.
func (n *node) newChild(ctx context.Context, name string, dir bool) *fs.Inode {
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*node); ok && cn.dir == dir {
			return ch
		}
	}
	mode := uint32(syscall.S_IFREG)
	if dir {
		mode = syscall.S_IFDIR
	}
	return n.NewInode(ctx, &node{m: n.m, dir: dir, path: n.child(name)}, fs.StableAttr{Mode: mode})
}

// Lookup implements fs.NodeLookuper.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == DirMarker {
		return nil, syscall.ENOENT
	}
	p := n.child(name)
	if err := dfs.CheckPath(p); err != nil {
		return nil, n.m.errno("lookup", p, err)
	}
	// a file being written here that the DFS does not have yet
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*node); ok && !cn.dir {
			if h := cn.writer(); h != nil {
				h.attr(&out.Attr)
				return ch, 0
			}
		}
	}
	e, isDir, found, err := n.m.lookupPath(p)
	if err != nil {
		return nil, n.m.errno("lookup", p, err)
	}
	if !found {
		return nil, syscall.ENOENT
	}
	if isDir {
		n.m.fillDir(&out.Attr, e.MTime)
	} else {
		n.m.fillFile(&out.Attr, e)
	}
	return n.newChild(ctx, name, isDir), 0
}

// Getattr implements fs.NodeGetattrer.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*handle); ok && h.buffered() {
		h.attr(&out.Attr)
		return 0
	}
	if n.dir {
		n.m.fillDir(&out.Attr, time.Time{})
		return 0
	}
	if h := n.writer(); h != nil {
		h.attr(&out.Attr)
		return 0
	}
	p := n.dfsPath()
	e, isDir, found, err := n.m.lookupPath(p)
	switch {
	case err != nil:
		return n.m.errno("stat", p, err)
	case !found || isDir:
		return syscall.ENOENT
	}
	n.m.fillFile(&out.Attr, e)
	return 0
}

// Setattr implements fs.NodeSetattrer: size changes (truncate) and mode changes are
// written as a new version; times and owners are the DFS's (ignored).
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.dir {
		n.m.fillDir(&out.Attr, time.Time{})
		return 0
	}
	size, hasSize := in.GetSize()
	mode, hasMode := in.GetMode()
	if (hasSize || hasMode) && n.m.opts.ReadOnly {
		return syscall.EROFS
	}
	if !hasSize && !hasMode {
		return n.Getattr(ctx, f, out)
	}
	h, _ := f.(*handle)
	if h == nil || !h.write {
		// open(O_TRUNC) arrives as OPEN then SETATTR without a handle: the truncation
		// belongs to that fresh write handle, committed with it (never an empty version
		// of its own)
		h = nil
		if w := n.writer(); w != nil && !w.buffered() {
			h = w
		}
	}
	own := false
	if h == nil { // truncate(2) or chmod(2) on a path: a handle of our own, committed at once
		var errno syscall.Errno
		h, errno = n.openHandle(ctx, syscall.O_RDWR)
		if errno != 0 {
			return errno
		}
		own = true
		defer h.Release(ctx)
	}
	if hasMode {
		h.setMode(mode & permBits)
	}
	if errno := h.truncate(ctx, hasSize, int64(size)); errno != 0 {
		return errno
	}
	if own {
		if errno := h.commit(ctx); errno != 0 {
			return errno
		}
	}
	h.attr(&out.Attr)
	return 0
}

// Readdir implements fs.NodeReaddirer.
func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	p := n.dfsPath()
	es, err := n.m.be.List(p, false)
	if err != nil {
		return nil, n.m.errno("list", p, err)
	}
	seen := map[string]bool{}
	out := make([]fuse.DirEntry, 0, len(es))
	for _, e := range es {
		if e.Path == p { // p names a file, not a directory
			return nil, syscall.ENOTDIR
		}
		name := strings.TrimSuffix(e.Path, "/")
		name = name[strings.LastIndexByte(name, '/')+1:]
		if name == DirMarker || name == "" || seen[name] {
			continue
		}
		seen[name] = true
		mode := uint32(syscall.S_IFREG)
		if strings.HasSuffix(e.Path, "/") {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: name, Mode: mode})
	}
	// files created here and not committed yet
	for name, ch := range n.Children() {
		if cn, ok := ch.Operations().(*node); ok && !cn.dir && !seen[name] && cn.writer() != nil {
			out = append(out, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG})
		}
	}
	return fs.NewListDirStream(out), 0
}

// Mkdir implements fs.NodeMkdirer: it writes the directory's marker file.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.m.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	p := n.child(name)
	if name == DirMarker {
		return nil, syscall.EINVAL
	}
	if _, _, found, err := n.m.lookupPath(p); err != nil {
		return nil, n.m.errno("mkdir", p, err)
	} else if found {
		return nil, syscall.EEXIST
	}
	if _, err := n.m.be.Put(ctx, p+"/"+DirMarker, strings.NewReader(""), 0o644); err != nil {
		return nil, n.m.errno("mkdir", p, err)
	}
	n.m.fillDir(&out.Attr, time.Now())
	return n.newChild(ctx, name, true), 0
}

// Create implements fs.NodeCreater: the file exists in the DFS once its handle is
// flushed or closed (an empty file if nothing was written).
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.m.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	p := n.child(name)
	if name == DirMarker {
		return nil, nil, 0, syscall.EINVAL
	}
	if err := dfs.CheckPath(p); err != nil {
		return nil, nil, 0, n.m.errno("create", p, err)
	}
	ch := n.newChild(ctx, name, false)
	cn := ch.Operations().(*node)
	h, errno := cn.newHandle(flags|syscall.O_TRUNC, mode&permBits)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h.attr(&out.Attr)
	return ch, h, 0, 0
}

// Open implements fs.NodeOpener.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.dir {
		return nil, 0, syscall.EISDIR
	}
	if n.m.opts.ReadOnly && flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	h, errno := n.openHandle(ctx, flags)
	return h, 0, errno
}

// Unlink implements fs.NodeUnlinker.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.m.opts.ReadOnly {
		return syscall.EROFS
	}
	p := n.child(name)
	if _, err := n.m.be.Remove(p, false); err != nil {
		if errors.Is(err, dfs.ErrNotFound) && n.uncommitted(name) {
			return 0
		}
		return n.m.errno("rm", p, err)
	}
	return 0
}

// uncommitted reports whether child name is a file being written here and not in the DFS.
func (n *node) uncommitted(name string) bool {
	ch := n.GetChild(name)
	if ch == nil {
		return false
	}
	cn, ok := ch.Operations().(*node)
	return ok && !cn.dir && cn.writer() != nil
}

// Rmdir implements fs.NodeRmdirer: an empty directory loses its marker; a directory
// with files is refused (ENOTEMPTY).
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.m.opts.ReadOnly {
		return syscall.EROFS
	}
	p := n.child(name)
	es, err := n.m.be.List(p, true)
	if err != nil {
		return n.m.errno("rmdir", p, err)
	}
	marker := false
	for _, e := range es {
		switch {
		case e.Path == p:
			return syscall.ENOTDIR
		case e.Path == p+"/"+DirMarker:
			marker = true
		default:
			return syscall.ENOTEMPTY
		}
	}
	if marker {
		if _, err := n.m.be.Remove(p+"/"+DirMarker, false); err != nil && !errors.Is(err, dfs.ErrNotFound) {
			return n.m.errno("rmdir", p, err)
		}
	}
	return 0
}

// Rename implements fs.NodeRenamer (a file, or a directory with everything under it).
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.m.opts.ReadOnly {
		return syscall.EROFS
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&^uint32(unix.RENAME_NOREPLACE) != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and whiteouts are not supported
	}
	if newName == DirMarker {
		return syscall.EINVAL
	}
	from, to := n.child(name), np.child(newName)
	if from == to {
		return 0
	}
	_, srcDir, srcFound, err := n.m.lookupPath(from)
	if err != nil {
		return n.m.errno("rename", from, err)
	}
	_, dstDir, dstFound, err := n.m.lookupPath(to)
	if err != nil {
		return n.m.errno("rename", to, err)
	}
	if dstFound {
		switch {
		case flags&unix.RENAME_NOREPLACE != 0:
			return syscall.EEXIST
		case srcDir && !dstDir:
			return syscall.ENOTDIR
		case !srcDir && dstDir:
			return syscall.EISDIR
		case dstDir:
			if errno := np.Rmdir(ctx, newName); errno != 0 {
				return errno
			}
		}
	}
	if !srcFound {
		if n.uncommitted(name) {
			return 0 // committed under its new name when flushed
		}
		return syscall.ENOENT
	}
	if _, err := n.m.be.Move(from, to); err != nil {
		return n.m.errno("rename", from+" -> "+to, err)
	}
	return 0
}

// Statfs implements fs.NodeStatfser with generous numbers (the DFS has no fixed size).
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = 1 << 40 / 4096
	out.Bfree = out.Blocks
	out.Bavail = out.Blocks
	out.Files = 1 << 30
	out.Ffree = 1 << 30
	out.NameLen = dfs.MaxNameBytes
	return 0
}

// writer is the newest handle of this file open for writing, if any.
func (n *node) writer() *handle {
	n.mu.Lock()
	defer n.mu.Unlock()
	var last *handle
	for h := range n.writers {
		if last == nil || h.seq > last.seq {
			last = h
		}
	}
	return last
}

// permBits are the mode bits a mount shows and stores: setuid, setgid and sticky are
// dropped (a file written through one mount must not become a setuid program in
// another; every mount is also nosuid).
const permBits = 0o777
