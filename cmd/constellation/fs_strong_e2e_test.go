package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestFSStrongEndToEnd (through the binary, one node: a single-voter lock group): a strong
// tree takes a write fenced by $CONSTELLATION_LOCK_TOKEN, refuses an older --lock-token
// with 409 stale_token naming both tokens (the file keeps its content), refuses a bad
// token value and a consistency change of a tree with files.
func TestFSStrongEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	port := testutil.FreePort(t, nil)
	startPeer(t, dir, "--node", "solo", "--cluster", "strong", "--bind", fmt.Sprintf("127.0.0.1:%d", port), "--lock-stable-after", "200ms")
	if r := waitJSON(t, 30*time.Second, "fs init strong", func(r result) bool { return strings.Contains(r.stdout, `"strong"`) },
		"fs", "init", "/s", "--consistency", "strong", "--replication", "1", "--json", "--data-dir", dir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	local := filepath.Join(t.TempDir(), "counter")
	if err := os.WriteFile(local, []byte("7"), 0o644); err != nil {
		t.Fatal(err)
	}
	var e api.FSEntry
	testutil.WaitForEvery(t, 30*time.Second, 200*time.Millisecond, "a fenced strong put", func() (bool, string) {
		r := runEnv(t, []string{"CONSTELLATION_LOCK_TOKEN=7"}, "fs", "put", local, "/s/counter", "--json", "--data-dir", dir)
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &e) == nil, r.stderr
	})
	if err := os.WriteFile(local, []byte("5"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "fs", "put", local, "/s/counter", "--lock-token", "5", "--data-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "token 5") || !strings.Contains(r.stderr, "token 7") {
		t.Fatalf("stale put: exit %d, stderr %q; want a refusal naming tokens 5 and 7", r.code, r.stderr)
	}
	if r := run(t, "fs", "cat", "/s/counter", "--data-dir", dir); r.code != 0 || r.stdout != "7" {
		t.Fatalf("cat after the refused write: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runEnv(t, []string{"CONSTELLATION_LOCK_TOKEN=seven"}, "fs", "rm", "/s/counter", "--data-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "CONSTELLATION_LOCK_TOKEN") {
		t.Fatalf("bad token: exit %d %q", r.code, r.stderr)
	}
	r = run(t, "fs", "init", "/s", "--consistency", "eventual", "--data-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "only while it is empty") {
		t.Fatalf("consistency change: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, "fs", "rm", "/s/counter", "--lock-token", "8", "--data-dir", dir); r.code != 0 {
		t.Fatalf("fenced rm: %s", r.stderr)
	}
	if r := run(t, "fs", "cat", "/s/counter", "--data-dir", dir); r.code == 0 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("cat after rm: exit %d %q", r.code, r.stderr)
	}
}
