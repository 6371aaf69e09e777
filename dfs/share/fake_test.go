package share

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs"
)

// fakeFS is an in-memory DFS: files by path, CIDs from their bytes, watchers by prefix.
type fakeFS struct{ s *fakeStore }

type fakeStore struct {
	mu    sync.Mutex
	files map[string]fakeFile
	subs  []fakeSub
}

type fakeFile struct {
	data  []byte
	mtime time.Time
	mode  uint32
}

type fakeSub struct {
	prefix string
	ch     chan api.FSEvent
}

func newFakeFS() fakeFS { return fakeFS{&fakeStore{files: map[string]fakeFile{}}} }

func cidOf(b []byte) string { return fmt.Sprintf("fake-%x", sha256.Sum256(b)) }

func (f fakeFS) put(path string, b []byte, mode uint32) api.FSEntry {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.s.files[path] = fakeFile{data: b, mtime: time.Now(), mode: mode}
	f.emitLocked(api.FSEvent{Type: api.FSModified, Path: path})
	return api.FSEntry{Path: path, CID: cidOf(b), Size: int64(len(b)), Mode: mode, Writer: "remote"}
}

func (f fakeFS) emitLocked(ev api.FSEvent) {
	for _, s := range f.s.subs {
		if strings.HasPrefix(ev.Path, s.prefix+"/") {
			select {
			case s.ch <- ev:
			default:
			}
		}
	}
}

func (f fakeFS) Put(ctx context.Context, path string, r io.Reader, o dfs.PutOptions) (api.FSEntry, error) {
	if f.s == nil {
		return api.FSEntry{}, fmt.Errorf("no store")
	}
	if err := dfs.CheckPath(path); err != nil {
		return api.FSEntry{}, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return api.FSEntry{}, err
	}
	return f.put(path, b, o.Mode), nil
}

func (f fakeFS) PutConflictCopy(ctx context.Context, name string, r io.Reader, o dfs.PutOptions) (api.FSEntry, error) {
	return f.Put(ctx, name, r, o)
}

type readSeekCloser struct{ *bytes.Reader }

func (readSeekCloser) Close() error { return nil }

func (f fakeFS) Open(ctx context.Context, name string, version uint64) (io.ReadSeekCloser, api.FSEntry, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	x, ok := f.s.files[name]
	if !ok {
		return nil, api.FSEntry{}, fmt.Errorf("%w: %s", dfs.ErrNotFound, name)
	}
	return readSeekCloser{bytes.NewReader(x.data)}, api.FSEntry{Path: name, CID: cidOf(x.data), Size: int64(len(x.data)), Mode: x.mode}, nil
}

func (f fakeFS) List(prefix string, recursive bool) ([]api.FSEntry, error) {
	if f.s == nil {
		return nil, nil
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	var out []api.FSEntry
	for p, x := range f.s.files {
		if strings.HasPrefix(p, prefix+"/") {
			out = append(out, api.FSEntry{Path: p, CID: cidOf(x.data), Size: int64(len(x.data)), MTime: x.mtime, Mode: x.mode, Writer: "remote"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (f fakeFS) Remove(name string, recursive bool) (int, error) {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if _, ok := f.s.files[name]; !ok {
		return 0, fmt.Errorf("%w: %s", dfs.ErrNotFound, name)
	}
	delete(f.s.files, name)
	f.emitLocked(api.FSEvent{Type: api.FSDeleted, Path: name})
	return 1, nil
}

func (f fakeFS) Watch(prefix string) (<-chan api.FSEvent, func() bool, func(), error) {
	if f.s == nil {
		return nil, nil, nil, fmt.Errorf("no store")
	}
	ch := make(chan api.FSEvent, 64)
	f.s.mu.Lock()
	f.s.subs = append(f.s.subs, fakeSub{prefix, ch})
	f.s.mu.Unlock()
	return ch, func() bool { return false }, func() {
		f.s.mu.Lock()
		defer f.s.mu.Unlock()
		for i, s := range f.s.subs {
			if s.ch == ch {
				f.s.subs = append(f.s.subs[:i], f.s.subs[i+1:]...)
				break
			}
		}
	}, nil
}
