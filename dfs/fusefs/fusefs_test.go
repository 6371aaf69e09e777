package fusefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// requireRoot skips a test that mounts unless root; with
// CONSTELLATION_TEST_REQUIRE_ROOT=1 it fails instead.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/dev/fuse"); err != nil {
			t.Fatalf("root but no /dev/fuse: %v", err)
		}
		return
	}
	if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("this test mounts FUSE: it needs root and CONSTELLATION_TEST_REQUIRE_ROOT=1 makes that a failure")
	}
	t.Skip("mounting FUSE needs root; set CONSTELLATION_TEST_REQUIRE_ROOT=1 to make this a failure")
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mount mounts be at a new temp dir and unmounts it when the test ends (also on failure).
func mount(t testing.TB, be Backend, o Options) (string, *syncBuf) {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuf{}
	o.Log = slog.New(slog.NewTextHandler(logs, nil))
	o.TempDir = filepath.Join(t.TempDir(), "buf")
	m, err := New(dir, be, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir, logs
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(t testing.TB, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestTwoMountsSeeEachOther: what one mount writes the other reads, also after an
// overwrite it had cached (Watch invalidation), and the DFS holds exactly the bytes.
func TestTwoMountsSeeEachOther(t *testing.T) {
	requireRoot(t)
	d := newMemDFS()
	a, _ := mount(t, d, Options{Prefix: "/cluster"})
	b, _ := mount(t, d, Options{Prefix: "/cluster"})

	if err := os.WriteFile(filepath.Join(a, "hello.txt"), []byte("hello from A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.get("/cluster/hello.txt"); string(got) != "hello from A" {
		t.Fatalf("DFS holds %q after the close", got)
	}
	if got := readFile(t, filepath.Join(b, "hello.txt")); got != "hello from A" {
		t.Fatalf("B reads %q", got)
	}
	// B overwrites with a longer text; A, which has the old pages and size cached, sees it
	if err := os.WriteFile(filepath.Join(b, "hello.txt"), []byte("rewritten on B, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 3*time.Second, "A to see B's overwrite", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(a, "hello.txt"))
		return err == nil && string(got) == "rewritten on B, longer", fmt.Sprintf("%q %v", got, err)
	})
	// a file created on B appears in A's listing
	if err := os.WriteFile(filepath.Join(b, "new.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 3*time.Second, "A to list new.txt", func() (bool, string) {
		got := names(t, a)
		return got == "hello.txt new.txt", got
	})
	fi, err := os.Stat(filepath.Join(a, "new.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 1 {
		t.Fatalf("stat new.txt: mode %v size %d, want -rw------- and 1", fi.Mode(), fi.Size())
	}
}

// TestFileOperations: mkdir, create in it, rename, random reads, append, truncate,
// rm, rmdir, each checked against the DFS underneath.
func TestFileOperations(t *testing.T) {
	requireRoot(t)
	d := newMemDFS()
	m, _ := mount(t, d, Options{Prefix: "/"})

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(m, "data"), 0o755))
	if _, ok := d.get("/data/" + DirMarker); !ok {
		t.Fatal("mkdir wrote no directory marker")
	}
	if got := names(t, filepath.Join(m, "data")); got != "" {
		t.Fatalf("a new directory lists %q (the marker must be hidden)", got)
	}
	if err := os.Mkdir(filepath.Join(m, "data"), 0o755); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second mkdir: %v, want EEXIST", err)
	}
	must(os.MkdirAll(filepath.Join(m, "data", "raw", "deep"), 0o755))

	big := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB
	must(os.WriteFile(filepath.Join(m, "data/raw/big.bin"), big, 0o644))
	f, err := os.Open(filepath.Join(m, "data/raw/big.bin"))
	must(err)
	buf := make([]byte, 16)
	for _, off := range []int64{3_000_000, 16, 1_600_000 + 5} {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, big[off:off+16]) {
			t.Fatalf("ReadAt %d: %q want %q", off, buf, big[off:off+16])
		}
	}
	f.Close()

	// append keeps the old bytes
	must(os.WriteFile(filepath.Join(m, "data/log.txt"), []byte("one\n"), 0o644))
	af, err := os.OpenFile(filepath.Join(m, "data/log.txt"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = af.WriteString("two\n")
	must(err)
	must(af.Close())
	if got, _ := d.get("/data/log.txt"); string(got) != "one\ntwo\n" {
		t.Fatalf("after append the DFS holds %q", got)
	}
	// truncate by path
	must(os.Truncate(filepath.Join(m, "data/log.txt"), 3))
	if got, _ := d.get("/data/log.txt"); string(got) != "one" {
		t.Fatalf("after truncate the DFS holds %q", got)
	}
	if fi, err := os.Stat(filepath.Join(m, "data/log.txt")); err != nil || fi.Size() != 3 {
		t.Fatalf("stat after truncate: %v %v", fi, err)
	}
	// rename a file, then the directory
	must(os.Rename(filepath.Join(m, "data/log.txt"), filepath.Join(m, "data/raw/log.txt")))
	if _, ok := d.get("/data/log.txt"); ok {
		t.Fatal("the old name is still in the DFS after rename")
	}
	if got := readFile(t, filepath.Join(m, "data/raw/log.txt")); got != "one" {
		t.Fatalf("renamed file reads %q", got)
	}
	must(os.Rename(filepath.Join(m, "data/raw"), filepath.Join(m, "data/in")))
	if got := names(t, filepath.Join(m, "data/in")); got != "big.bin deep/ log.txt" {
		t.Fatalf("after the directory rename data/in lists %q", got)
	}
	if got, _ := d.get("/data/in/log.txt"); string(got) != "one" {
		t.Fatalf("DFS after directory rename: %q", got)
	}
	// rmdir of a non-empty directory is refused; rm then rmdir works
	if err := syscall.Rmdir(filepath.Join(m, "data/in")); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir non-empty: %v, want ENOTEMPTY", err)
	}
	must(os.Remove(filepath.Join(m, "data/in/log.txt")))
	if _, err := os.Stat(filepath.Join(m, "data/in/log.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after rm: %v", err)
	}
	must(os.RemoveAll(filepath.Join(m, "data")))
	if got := names(t, m); got != "" {
		t.Fatalf("after rm -r the root lists %q", got)
	}
	d.mu.Lock()
	left := len(d.files)
	d.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d files left in the DFS after rm -r", left)
	}
	// setuid and setgid bits are not kept
	must(os.WriteFile(filepath.Join(m, "prog"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(m, "prog"), 0o6755))
	if fi, err := os.Stat(filepath.Join(m, "prog")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("after chmod 6755: %v %v", fi.Mode(), err)
	}
	d.mu.Lock()
	if mode := d.files["/prog"].mode; mode != 0o755 {
		t.Errorf("the DFS stores mode %o, want 755", mode)
	}
	d.mu.Unlock()
	must(os.Remove(filepath.Join(m, "prog")))
	// a name the DFS refuses is refused with an errno, not an EIO
	if err := os.WriteFile(filepath.Join(m, "bad\x01name"), []byte("x"), 0o644); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("control character in a name: %v, want EINVAL", err)
	}
}

// TestRefusedCommitIsEIO plays the fault: the DFS refuses the write (quorum lost). The
// writer gets EIO at close, a log line names the path and the reason, and the DFS keeps
// the previous version whole.
func TestRefusedCommitIsEIO(t *testing.T) {
	requireRoot(t)
	d := newMemDFS()
	m, logs := mount(t, d, Options{Prefix: "/cluster"})
	p := filepath.Join(m, "config.json")
	if err := os.WriteFile(p, []byte(`{"v":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	d.setRefuse(errNoQuorum)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"v":2, "half written"`); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with the DFS refusing: %v, want EIO", err)
	}
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("close with the DFS refusing: %v, want EIO", err)
	}
	if got, _ := d.get("/cluster/config.json"); string(got) != `{"v":1}` {
		t.Fatalf("the DFS holds %q after a refused write, want the previous version", got)
	}
	l := logs.String()
	if !strings.Contains(l, "/cluster/config.json") || !strings.Contains(l, "1 of 2 holders confirmed") {
		t.Fatalf("no log line naming the path and the reason:\n%s", l)
	}
	d.setRefuse(nil)
	testutil.WaitFor(t, 3*time.Second, "the previous version through the mount", func() (bool, string) {
		got, err := os.ReadFile(p)
		return err == nil && string(got) == `{"v":1}`, fmt.Sprintf("%q %v", got, err)
	})
}

