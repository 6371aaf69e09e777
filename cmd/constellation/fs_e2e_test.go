package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestFSEndToEnd: fs put/get/ls/stat/rm across two node processes, and the bad inputs
// a user meets (a missing local file, a bad path, a file larger than the cluster holds).
func TestFSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	portA, portB := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	startPeer(t, dirA, "--node", "alpha", "--cluster", "fs", "--bind", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "8")
	startPeer(t, dirB, "--node", "beta", "--cluster", "fs", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "8")
	waitJSON(t, 30*time.Second, "alpha sees 2 nodes alive", func(r result) bool {
		var st map[string]any
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(2)
	}, "status", "--json", "--data-dir", dirA)

	data := make([]byte, 3<<20)
	rand.Read(data)
	local := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(local, data, 0o640); err != nil {
		t.Fatal(err)
	}
	// both nodes must know each other's block store room before a write with R=2
	var e api.FSEntry
	waitJSON(t, 30*time.Second, "put with 2 holders", func(r result) bool {
		return json.Unmarshal([]byte(r.stdout), &e) == nil && len(e.Holders) == 2
	}, "fs", "put", local, "/cluster/data/in.bin", "--replication", "2", "--json", "--data-dir", dirA)
	if e.Size != int64(len(data)) || e.Mode != 0o640 || e.Writer != "alpha" {
		t.Fatalf("put answer %+v", e)
	}
	waitJSON(t, 10*time.Second, "beta lists the file", func(r result) bool {
		return strings.TrimSpace(r.stdout) == "/cluster/data/in.bin"
	}, "fs", "ls", "-R", "/cluster", "--data-dir", dirB)
	out := filepath.Join(t.TempDir(), "out.bin")
	if r := run(t, "fs", "get", "/cluster/data/in.bin", out, "--data-dir", dirB); r.code != 0 {
		t.Fatalf("get on beta: %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatalf("beta read %d bytes that differ from the %d written", len(got), len(data))
	}
	var st api.FSStat
	r := run(t, "fs", "stat", "/cluster/data/in.bin", "--json", "--data-dir", dirB)
	if json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.Copies) != 2 || !st.PinnedHere {
		t.Fatalf("stat on beta: %s %s", r.stdout, r.stderr)
	}
	if r := run(t, "fs", "cat", "/cluster/data/in.bin", "--data-dir", dirA); r.code != 0 || r.stdout != string(data) {
		t.Fatalf("cat on alpha: exit %d, %d bytes", r.code, len(r.stdout))
	}

	// bad input: clear errors, nothing stored
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fs", "put", filepath.Join(t.TempDir(), "missing"), "/x"}, "cannot read the local file"},
		{[]string{"fs", "put", local, "/a/../b"}, "paths are not resolved"},
		{[]string{"fs", "put", local, "relative"}, "not absolute"},
		{[]string{"fs", "get", "/cluster/none", "-"}, "no such file"},
		{[]string{"fs", "init", "/s", "--consistency", "linearizable"}, "eventual or strong"},
	} {
		r := run(t, append(tc.args, "--data-dir", dirA)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	big := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(big, make([]byte, 12<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "fs", "put", big, "/cluster/big", "--data-dir", dirA); r.code == 0 || !strings.Contains(r.stderr, "bytes") {
		t.Errorf("a file larger than the cluster holds: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, "fs", "ls", "-R", "/", "--data-dir", dirB); strings.Contains(r.stdout, "big") {
		t.Errorf("a failed put left an entry: %s", r.stdout)
	}

	// CAR export on beta, import on alpha under another name: the same CID
	car := filepath.Join(t.TempDir(), "in.car")
	r = run(t, "fs", "export", "/cluster/data/in.bin", "--data-dir", dirB)
	if r.code != 0 || os.WriteFile(car, []byte(r.stdout), 0o600) != nil {
		t.Fatalf("export: %d %s", r.code, r.stderr)
	}
	var imp api.FSEntry
	r = run(t, "fs", "import", car, "/cluster/copy.bin", "--json", "--data-dir", dirA)
	if json.Unmarshal([]byte(r.stdout), &imp) != nil || imp.CID != e.CID || imp.Size != e.Size {
		t.Fatalf("import: %+v (want CID %s) %s", imp, e.CID, r.stderr)
	}
	// a watcher on beta sees a change made on alpha
	w := startPeerCmd(t, dirB, exec.Command(binary(t), "fs", "watch", "/cluster", "--json", "--data-dir", dirB))
	time.Sleep(300 * time.Millisecond)
	if r := run(t, "fs", "mv", "/cluster/copy.bin", "/cluster/moved.bin", "--data-dir", dirA); r.code != 0 {
		t.Fatalf("mv: %s", r.stderr)
	}
	testutil.WaitFor(t, 10*time.Second, "the watcher on beta sees the move", func() (bool, string) {
		out := w.stderr.String() // the process's stdout and stderr
		return strings.Contains(out, `"type": "created"`) && strings.Contains(out, "/cluster/moved.bin") &&
			strings.Contains(out, `"type": "deleted"`), out
	})
	// snapshot, delete, restore
	if r := run(t, "fs", "snapshot", "/cluster", "--save", "before-rm", "--data-dir", dirA); r.code != 0 {
		t.Fatalf("snapshot: %s", r.stderr)
	}
	if r := run(t, "fs", "rm", "-r", "/cluster/moved.bin", "--data-dir", dirA); r.code != 0 {
		t.Fatalf("rm: %s", r.stderr)
	}
	waitJSON(t, 10*time.Second, "beta lists the snapshot", func(r result) bool {
		return strings.Contains(r.stdout, "before-rm")
	}, "fs", "snapshots", "--data-dir", dirB)
	if r := run(t, "fs", "restore", "before-rm", "/restored", "--data-dir", dirB); r.code != 0 || !strings.Contains(r.stdout, "restored 2 file(s)") {
		t.Fatalf("restore: %s %s", r.stdout, r.stderr)
	}
	if r := run(t, "fs", "cat", "/restored/moved.bin", "--data-dir", dirB); r.code != 0 || r.stdout != string(data) {
		t.Fatalf("restored file: exit %d, %d bytes", r.code, len(r.stdout))
	}
	var du api.FSDu
	if r := run(t, "fs", "du", "/restored", "--by-node", "--json", "--data-dir", dirA); json.Unmarshal([]byte(r.stdout), &du) != nil || du.Files != 2 || len(du.ByNode) != 2 {
		t.Errorf("du --by-node: %s %s", r.stdout, r.stderr)
	}

	if r := run(t, "fs", "rm", "/cluster/data/in.bin", "--data-dir", dirB); r.code != 0 {
		t.Fatalf("rm on beta: %s", r.stderr)
	}
	waitJSON(t, 10*time.Second, "alpha sees the removal", func(r result) bool {
		return strings.TrimSpace(r.stdout) == "[]"
	}, "fs", "ls", "-R", "/cluster", "--json", "--data-dir", dirA)
	if r := run(t, "fs", "versions", "/cluster/data/in.bin", "--data-dir", dirA); r.code != 0 || !strings.Contains(r.stdout, "deleted") {
		t.Errorf("versions of the removed file: %s %s", r.stdout, r.stderr)
	}
}
