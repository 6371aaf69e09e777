package fusefs

import (
	"strings"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
)

// invalidateLater drops the kernel's pages and attributes of an inode, from the watcher
// goroutine (a FUSE request must not notify the kernel itself).
func (m *Mount) invalidateLater(in *fs.Inode) {
	select {
	case m.inval <- in:
	default: // full: the attribute timeout covers it
	}
}

// startWatch follows the DFS changes under the mount's prefix and drops the kernel's
// cached entries and pages of what changed, so remote writes show at once (the short
// cache timeouts bound the delay when an event is missed).
func (m *Mount) startWatch() error {
	evs, lagged, cancel, err := m.be.Watch(m.opts.Prefix)
	if err != nil {
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-m.ctx.Done():
				cancel()
				return
			case in := <-m.inval:
				in.NotifyContent(0, 0)
			case e, ok := <-evs:
				if ok {
					m.invalidate(e.Path)
					continue
				}
				cancel()
				if !lagged() {
					return // the DFS closed
				}
				// fell behind: resubscribe (the timeouts cover what was missed)
				for {
					select {
					case <-m.ctx.Done():
						return
					case <-time.After(100 * time.Millisecond):
					}
					if evs, lagged, cancel, err = m.be.Watch(m.opts.Prefix); err == nil {
						break
					}
				}
			}
		}
	}()
	return nil
}

// invalidate drops the kernel's entries along p (so a new name appears, a deleted one
// disappears) and the cached pages of p's inode.
func (m *Mount) invalidate(p string) {
	rel, ok := m.relPath(p)
	if !ok || rel == "" {
		return
	}
	cur := m.root.EmbeddedInode()
	for _, name := range strings.Split(rel, "/") {
		cur.NotifyEntry(name)
		next := cur.GetChild(name)
		if next == nil {
			return
		}
		cur = next
	}
	if !cur.IsDir() {
		cur.NotifyContent(0, 0)
	}
}
