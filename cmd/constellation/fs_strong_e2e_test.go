package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// TestFSStrongEndToEnd (through the binary, one node: a single-voter lock group): writes
// run under `fs lock PATH -- constellation fs put ...` carry the lock's fencing token
// ($CONSTELLATION_LOCK_TOKEN); a write with an older --lock-token (a holder whose lease
// was granted again) is refused with 409 stale_token naming both tokens and the file
// keeps its content; a bad token value and a consistency change of a tree with files are
// refused.
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
	// two holders one after the other, each writing under its lock
	var tokens []uint64
	for i := range 2 {
		testutil.WaitForEvery(t, 30*time.Second, 200*time.Millisecond, "a put under fs lock", func() (bool, string) {
			r := run(t, "fs", "lock", "/s/counter", "--ttl", "5s", "--data-dir", dir, "--",
				"sh", "-c", `"$0" fs put "$1" /s/counter --json --data-dir "$2" && echo "token=$CONSTELLATION_LOCK_TOKEN"`, binary(t), local, dir)
			m := regexp.MustCompile(`token=(\d+)`).FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil {
				return false, fmt.Sprintf("exit %d %s %s", r.code, r.stdout, r.stderr)
			}
			tok, _ := strconv.ParseUint(m[1], 10, 64)
			tokens = append(tokens, tok)
			return true, ""
		})
		if i == 0 {
			if err := os.WriteFile(local, []byte("7"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, cur := tokens[0], tokens[1]
	if old == 0 || cur <= old {
		t.Fatalf("lock tokens %v; want two increasing tokens", tokens)
	}
	if err := os.WriteFile(local, []byte("5"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "fs", "put", local, "/s/counter", "--lock-token", fmt.Sprint(old), "--data-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("token %d", old)) || !strings.Contains(r.stderr, fmt.Sprintf("token %d", cur)) {
		t.Fatalf("stale put: exit %d, stderr %q; want a refusal naming tokens %d and %d", r.code, r.stderr, old, cur)
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
	if r := run(t, "fs", "rm", "/s/counter", "--lock-token", fmt.Sprint(cur), "--data-dir", dir); r.code != 0 {
		t.Fatalf("fenced rm: %s", r.stderr)
	}
	if r := run(t, "fs", "cat", "/s/counter", "--data-dir", dir); r.code == 0 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("cat after rm: exit %d %q", r.code, r.stderr)
	}
}