// TestReadOnlyRefusesWrites plays an attacker with root on a read-only mount.
func TestReadOnlyRefusesWrites(t *testing.T) {
	requireRoot(t)
	d := newMemDFS()
	rw, _ := mount(t, d, Options{Prefix: "/cluster"})
	if err := os.WriteFile(filepath.Join(rw, "keep.txt"), []byte("original"), 0o666); err != nil {
		t.Fatal(err)
	}
	ro, _ := mount(t, d, Options{Prefix: "/cluster", ReadOnly: true})
	if got := readFile(t, filepath.Join(ro, "keep.txt")); got != "original" {
		t.Fatalf("ro mount reads %q", got)
	}
	attempts := map[string]error{
		"overwrite": os.WriteFile(filepath.Join(ro, "keep.txt"), []byte("evil"), 0o644),
		"create":    os.WriteFile(filepath.Join(ro, "new.txt"), []byte("evil"), 0o644),
		"mkdir":     os.Mkdir(filepath.Join(ro, "d"), 0o755),
		"rm":        os.Remove(filepath.Join(ro, "keep.txt")),
		"rename":    os.Rename(filepath.Join(ro, "keep.txt"), filepath.Join(ro, "moved.txt")),
		"truncate":  os.Truncate(filepath.Join(ro, "keep.txt"), 0),
		"chmod":     os.Chmod(filepath.Join(ro, "keep.txt"), 0o777),
	}
	for what, err := range attempts {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on a read-only mount: %v, want EROFS", what, err)
		}
	}
	if got, _ := d.get("/cluster/keep.txt"); string(got) != "original" {
		t.Fatalf("the DFS holds %q", got)
	}
	// the mount shows only its prefix
	if err := os.WriteFile(filepath.Join(rw, "..", "escape.txt"), nil, 0o644); err == nil {
		os.Remove(filepath.Join(rw, "..", "escape.txt"))
	}
	d.mu.Lock()
	for p := range d.files {
		if !strings.HasPrefix(p, "/cluster/") {
			t.Errorf("a write through the mount landed outside its prefix: %s", p)
		}
	}
	d.mu.Unlock()
}

