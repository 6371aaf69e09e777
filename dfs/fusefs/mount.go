package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

// Backend is what a mount needs of the DFS (node adapts *dfs.Service to it). Paths are
// absolute DFS paths; errors are classified with dfs.ErrNotFound and dfs.ErrBadPath,
// anything else is a refusal (EIO).
type Backend interface {
	// Open reads the current version of a file, from any position (io.Seeker).
	Open(ctx context.Context, path string) (io.ReadSeekCloser, api.FSEntry, error)
	// List lists a prefix's direct children (directories end in "/") or, for a file's
	// path, the file itself.
	List(prefix string, recursive bool) ([]api.FSEntry, error)
	// Put writes r's bytes as one new version of path, or nothing.
	Put(ctx context.Context, path string, r io.Reader, mode uint32) (api.FSEntry, error)
	// Remove deletes a file (recursive: every file under a prefix).
	Remove(path string, recursive bool) (int, error)
	// Move renames a file or every file under a prefix.
	Move(from, to string) (int, error)
	// Watch follows the changes under a prefix until cancel.
	Watch(prefix string) (events <-chan api.FSEvent, lagged func() bool, cancel func(), err error)
}

// DirMarker is the name of the empty file mkdir writes so that an empty directory exists
// in the DFS (directories are otherwise only the prefixes of their files). Mounts hide
// it; `fs ls` shows it.
const DirMarker = ".constellation-dir"

// Options configure a mount.
type Options struct {
	// Prefix is the DFS directory shown at the mount's root ("/" for everything).
	Prefix string
	// ReadOnly mounts read-only: the kernel and every operation answer EROFS.
	ReadOnly bool
	// TempDir holds the buffers of files being written (committed on flush, fsync or
	// close); default os.TempDir().
	TempDir string
	// Timeout is the kernel's entry and attribute cache time (default 1s); remote
	// changes show at the latest after it, usually at once through Watch.
	Timeout time.Duration
	// Log gets one line per refused commit and per mount event.
	Log *slog.Logger
	// UID and GID own every file and directory (default 0): an instance's mount is owned
	// by the host uid its root maps to, so root inside may write and nobody else.
	UID, GID uint32
	// Debug logs every FUSE request (go-fuse's debug output).
	Debug bool
}

// Mount is one mounted view of a DFS prefix.
type Mount struct {
	dir    string
	opts   Options
	be     Backend
	srv    *fuse.Server
	root   *node
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	inval  chan *fs.Inode // inodes whose cached pages the watcher drops

	dev       uint64 // the mount's device (its FUSE connection's id)
	closeOnce sync.Once
	closeErr  error
}

// New mounts the DFS prefix o.Prefix of be at dir (which must exist and be a directory).
// The caller must be root (a direct mount; no fusermount). Close unmounts.
func New(dir string, be Backend, o Options) (*Mount, error) {
	if o.Prefix == "" {
		o.Prefix = "/"
	}
	prefix, err := dfs.CleanPrefix(o.Prefix)
	if err != nil {
		return nil, fmt.Errorf("fusefs: prefix: %w", err)
	}
	o.Prefix = prefix
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("fusefs: mount point %q is not absolute; give a path such as /mnt/cluster", dir)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("fusefs: mount point: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("fusefs: mount point %s is not a directory", dir)
	}
	if err := os.MkdirAll(o.TempDir, 0o700); err != nil {
		return nil, fmt.Errorf("fusefs: temp dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mount{dir: dir, opts: o, be: be, log: o.Log.With("mount", dir, "prefix", prefix), ctx: ctx, cancel: cancel, inval: make(chan *fs.Inode, 64)}
	m.root = &node{m: m, dir: true}
	timeout := o.Timeout
	neg := time.Duration(0)
	var flags uintptr = unix.MS_NOSUID | unix.MS_NODEV
	mopts := []string{"default_permissions"}
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
		mopts = append(mopts, "ro")
	}
	fopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			Options:           mopts,
			FsName:            "constellation:" + prefix,
			Name:              "constellation",
			DirectMount:       true,
			DirectMountStrict: true,
			DirectMountFlags:  flags,
			DisableXAttrs:     true,
			MaxWrite:          1 << 20,
			MaxReadAhead:      1 << 20,
			SyncRead:          true,
			Debug:             o.Debug,
		},
		UID:             o.UID,
		GID:             o.GID,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &neg,
	}
	srv, err := fs.Mount(dir, m.root, fopts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fusefs: mount %s: %w", dir, err)
	}
	m.srv = srv
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err == nil {
		m.dev = st.Dev
	}
	if err := m.startWatch(); err != nil {
		m.Close()
		return nil, err
	}
	m.log.Info("fusefs: mounted", "ro", o.ReadOnly)
	return m, nil
}

