package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
)

// Through the binary, two node processes: an instance's output on b (stdout and
// stderr) and a structured entry submitted on b are found by `logs search` on a within
// seconds; `logs NAME` still prints the output; a query with an unbalanced quote fails
// naming the position.
func TestLogsSearchEndToEnd(t *testing.T) {
	instRequireRoot(t)
	if testing.Short() {
		t.Skip("builds the binary and runs two node processes")
	}
	bin := constellationBinary(t)
	base := t.TempDir()
	dirA, dirB := filepath.Join(base, "a"), filepath.Join(base, "b")
	for _, d := range []string{dirA, dirB} {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := instances.Teardown(ctx, d); err != nil {
				t.Errorf("teardown %s: %v", d, err)
			}
		})
	}
	a := startProcNode(t, bin, "a", dirA)
	t.Cleanup(a.stop)
	var st api.StatusInfo
	a.cliJSON(&st, "status")
	var join string
	for _, ad := range st.Addresses {
		if strings.Contains(ad, "/tcp/") {
			join = ad
		}
	}
	b := startProcNode(t, bin, "b", dirB, "--join", join)
	t.Cleanup(b.stop)
	testutil.WaitForEvery(t, 20*time.Second, 100*time.Millisecond, "a sees 2 alive nodes", func() (bool, string) {
		var ns []api.NodeInfo
		a.cliJSON(&ns, "nodes")
		alive := 0
		for _, x := range ns {
			if x.Status == api.StatusAlive {
				alive++
			}
		}
		return alive == 2, fmt.Sprintf("%+v", ns)
	})

	if _, err := b.cli("create", "--name", "logger", "--ram-mb", "32", "--", "sh", "-c",
		"echo captured-marker-991 for user 42; echo oops-marker >&2; exec sleep 1000"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli("monitor", "log", "info", "User logged in", "user_id=123", "plan=gold"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var res api.LogSearchResult
	testutil.WaitForEvery(t, 10*time.Second, 100*time.Millisecond, "a finds b's instance output", func() (bool, string) {
		res = api.LogSearchResult{}
		a.cliJSON(&res, "logs", "search", "captured-marker-991 AND instance=logger", "--since", "1h")
		return len(res.Entries) == 1, fmt.Sprintf("%+v", res)
	})
	t.Logf("a found b's output line %v after the create returned", time.Since(t0))
	if e := res.Entries[0]; e.Node != "b" || e.Stream != "stdout" || e.Message != "captured-marker-991 for user 42" {
		t.Fatalf("entry %+v", e)
	}
	out, err := a.cli("logs", "search", "stream=stderr AND level=error AND instance=logger")
	if err != nil || !strings.Contains(out, "b/logger error oops-marker") {
		t.Fatalf("stderr line: %v\n%s", err, out)
	}
	res = api.LogSearchResult{}
	a.cliJSON(&res, "logs", "search", `user_id=123 AND "logged in"`)
	if len(res.Entries) != 1 || res.Entries[0].Fields["plan"] != "gold" || res.Entries[0].Level != "info" {
		t.Fatalf("structured entry: %+v", res)
	}
	// The node's own log ("node started") of both nodes.
	res = api.LogSearchResult{}
	a.cliJSON(&res, "logs", "search", `stream=node AND "node started"`)
	if len(res.Entries) != 2 || strings.Join(res.Nodes, ",") != "a,b" {
		t.Fatalf("node logs: %+v", res)
	}
	// Today's `logs NAME` is unchanged.
	if out, err := a.cli("logs", "logger"); err != nil || !strings.Contains(out, "captured-marker-991") || !strings.Contains(out, "oops-marker") {
		t.Fatalf("logs logger: %v\n%s", err, out)
	}
	// An unbalanced quote names the position.
	if _, err := a.cli("logs", "search", `error AND "card declined`); err == nil || !strings.Contains(err.Error(), "unbalanced quote") ||
		!strings.Contains(err.Error(), "position 11") {
		t.Fatalf("bad query: %v", err)
	}
	if _, err := a.cli("rm", "--grace", "0s", "logger"); err != nil {
		t.Fatal(err)
	}
}