// TestStaleMountCleanup plays a crash: a process serving a mount is killed; the mount
// point then answers ENOTCONN, Stale says so and Unmount cleans it.
func TestStaleMountCleanup(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMount$")
	cmd.Env = append(os.Environ(), "FUSEFS_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		Unmount(dir)
	})
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "mounted") {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("the helper did not mount")
	}
	if got := readFile(t, filepath.Join(dir, "x")); got != "from helper" {
		t.Fatalf("helper mount reads %q", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !Stale(dir) {
		t.Fatal("a mount whose server was killed is not reported stale")
	}
	if err := Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if Stale(dir) {
		t.Fatal("still stale after Unmount")
	}
	if es, err := os.ReadDir(dir); err != nil || len(es) != 0 {
		t.Fatalf("mount point after cleanup: %v %v", es, err)
	}
}

// TestHelperMount is the process TestStaleMountCleanup kills (it does nothing otherwise).
func TestHelperMount(t *testing.T) {
	dir := os.Getenv("FUSEFS_HELPER_DIR")
	if dir == "" {
		return
	}
	d := newMemDFS()
	d.files["/x"] = memFile{data: []byte("from helper"), mode: 0o644}
	if _, err := New(dir, d, Options{TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("mounted")
	time.Sleep(time.Minute)
}