// Dir is the mount point.
func (m *Mount) Dir() string { return m.dir }

// Options are the mount's settings (Prefix cleaned).
func (m *Mount) Options() Options { return m.opts }

// closeGrace is how long Close waits for the kernel to let go of a detached mount
// before it aborts the FUSE connection.
const closeGrace = 3 * time.Second

// Close stops the invalidation watcher and unmounts. A busy mount point is detached
// lazily (MNT_DETACH); when the kernel still holds the connection after closeGrace (a
// bind of the mount in an instance's mount namespace, a process inside), the
// connection is aborted (its users get ENOTCONN), so Close never hangs.
func (m *Mount) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.wg.Wait()
		done := make(chan error, 1)
		go func() { // owned by Close, which waits for it below
			err := unix.Unmount(m.dir, 0)
			if err != nil && !errors.Is(err, unix.EINVAL) {
				err = unix.Unmount(m.dir, unix.MNT_DETACH)
			}
			if errors.Is(err, unix.EINVAL) {
				err = nil
			}
			m.srv.Wait() // the serving loops end when the kernel drops the connection
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(closeGrace):
			if aerr := abortConn(m.dev); aerr != nil {
				m.log.Warn("fusefs: aborting a held connection", "err", aerr)
			} else {
				m.log.Warn("fusefs: aborted the connection of a mount still held after unmount")
			}
			err = <-done
		}
		if err != nil {
			m.closeErr = fmt.Errorf("fusefs: unmount %s: %w", m.dir, err)
		}
		m.log.Info("fusefs: unmounted")
	})
	return m.closeErr
}

// abortConn aborts the FUSE connection of device dev through the fuse control file
// system (mounted for the occasion in a temporary directory).
func abortConn(dev uint64) error {
	if dev == 0 {
		return errors.New("device unknown")
	}
	ctl, err := os.MkdirTemp("", "fusectl-")
	if err != nil {
		return err
	}
	defer os.Remove(ctl)
	if err := unix.Mount("fusectl", ctl, "fusectl", 0, ""); err != nil {
		return fmt.Errorf("mount fusectl: %w", err)
	}
	defer unix.Unmount(ctl, unix.MNT_DETACH)
	return os.WriteFile(filepath.Join(ctl, fmt.Sprint(unix.Minor(dev)), "abort"), []byte("1"), 0)
}

// dfsPath maps a path relative to the mount root ("" for the root) to the DFS path.
func (m *Mount) dfsPath(rel string) string {
	switch {
	case rel == "":
		return m.opts.Prefix
	case m.opts.Prefix == "/":
		return "/" + rel
	default:
		return m.opts.Prefix + "/" + rel
	}
}

// relPath is the inverse of dfsPath ("", false for a path outside the prefix).
func (m *Mount) relPath(p string) (string, bool) {
	if p == m.opts.Prefix {
		return "", true
	}
	pre := m.opts.Prefix
	if pre != "/" {
		pre += "/"
	}
	if !strings.HasPrefix(p, pre) {
		return "", false
	}
	return strings.TrimPrefix(p, pre), true
}

// errno maps a backend error to an errno; refusals are logged with the path and reason.
func (m *Mount) errno(op, path string, err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, dfs.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, dfs.ErrBadPath):
		var pe *dfs.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Reason, "limit") {
			return syscall.ENAMETOOLONG
		}
		return syscall.EINVAL
	}
	m.log.Error("fusefs: "+op+" refused by the DFS", "path", path, "reason", err.Error())
	return syscall.EIO
}

// Unmount detaches whatever is mounted at dir (MNT_DETACH): the cleanup of a mount left
// by a process that died (its stat answers ENOTCONN). A dir with nothing mounted is not
// an error.
func Unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("fusefs: unmount %s: %w", dir, err)
}

// Stale reports whether dir is a dead FUSE mount (its server is gone: statfs, which the
// kernel never answers from its cache, fails with ENOTCONN).
func Stale(dir string) bool {
	var st unix.Statfs_t
	err := unix.Statfs(dir, &st)
	return errors.Is(err, unix.ENOTCONN)
}
