package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestLocksEndToEnd: three peers form the lock group; `fs lock` runs a command with the
// fencing token; the holder's node is killed with SIGKILL and another node gets the lock
// after TTL + lock-delay with a larger token.
func TestLocksEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	names := []string{"alpha", "beta", "gamma"}
	dirs := map[string]string{}
	peers := map[string]*peerProc{}
	portA := testutil.FreePort(t, nil)
	for i, name := range names {
		dirs[name] = t.TempDir()
		port := portA
		if i > 0 {
			port = testutil.FreePort(t, nil)
		}
		args := []string{"--node", name, "--cluster", "locks", "--bind", fmt.Sprintf("127.0.0.1:%d", port),
			"--liveness", "local", "--lock-delay", "1s", "--lock-stable-after", "1s"}
		if i > 0 {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", portA))
		}
		peers[name] = startPeer(t, dirs[name], args...)
	}
	var st api.LockStatus
	waitJSON(t, 60*time.Second, "a leader with 3 voters", func(r result) bool {
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st.Leader != "" && len(st.Voters) == 3
	}, "fs", "lock-status", "--json", "--data-dir", dirs["alpha"])

	// A command runs with the token and path; the lock is released at its exit.
	r := run(t, "fs", "lock", "/cluster/job", "--ttl", "3s", "--data-dir", dirs["beta"], "--",
		"sh", "-c", `echo "token=$CONSTELLATION_LOCK_TOKEN path=$CONSTELLATION_LOCK_PATH"; exit 3`)
	m := regexp.MustCompile(`token=(\d+) path=/cluster/job`).FindStringSubmatch(r.stdout)
	if r.code != 3 || m == nil {
		t.Fatalf("fs lock: exit %d (want the command's 3), stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	first, _ := strconv.ParseUint(m[1], 10, 64)
	if r := run(t, "fs", "locks", "--json", "--data-dir", dirs["gamma"]); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("after the command's exit the lock is still held: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// Bad input: a relative path, no command, a TTL too short.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relative/x", "--", "true"}, "not absolute"},
		{[]string{"/x", "true"}, "give the lock path then --"},
		{[]string{"/x", "--ttl", "10ms", "--", "true"}, "--ttl"},
	} {
		r := run(t, append([]string{"fs", "lock", "--data-dir", dirs["alpha"]}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("%v: exit %d, stderr %q, want it to say %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// gamma's client holds /cluster/crit, then gamma is killed with SIGKILL.
	holder := exec.Command(binary(t), "fs", "lock", "/cluster/crit", "--ttl", "3s", "--holder", "gamma-job",
		"--data-dir", dirs["gamma"], "--", "sleep", "60")
	holder.Env = testutil.CleanEnv()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	holderDone := make(chan struct{})
	go func() { holder.Wait(); close(holderDone) }()
	t.Cleanup(func() { holder.Process.Kill(); <-holderDone })
	var held []api.Lock
	waitJSON(t, 20*time.Second, "gamma-job holds /cluster/crit", func(r result) bool {
		return json.Unmarshal([]byte(r.stdout), &held) == nil && len(held) == 1 && held[0].Holder == "gamma-job"
	}, "fs", "locks", "--json", "--data-dir", dirs["alpha"])
	if held[0].Token <= first {
		t.Fatalf("token %d not above the earlier grant's %d", held[0].Token, first)
	}
	peers["gamma"].cmd.Process.Signal(syscall.SIGKILL)
	<-peers["gamma"].done
	holder.Process.Signal(syscall.SIGKILL) // the holder process dies with its node

	start := time.Now()
	r = run(t, "fs", "lock", "/cluster/crit", "--ttl", "3s", "--wait", "40s", "--data-dir", dirs["alpha"], "--",
		"sh", "-c", `echo "token=$CONSTELLATION_LOCK_TOKEN"`)
	m = regexp.MustCompile(`token=(\d+)`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("alpha's lock after gamma died: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	tok, _ := strconv.ParseUint(m[1], 10, 64)
	if tok <= held[0].Token {
		t.Fatalf("alpha got token %d, not above the dead holder's %d", tok, held[0].Token)
	}
	t.Logf("re-granted %s after the holder's node was killed (TTL 3s + lock-delay 1s), token %d -> %d",
		time.Since(start).Round(10*time.Millisecond), held[0].Token, tok)
}
