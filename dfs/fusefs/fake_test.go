package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
)

// memDFS is an in-memory Backend with the DFS's listing semantics, shared by several
// mounts in a test as the DFS is shared by nodes; refuse makes every Put fail as a DFS
// without quorum does.
type memDFS struct {
	mu     sync.Mutex
	files  map[string]memFile
	subs   map[chan api.FSEvent]string
	refuse error
	puts   int
}

type memFile struct {
	data    []byte
	mode    uint32
	mtime   time.Time
	version uint64
}

func newMemDFS() *memDFS {
	return &memDFS{files: map[string]memFile{}, subs: map[chan api.FSEvent]string{}}
}

func under(p, prefix string) bool {
	return prefix == "/" || strings.HasPrefix(p, prefix+"/")
}

func (d *memDFS) entry(p string, f memFile) api.FSEntry {
	return api.FSEntry{Path: p, Size: int64(len(f.data)), Mode: f.mode, MTime: f.mtime, Version: f.version}
}

func (d *memDFS) Open(ctx context.Context, p string) (io.ReadSeekCloser, api.FSEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[p]
	if !ok {
		return nil, api.FSEntry{}, fmt.Errorf("%w: %s", dfs.ErrNotFound, p)
	}
	return nopCloser{bytes.NewReader(f.data)}, d.entry(p, f), nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (d *memDFS) List(prefix string, recursive bool) ([]api.FSEntry, error) {
	p, err := dfs.CleanPrefix(prefix)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []api.FSEntry{}
	dirs := map[string]bool{}
	for name, f := range d.files {
		switch {
		case name == p:
			out = append(out, d.entry(name, f))
		case under(name, p):
			rest := strings.TrimPrefix(strings.TrimPrefix(name, p), "/")
			if recursive || !strings.Contains(rest, "/") {
				out = append(out, d.entry(name, f))
				continue
			}
			dir := strings.TrimSuffix(p, "/") + "/" + strings.SplitN(rest, "/", 2)[0] + "/"
			if !dirs[dir] {
				dirs[dir] = true
				out = append(out, api.FSEntry{Path: dir})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (d *memDFS) Put(ctx context.Context, p string, r io.Reader, mode uint32) (api.FSEntry, error) {
	if err := dfs.CheckPath(p); err != nil {
		return api.FSEntry{}, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return api.FSEntry{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse != nil {
		return api.FSEntry{}, d.refuse
	}
	d.puts++
	old, existed := d.files[p]
	f := memFile{data: b, mode: mode, mtime: time.Now(), version: old.version + 1}
	d.files[p] = f
	typ := api.FSCreated
	if existed {
		typ = api.FSModified
	}
	d.emitLocked(typ, p)
	return d.entry(p, f), nil
}

func (d *memDFS) Remove(p string, recursive bool) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for name := range d.files {
		if name == p || (recursive && under(name, p)) {
			delete(d.files, name)
			d.emitLocked(api.FSDeleted, name)
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %s", dfs.ErrNotFound, p)
	}
	return n, nil
}

func (d *memDFS) Move(from, to string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	moves := map[string]string{}
	for name := range d.files {
		if name == from {
			moves[name] = to
		} else if under(name, from) {
			moves[name] = to + strings.TrimPrefix(name, from)
		}
	}
	if len(moves) == 0 {
		return 0, fmt.Errorf("%w: %s", dfs.ErrNotFound, from)
	}
	for src, dst := range moves {
		f := d.files[src]
		delete(d.files, src)
		f.version++
		d.files[dst] = f
		d.emitLocked(api.FSDeleted, src)
		d.emitLocked(api.FSCreated, dst)
	}
	return len(moves), nil
}

func (d *memDFS) Watch(prefix string) (<-chan api.FSEvent, func() bool, func(), error) {
	ch := make(chan api.FSEvent, 1024)
	d.mu.Lock()
	d.subs[ch] = prefix
	d.mu.Unlock()
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			d.mu.Lock()
			delete(d.subs, ch)
			close(ch)
			d.mu.Unlock()
		})
	}
	return ch, func() bool { return false }, cancel, nil
}

func (d *memDFS) emitLocked(typ, p string) {
	for ch, prefix := range d.subs {
		if p == prefix || under(p, prefix) {
			select {
			case ch <- api.FSEvent{Type: typ, Path: p}:
			default:
			}
		}
	}
}

func (d *memDFS) get(p string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[p]
	return f.data, ok
}

func (d *memDFS) setRefuse(err error) {
	d.mu.Lock()
	d.refuse = err
	d.mu.Unlock()
}

var errNoQuorum = errors.New("dfs: write not acknowledged: 1 of 2 holders confirmed (need 2): node beta: unreachable")
