package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// TestAlertE2E: three nodes (the built binary); a rule fires once on a webhook, its owner is
// killed, the next owner takes over without a duplicate and sends the resolution once.
func TestAlertE2E(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	names := []string{"alpha", "beta", "gamma"}
	dirs := map[string]string{}
	procs := map[string]*peerProc{}
	first := 0
	for i, n := range names {
		dirs[n] = t.TempDir()
		port := testutil.FreePort(t, nil)
		args := []string{"--node", n, "--cluster", "al", "--bind", fmt.Sprintf("127.0.0.1:%d", port), "--metrics-interval", "1s"}
		if i > 0 {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", first))
		} else {
			first = port
		}
		procs[n] = startPeer(t, dirs[n], args...)
	}
	waitJSON(t, 30*time.Second, "3 alive nodes", func(r result) bool {
		var ns []map[string]any
		if json.Unmarshal([]byte(r.stdout), &ns) != nil || len(ns) != 3 {
			return false
		}
		for _, x := range ns {
			if x["status"] != "alive" {
				return false
			}
		}
		return true
	}, "--data-dir", dirs["alpha"], "nodes", "--json")
	if r := run(t, "--data-dir", dirs["alpha"], "monitor", "channel", "add", "ops", "--type", "webhook", "--url", hook.URL); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := run(t, "--data-dir", dirs["alpha"], "monitor", "alert", "add", "Load", "--expr", "max(e2e_load) > 50", "--for", "2s",
		"--interval", "1s", "--channel", "ops", "--message", "load {{value}}", "--json")
	var info struct{ Owner string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &info) != nil || info.Owner == "" {
		t.Fatalf("alert add: %d %s %s", r.code, r.stdout, r.stderr)
	}
	pusher := "alpha"
	for _, n := range names {
		if n != info.Owner {
			pusher = n
			break
		}
	}
	t.Logf("owner %s, metric pushed on %s", info.Owner, pusher)
	t0 := time.Now()
	if r := run(t, "--data-dir", dirs[pusher], "monitor", "push", "e2e_load", "90"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	testutil.WaitForEvery(t, 30*time.Second, 50*time.Millisecond, "the firing notification", func() (bool, string) { return count() == 1, "" })
	t.Logf("firing notified %.1fs after the push (for 2s, interval 1s, samples every 1s)", time.Since(t0).Seconds())
	_ = procs[info.Owner].cmd.Process.Kill()
	t1 := time.Now()
	var newOwner string
	waitJSON(t, 30*time.Second, "a new owner", func(r result) bool {
		var rs []struct {
			Owner  string
			Firing int
		}
		if json.Unmarshal([]byte(r.stdout), &rs) != nil || len(rs) != 1 || rs[0].Owner == info.Owner {
			return false
		}
		newOwner = rs[0].Owner
		return true
	}, "--data-dir", dirs[pusher], "monitor", "alert", "list", "--json")
	t.Logf("new owner %s %.1fs after the kill", newOwner, time.Since(t1).Seconds())
	time.Sleep(5 * time.Second)
	if n := count(); n != 1 {
		t.Fatalf("%d notifications after the handover, want 1: %v", n, got)
	}
	r = run(t, "--data-dir", dirs[pusher], "monitor", "alerts", "--json")
	t.Logf("alerts after the handover: %s", r.stdout)
	if r := run(t, "--data-dir", dirs[pusher], "monitor", "push", "e2e_load", "10"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	testutil.WaitForEvery(t, 30*time.Second, 50*time.Millisecond, "the resolution", func() (bool, string) { return count() == 2, "" })
	time.Sleep(3 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0]["status"] != "firing" || got[1]["status"] != "resolved" || got[0]["message"] != "load 90" {
		t.Fatalf("notifications %v", got)
	}
}
