package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/share"
	"github.com/rads-lang/constellation/internal/testutil"
)

// dirFiles is a directory's regular files (relative path -> content).
func dirFiles(root string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == share.MarkerName {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return out
}

func filesString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q ", k, m[k])
	}
	return b.String()
}

// TestFSShareEndToEnd: two node processes each share a directory of their own with the
// same DFS path (--writable): files written, modified and deleted on each side reach the
// other; a second share of the same directory (and the other bad inputs) is refused with a
// clear error; beta is killed, both sides change while it is down (the same file edited on
// both: a conflict per policy), and beta's shares resume at restart and catch up.
func TestFSShareEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	portA, portB := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	startPeer(t, dirA, "--node", "alpha", "--cluster", "share", "--bind", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "64")
	betaArgs := []string{"--node", "beta", "--cluster", "share", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "64"}
	beta := startPeer(t, dirB, betaArgs...)
	waitJSON(t, 30*time.Second, "alpha sees 2 nodes alive", func(r result) bool {
		var st map[string]any
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(2)
	}, "status", "--json", "--data-dir", dirA)

	tmpDir := func() string {
		d, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	shA, shB, lwwA, lwwB := tmpDir(), tmpDir(), tmpDir(), tmpDir()
	for _, s := range []struct{ node, dir, path, policy string }{
		{dirA, shA, "/shared/docs", "keep_both"}, {dirB, shB, "/shared/docs", "keep_both"},
		{dirA, lwwA, "/shared/lww", "last_write_wins"}, {dirB, lwwB, "/shared/lww", "last_write_wins"},
	} {
		if r := run(t, "fs", "share", s.dir, s.path, "--sync", "realtime", "--conflict", s.policy, "--writable", "--data-dir", s.node); r.code != 0 || !strings.Contains(r.stdout, "share sh-") {
			t.Fatalf("fs share %s %s: exit %d: %s%s", s.dir, s.path, r.code, r.stdout, r.stderr)
		}
	}

	// bad input: each refused with what is wrong, and nothing changes
	file := filepath.Join(tmpDir(), "plain-file")
	os.WriteFile(file, []byte("x"), 0o644)
	if err := os.Mkdir(filepath.Join(shA, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{shA, "/shared/other", "--writable"}, "already shared"},
		{[]string{filepath.Join(shA, "sub"), "/shared/other"}, "inside"},
		{[]string{filepath.Dir(shA), "/shared/other"}, "contains"},
		{[]string{filepath.Join(shA, "missing"), "/shared/other"}, "does not exist"},
		{[]string{file, "/shared/other"}, "not a directory"},
		{[]string{tmpDir(), "relative/path"}, "not absolute"},
		{[]string{tmpDir(), "/a/../b"}, "paths are not resolved"},
		{[]string{tmpDir(), "/shared/docs"}, "overlaps"},
		{[]string{dirA, "/shared/other"}, "data dir"},
		{[]string{tmpDir(), "/shared/other", "--sync", "sometimes"}, "use realtime or periodic"},
		{[]string{tmpDir(), "/shared/other", "--conflict", "newest"}, "last_write_wins or keep_both"},
		{[]string{tmpDir(), "/shared/other", "--sync", "periodic", "--interval", "10ms"}, "interval"},
	} {
		r := run(t, append(append([]string{"fs", "share"}, tc.args...), "--data-dir", dirA)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("fs share %v: exit %d, stderr %q; want an error containing %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	var shares []api.FSShare
	if r := run(t, "fs", "shares", "--json", "--data-dir", dirA); json.Unmarshal([]byte(r.stdout), &shares) != nil || len(shares) != 2 {
		t.Fatalf("alpha's shares after the refused ones: %s %s", r.stdout, r.stderr)
	}
	os.Remove(filepath.Join(shA, "sub"))

	converged := func(what, a, b string, want map[string]string) map[string]string {
		t.Helper()
		var fa map[string]string
		testutil.WaitFor(t, 40*time.Second, what, func() (bool, string) {
			fa = dirFiles(a)
			fb := dirFiles(b)
			return maps.Equal(fa, fb) && (want == nil || maps.Equal(fa, want)), "alpha: " + filesString(fa) + "\nbeta:  " + filesString(fb)
		})
		return fa
	}
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(shA, "readme.md"), "alpha wrote this")
	write(filepath.Join(shA, "notes/todo.txt"), "todo 1")
	write(filepath.Join(shB, "img/logo.svg"), "<svg/>")
	write(filepath.Join(lwwA, "f.txt"), "v1")
	converged("files from both sides", shA, shB, map[string]string{"readme.md": "alpha wrote this", "notes/todo.txt": "todo 1", "img/logo.svg": "<svg/>"})
	converged("the lww share", lwwA, lwwB, map[string]string{"f.txt": "v1"})
	write(filepath.Join(shB, "readme.md"), "beta edited this")
	os.Remove(filepath.Join(shA, "img/logo.svg"))
	write(filepath.Join(shB, "notes/todo.txt"), "todo 2")
	converged("edits and a delete", shA, shB, map[string]string{"readme.md": "beta edited this", "notes/todo.txt": "todo 2"})

	// beta dies; both sides change while it is down
	beta.cmd.Process.Kill()
	<-beta.done
	// a 2-node cluster writes with both holders' ack until alpha judges beta dead
	waitJSON(t, 30*time.Second, "alpha sees beta dead", func(r result) bool {
		var st map[string]any
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(1)
	}, "status", "--json", "--data-dir", dirA)
	write(filepath.Join(shA, "while-down-alpha.txt"), "new on alpha")
	os.Remove(filepath.Join(shA, "notes/todo.txt"))
	write(filepath.Join(shA, "readme.md"), "alpha's concurrent edit")
	write(filepath.Join(lwwA, "f.txt"), "alpha's edit (older)")
	waitJSON(t, 20*time.Second, "alpha uploaded its changes", func(r result) bool {
		return strings.Contains(r.stdout, "while-down-alpha.txt") && !strings.Contains(r.stdout, "todo.txt")
	}, "fs", "ls", "-R", "/shared", "--data-dir", dirA)
	for _, f := range []struct {
		path    string
		version uint64
	}{{"/shared/docs/readme.md", 3}, {"/shared/lww/f.txt", 2}} {
		waitJSON(t, 20*time.Second, "alpha uploaded its edit of "+f.path, func(r result) bool {
			var e api.FSStat
			return json.Unmarshal([]byte(r.stdout), &e) == nil && e.Version == f.version && e.Writer == "alpha"
		}, "fs", "stat", f.path, "--json", "--data-dir", dirA)
	}
	write(filepath.Join(shB, "while-down-beta.txt"), "new on beta")
	write(filepath.Join(shB, "readme.md"), "beta's concurrent edit")
	old := time.Now().Add(-time.Hour) // beta's edit of readme.md is the older: it loses
	os.Chtimes(filepath.Join(shB, "readme.md"), old, old)
	write(filepath.Join(lwwB, "f.txt"), "beta's edit (newer)")
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(lwwB, "f.txt"), future, future)

	startPeer(t, dirB, betaArgs...)
	files := converged("beta caught up after its restart", shA, shB, nil)
	want := map[string]string{"readme.md": "alpha's concurrent edit", "while-down-alpha.txt": "new on alpha", "while-down-beta.txt": "new on beta", "img": ""}
	delete(want, "img")
	copies := 0
	for name, c := range files {
		if strings.HasPrefix(name, "readme.md.conflict-beta-") {
			copies++
			if c != "beta's concurrent edit" {
				t.Errorf("the conflict copy %s holds %q", name, c)
			}
			continue
		}
		if want[name] != c {
			t.Errorf("after the restart %s = %q, want %q (all: %s)", name, c, want[name], filesString(files))
		}
	}
	if copies != 1 || len(files) != len(want)+1 {
		t.Errorf("keep_both: want the 3 files and one readme.md.conflict-beta-<time>: %s", filesString(files))
	}
	converged("last_write_wins: beta's newer edit wins", lwwA, lwwB, map[string]string{"f.txt": "beta's edit (newer)"})

	var bs []api.FSShare
	waitJSON(t, 20*time.Second, "beta's shares resumed, ok", func(r result) bool {
		if json.Unmarshal([]byte(r.stdout), &bs) != nil || len(bs) != 2 {
			return false
		}
		for _, s := range bs {
			if s.Status != "ok" || s.Errors != 0 || s.LastSync.IsZero() {
				return false
			}
		}
		return true
	}, "fs", "shares", "--json", "--data-dir", dirB)
	if r := run(t, "fs", "shares", "--data-dir", dirB); r.code != 0 || !strings.Contains(r.stdout, "LAG") || !strings.Contains(r.stdout, shB) {
		t.Errorf("fs shares table: %s %s", r.stdout, r.stderr)
	}
	if r := run(t, "fs", "unshare", shB, "--data-dir", dirB); r.code != 0 || !strings.Contains(r.stdout, "unshared") {
		t.Fatalf("unshare: %s %s", r.stdout, r.stderr)
	}
	if r := run(t, "fs", "unshare", shB, "--data-dir", dirB); r.code == 0 || !strings.Contains(r.stderr, "no such share") {
		t.Errorf("a second unshare: exit %d %s", r.code, r.stderr)
	}
	write(filepath.Join(shA, "after-unshare.txt"), "x")
	time.Sleep(time.Second)
	if _, err := os.Stat(filepath.Join(shB, "after-unshare.txt")); err == nil {
		t.Errorf("an unshared directory still receives files")
	}
}
