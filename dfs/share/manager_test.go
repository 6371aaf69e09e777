package share

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rads-lang/constellation/api"
)

func waitFor(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		done, state := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestManagerRunner: a writable realtime share over the in-memory DFS: a local file is
// uploaded, a DFS file downloaded, deletes go both ways, the metrics count; the share is
// persisted and resumes in a new manager (a restart) catching up on a change made while
// it was down; a second share of the directory is refused; unshare forgets it.
func TestManagerRunner(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	stateDir := t.TempDir()
	fs := newFakeFS()
	reg := prometheus.NewRegistry()
	newManager := func(reg prometheus.Registerer) *Manager {
		m, err := New(t.Context(), Config{Dir: stateDir, DataDir: stateDir, Node: "alpha", Debounce: 20 * time.Millisecond, Metrics: reg}, fs)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := newManager(reg)
	s, err := m.Create(api.FSShareRequest{LocalDir: dir, Path: "/s", Writable: true, Conflict: KeepBoth})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sync != Realtime || s.Interval != "30s" || s.ID != IDOf(dir) {
		t.Fatalf("share %+v", s)
	}
	if _, err := m.Create(api.FSShareRequest{LocalDir: dir + "/", Path: "/t", Writable: true}); err == nil || !strings.Contains(err.Error(), "already shared") {
		t.Fatalf("a second share of the directory: %v", err)
	}
	if _, err := m.Create(api.FSShareRequest{LocalDir: stateDir, Path: "/t"}); err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("the data dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "up.txt"), []byte("local"), 0o640)
	fs.put("/s/sub/down.txt", []byte("remote"), 0o600)
	waitFor(t, "both directions", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(dir, "sub/down.txt"))
		_, _, err := fs.Open(t.Context(), "/s/up.txt", 0)
		return string(b) == "remote" && err == nil, string(b)
	})
	if fi, _ := os.Stat(filepath.Join(dir, "sub/down.txt")); fi.Mode().Perm() != 0o600 {
		t.Errorf("downloaded mode %v, want 0600", fi.Mode().Perm())
	}
	os.Remove(filepath.Join(dir, "up.txt"))
	fs.Remove("/s/sub/down.txt", false)
	waitFor(t, "deletes both ways", func() (bool, string) {
		_, err1 := os.Stat(filepath.Join(dir, "sub"))
		_, _, err2 := fs.Open(t.Context(), "/s/up.txt", 0)
		return err1 != nil && err2 != nil, ""
	})
	if n := testutil.ToFloat64(m.met.applied.WithLabelValues("upload")); n < 1 {
		t.Errorf("applied uploads %v", n)
	}
	if n := testutil.ToFloat64(m.met.shares); n != 1 {
		t.Errorf("shares gauge %v", n)
	}
	m.Close()

	// while "the node is down": a DFS change; the new manager catches up at start
	fs.put("/s/later.txt", []byte("made while down"), 0o644)
	m = newManager(prometheus.NewRegistry())
	defer m.Close()
	waitFor(t, "the resumed share catches up", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(dir, "later.txt"))
		return string(b) == "made while down", string(b)
	})
	if ss := m.List(); len(ss) != 1 || ss[0].LocalDir != dir {
		t.Fatalf("resumed shares %+v", ss)
	}
	if _, err := m.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Remove(dir); err == nil || !strings.Contains(err.Error(), "no such share") {
		t.Fatalf("second unshare: %v", err)
	}
	if _, err := os.Stat(statePath(stateDir, IDOf(dir))); err == nil {
		t.Error("the state of an unshared directory is still on disk")
	}
	// after Close (the node shutting down while the API still answers): no panic
	other, _ := filepath.EvalSymlinks(t.TempDir())
	if _, err := m.Create(api.FSShareRequest{LocalDir: other, Path: "/o"}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m.Close()
	if ss := m.List(); len(ss) != 1 || ss[0].Status != "stopped" {
		t.Errorf("after Close: %+v", ss)
	}
	if _, err := m.Remove(other); err == nil {
		t.Error("Remove after Close")
	}
	if err := m.Sync(other); err == nil {
		t.Error("Sync after Close")
	}
}
