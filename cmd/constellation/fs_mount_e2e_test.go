package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/fusefs"
	"github.com/rads-lang/constellation/internal/testutil"
)

// fuseRequireRoot skips a FUSE test unless root; CONSTELLATION_TEST_REQUIRE_ROOT=1 makes
// that a failure.
func fuseRequireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("this test mounts FUSE: it needs root and CONSTELLATION_TEST_REQUIRE_ROOT=1 makes that a failure")
	}
	t.Skip("mounting FUSE needs root; set CONSTELLATION_TEST_REQUIRE_ROOT=1 to make this a failure")
}

// mountsUnder are the mount points below any of dirs (from /proc/self/mountinfo).
func mountsUnder(dirs ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, d+"/") {
				out = append(out, mp)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out))) // deepest first
	return out
}

// detachAllUnder registers a cleanup that detaches every mount left below dirs (a test
// that failed half way, a killed node), before the temp dirs are removed.
func detachAllUnder(t *testing.T, dirs ...string) {
	t.Cleanup(func() {
		for _, mp := range mountsUnder(dirs...) {
			if err := fusefs.Unmount(mp); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// isFUSEMount reports whether dir is a FUSE mount point now.
func isFUSEMount(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == 0x65735546 // FUSE_SUPER_MAGIC
}

// TestFSMountEndToEnd: `fs mount` on two nodes; what one writes through its mount the
// other reads through its own; mkdir, rename, rm and stat; fs mounts lists them; Ctrl-C
// unmounts; a node killed while hosting a mount leaves a stale mount that its next start
// detaches.
func TestFSMountEndToEnd(t *testing.T) {
	fuseRequireRoot(t)
	mntA, mntB := t.TempDir(), t.TempDir()
	dirA, dirB := t.TempDir(), t.TempDir()
	portA, portB := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	alpha := startPeer(t, dirA, "--node", "alpha", "--cluster", "fsm", "--bind", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "64")
	betaArgs := []string{"--node", "beta", "--cluster", "fsm", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "64"}
	beta := startPeer(t, dirB, betaArgs...)
	detachAllUnder(t, mntA, mntB, dirA, dirB)
	waitJSON(t, 30*time.Second, "alpha sees 2 nodes alive", func(r result) bool {
		var st map[string]any
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(2)
	}, "status", "--json", "--data-dir", dirA)
	seed := filepath.Join(t.TempDir(), "seed")
	os.WriteFile(seed, []byte("seed"), 0o644)
	waitJSON(t, 30*time.Second, "a put with 2 holders", func(r result) bool {
		var e api.FSEntry
		return json.Unmarshal([]byte(r.stdout), &e) == nil && len(e.Holders) == 2
	}, "fs", "put", seed, "/cluster/seed", "--replication", "2", "--json", "--data-dir", dirA)

	// alpha: a foreground fs mount (until SIGINT); beta: --background
	mountA := startPeerCmd(t, dirA, exec.Command(binary(t), "fs", "mount", mntA, "--prefix", "/cluster", "--data-dir", dirA))
	testutil.WaitFor(t, 15*time.Second, "alpha's mount", func() (bool, string) {
		return isFUSEMount(mntA), mountA.stderr.String()
	})
	if r := run(t, "fs", "mount", mntB, "--prefix", "/cluster", "--background", "--data-dir", dirB); r.code != 0 {
		t.Fatalf("fs mount on beta: %s", r.stderr)
	}

	data := make([]byte, 2<<20+123)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(mntA, "data.bin"), data, 0o640); err != nil {
		t.Fatalf("write through alpha's mount: %v", err)
	}
	testutil.WaitFor(t, 15*time.Second, "beta reads alpha's file through its mount", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(mntB, "data.bin"))
		return err == nil && bytes.Equal(got, data), fmt.Sprintf("%d bytes, %v", len(got), err)
	})
	fi, err := os.Stat(filepath.Join(mntB, "data.bin"))
	if err != nil || fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat on beta: %v %v", fi, err)
	}
	// the DFS itself has it: fs get on beta
	if r := run(t, "fs", "cat", "/cluster/data.bin", "--data-dir", dirB); r.code != 0 || r.stdout != string(data) {
		t.Fatalf("fs cat on beta: exit %d, %d bytes", r.code, len(r.stdout))
	}
	// mkdir and a file in it on beta, rename on alpha, rm on beta
	if err := os.MkdirAll(filepath.Join(mntB, "out", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mntB, "out", "r.txt"), []byte("result"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "alpha lists beta's directory", func() (bool, string) {
		es, err := os.ReadDir(filepath.Join(mntA, "out"))
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return err == nil && strings.Join(names, " ") == "deep r.txt", fmt.Sprint(names, err)
	})
	if err := os.Rename(filepath.Join(mntA, "out", "r.txt"), filepath.Join(mntA, "out", "deep", "r2.txt")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "beta sees the rename", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(mntB, "out", "deep", "r2.txt"))
		_, errOld := os.Stat(filepath.Join(mntB, "out", "r.txt"))
		return err == nil && string(got) == "result" && errors.Is(errOld, os.ErrNotExist), fmt.Sprint(string(got), err, errOld)
	})
	if err := os.RemoveAll(filepath.Join(mntB, "out")); err != nil {
		t.Fatal(err)
	}
	waitJSON(t, 15*time.Second, "the DFS has no out/ left", func(r result) bool {
		return !strings.Contains(r.stdout, "/cluster/out")
	}, "fs", "ls", "-R", "/cluster", "--data-dir", dirA)

	// the DFS refuses a commit (the file does not fit in the cluster): close answers EIO,
	// the node logs the path and the reason, every node keeps the previous version
	f, err := os.OpenFile(filepath.Join(mntA, "data.bin"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, 1<<20)
	for i := 0; i < 80; i++ {
		if _, err := f.Write(huge); err != nil {
			t.Fatalf("buffering the write: %v", err)
		}
	}
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("close of a write the DFS refuses: %v, want EIO", err)
	}
	testutil.WaitFor(t, 5*time.Second, "alpha's log line of the refused commit", func() (bool, string) {
		l := alpha.stderr.String()
		return strings.Contains(l, "commit refused") && strings.Contains(l, "/cluster/data.bin"), tail(l, 2000)
	})
	for _, m := range []string{mntA, mntB} {
		testutil.WaitFor(t, 5*time.Second, "the previous version through "+m, func() (bool, string) {
			got, err := os.ReadFile(filepath.Join(m, "data.bin"))
			return err == nil && bytes.Equal(got, data), fmt.Sprintf("%d bytes, %v", len(got), err)
		})
	}
	if r := run(t, "fs", "versions", "/cluster/data.bin", "--data-dir", dirB); strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("versions after a refused write (want the header and one version):\n%s", r.stdout)
	}

	// fs mounts
	var ms []api.FSMount
	r := run(t, "fs", "mounts", "--json", "--data-dir", dirA)
	if json.Unmarshal([]byte(r.stdout), &ms) != nil || len(ms) != 1 || ms[0].Dir != mntA || ms[0].Prefix != "/cluster" || ms[0].Owner != "api" {
		t.Fatalf("fs mounts on alpha: %s %s", r.stdout, r.stderr)
	}
	// bad input
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fs", "mount", mntB, "--background"}, "already a mount"},
		{[]string{"fs", "mount", dirA, "--background"}, "not empty"},
		{[]string{"fs", "mount", "/proc/sys", "--background"}, "where no mount may go"},
		{[]string{"fs", "mount", t.TempDir(), "--prefix", "/a/../b", "--background"}, "not resolved"},
		{[]string{"fs", "umount", t.TempDir()}, "no such mount"},
	} {
		r := run(t, append(tc.args, "--data-dir", dirB)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// Ctrl-C unmounts alpha's mount
	mountA.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-mountA.done:
		if mountA.waitErr != nil {
			t.Fatalf("fs mount after SIGINT: %v\n%s", mountA.waitErr, mountA.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("fs mount did not end after SIGINT")
	}
	if isFUSEMount(mntA) {
		t.Fatal("alpha's mount is still there after SIGINT")
	}
	// a killed fs mount: the node unmounts when its hold ends
	mountK := startPeerCmd(t, dirA, exec.Command(binary(t), "fs", "mount", mntA, "--prefix", "/cluster", "--data-dir", dirA))
	testutil.WaitFor(t, 15*time.Second, "alpha's mount again", func() (bool, string) {
		return isFUSEMount(mntA), mountK.stderr.String()
	})
	// Killed at once: the kill may land between the mount and its hold request; the node
	// then unmounts the orphan after the hold grace (5 s), else when the hold ends.
	mountK.cmd.Process.Kill()
	<-mountK.done
	testutil.WaitFor(t, 20*time.Second, "the node to unmount the mount of a killed fs mount", func() (bool, string) {
		return !isFUSEMount(mntA), "still mounted"
	})

	// beta crashes while hosting its mount: stale; its next start detaches it
	beta.cmd.Process.Kill()
	<-beta.done
	if !fusefs.Stale(mntB) {
		t.Fatal("the mount of a killed node is not stale")
	}
	startPeer(t, dirB, betaArgs...)
	waitJSON(t, 30*time.Second, "beta back", func(r result) bool { return true }, "status", "--json", "--data-dir", dirB)
	if fusefs.Stale(mntB) || isFUSEMount(mntB) {
		t.Fatal("beta's restart left the stale mount")
	}
	if r := run(t, "fs", "mounts", "--json", "--data-dir", dirB); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("fs mounts after the restart: %s %s", r.stdout, r.stderr)
	}
}
