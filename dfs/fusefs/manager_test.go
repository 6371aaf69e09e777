package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rads-lang/constellation/api"
)

// TestManagerMountsAndRecords: API mounts are validated, recorded in the data dir and
// listed; instance mounts are owned by the instance's uid and released with it.
func TestManagerMountsAndRecords(t *testing.T) {
	requireRoot(t)
	d := newMemDFS()
	data := t.TempDir()
	g, err := NewManager(d, ManagerConfig{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	for _, tc := range []struct {
		q    api.FSMountRequest
		want string
	}{
		{api.FSMountRequest{Dir: "rel"}, "not absolute"},
		{api.FSMountRequest{Dir: "/"}, "cannot mount over /"},
		{api.FSMountRequest{Dir: "/proc/sys"}, "where no mount may go"},
		{api.FSMountRequest{Dir: filepath.Join(data, "x")}, "where no mount may go"},
		{api.FSMountRequest{Dir: full}, "not empty"},
		{api.FSMountRequest{Dir: full + "/../x"}, "not clean"},
		{api.FSMountRequest{Dir: filepath.Join(full, "missing")}, "create an empty directory first"},
		{api.FSMountRequest{Dir: t.TempDir(), Prefix: "/a/../b"}, "not resolved"},
	} {
		if _, err := g.Mount(tc.q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Mount(%+v): %v, want an error containing %q", tc.q, err, tc.want)
		}
	}
	dir := t.TempDir()
	m, err := g.Mount(api.FSMountRequest{Dir: dir, Prefix: "/cluster/", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.Prefix != "/cluster" || m.Owner != OwnerAPI || !m.ReadOnly {
		t.Fatalf("mount %+v", m)
	}
	if _, err := g.Mount(api.FSMountRequest{Dir: dir}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second mount at %s: %v", dir, err)
	}
	b, _ := os.ReadFile(filepath.Join(data, recordsFile))
	recs, err := decodeRecords(b)
	if err != nil || len(recs) != 1 || recs[0].Dir != dir {
		t.Fatalf("records %s: %v %v", b, recs, err)
	}
	idir, err := g.InstanceMount("job/1", "/cluster", false, 1234, 5678)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(idir, &st); err != nil || st.Uid != 1234 || st.Gid != 5678 {
		t.Fatalf("instance mount root owned by %d:%d (%v), want 1234:5678", st.Uid, st.Gid, err)
	}
	if err := g.Unmount(idir); !errors.Is(err, ErrBusy) {
		t.Fatalf("unmounting an instance's mount through the API: %v", err)
	}
	if got := len(g.List()); got != 2 {
		t.Fatalf("%d mounts listed, want 2", got)
	}
	g.ReleaseInstance("job/1", time.Now().Add(-time.Hour)) // an exit older than the mount
	if _, err := os.Stat(idir); err != nil || len(g.List()) != 2 {
		t.Fatalf("a late exit released a newer view: %v, %d mounts", err, len(g.List()))
	}
	g.ReleaseInstance("job/1", time.Time{})
	if _, err := os.Stat(idir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance mount point after release: %v", err)
	}
	if err := g.Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if err := g.Unmount(dir); !errors.Is(err, ErrNoMount) {
		t.Fatalf("second unmount: %v", err)
	}
}

// TestCloseAbortsAHeldConnection plays an instance that still holds a bind of its view
// when the node unmounts it: Close must not hang; the bind then answers ENOTCONN.
func TestCloseAbortsAHeldConnection(t *testing.T) {
	requireRoot(t)
	d := newMemDFS()
	dir := t.TempDir()
	m, err := New(dir, d, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	bind := t.TempDir()
	if err := unix.Mount(dir, bind, "", unix.MS_BIND, ""); err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(closeGrace + 10*time.Second):
		t.Fatal("Close hung on a mount held by a bind")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(bind, &st); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("the held bind after Close: %v, want ENOTCONN (closed in %s)", err, time.Since(start))
	}
}

// FuzzDecodeRecords: the records file is file input (a crash may leave anything).
func FuzzDecodeRecords(f *testing.F) {
	f.Add([]byte(`[{"dir":"/mnt/x","prefix":"/cluster","owner":"api","since":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte(`[{"dir":"relative"},{"dir":"/"},{"dir":"/a/../b"}]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeRecords(b)
		if err != nil {
			return
		}
		for _, r := range recs {
			if !filepath.IsAbs(r.Dir) || filepath.Clean(r.Dir) != r.Dir || r.Dir == "/" {
				t.Fatalf("accepted record dir %q", r.Dir)
			}
		}
	})
}

// TestHoldNeverCame plays a foreground fs mount killed between its mount and its hold
// request: a mount asked with Hold and never held is unmounted after the grace; one that is
// held stays.
func TestHoldNeverCame(t *testing.T) {
	requireRoot(t)
	old := holdGrace
	holdGrace = 300 * time.Millisecond
	t.Cleanup(func() { holdGrace = old })
	g, err := NewManager(newMemDFS(), ManagerConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	orphan, held := t.TempDir(), t.TempDir()
	for _, dir := range []string{orphan, held} {
		if _, err := g.Mount(api.FSMountRequest{Dir: dir, Hold: true}); err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	g.mounts[held].held = true // what GET /v1/fs/mounts/hold does first
	g.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms := g.List()
		if len(ms) == 1 && ms[0].Dir == held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mounts %+v; want only the held one %s", ms, held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
