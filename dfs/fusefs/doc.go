// Package fusefs mounts a prefix of constellation's distributed file system as a local
// directory with FUSE (github.com/hanwen/go-fuse/v2, a direct mount as root: no
// fusermount). It maps the POSIX calls onto the DFS operations of the Backend interface
// (node adapts *dfs.Service to it):
//
//   - lookup, stat, ls: Backend.List. Directories are the prefixes of files; mkdir writes
//     an empty marker file NAME/.constellation-dir (DirMarker) so an empty directory
//     exists on every node; mounts hide the marker, `fs ls` shows it. rmdir removes the
//     marker, refuses a directory with files (ENOTEMPTY). A name that is both a file and
//     a prefix shows as the file.
//   - read: Backend.Open's reader, seeking for random access; every open sees the current
//     version (the kernel's page cache is dropped at open).
//   - write, create, truncate, chmod: the file's bytes go to an anonymous buffer file in
//     Options.TempDir (copied from the DFS at the first write to an existing file) and are
//     committed with Backend.Put as one new version on flush (every close), fsync and the
//     last close. Nothing partial is ever visible: the DFS holds the old version until the
//     commit succeeds. A refused commit (quorum lost, disk full, unavailable) answers EIO,
//     logs one line naming the path and the DFS's reason, and leaves the previous version
//     intact; the refused buffer is dropped at the last close, never committed later
//     behind the writer's back. Times and owners are the DFS's; utimes and chown are
//     accepted and ignored; setuid, setgid and sticky bits are dropped. Symlinks, hard links, xattrs and locks are not supported.
//   - rename (also of a directory with everything under it): Backend.Move; rm:
//     Backend.Remove.
//
// The kernel caches entries and attributes for Options.Timeout (1 s by default) and no
// negative entries; a goroutine follows Backend.Watch under the prefix and invalidates
// the names and pages that changed, so remote writes show at once. A read-only mount
// (Options.ReadOnly) is mounted MS_RDONLY and refuses every change with EROFS, also for
// root. A mount shows only its prefix: every path it builds is the prefix plus a name the
// kernel resolved inside the mount.
//
// Close unmounts (lazily, MNT_DETACH, when busy). A mount whose serving process died
// answers ENOTCONN: Stale detects it and Unmount detaches it (node does both at start for
// the mounts its record file lists).
package fusefs
