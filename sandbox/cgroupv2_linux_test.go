package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rads-lang/constellation/internal/testutil"
)

// TestCgroupV2 runs against a cgroup2 hierarchy: /sys/fs/cgroup on pure-v2 machines, or
// the (controller-less) unified hierarchy of a hybrid machine. It checks that the
// program starts inside its cgroup (CLONE_INTO_CGROUP), that limits needing a missing
// controller are a clear error, that freeze works and that stop kills the cgroup.
func TestCgroupV2(t *testing.T) {
	requireRoot(t)
	root := ""
	for _, cand := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(cand, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			root = cand
			break
		}
	}
	if root == "" {
		t.Skip("no cgroup2 hierarchy mounted")
	}
	parent := "/" + randName("constellation-v2test-")
	e := newTestRuntime(t, func(c *Config) { c.CgroupRoot = root; c.CgroupParent = parent })
	plat := e.rt.plat.(*linuxPlatform)
	if !plat.cg.v2 {
		t.Fatal("runtime did not pick cgroup v2")
	}
	if !plat.cg.has("memory") {
		_, err := e.rt.Create(Spec{Name: "lim", Command: []string{"true"}, Limits: Limits{RAMMB: 64}})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "ram_mb" || !errors.Is(err, ErrUnenforceable) {
			t.Fatalf("ram_mb without a memory controller: %v; want ErrUnenforceable naming ram_mb", err)
		}
	}
	spec := Spec{Name: "v2", Command: []string{"sh", "-c", "cat /proc/self/cgroup; sleep 1000"}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("v2"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "output", func() (bool, string) { return strings.Contains(e.logs(t, "v2", Stdout), "0::"), "" })
	// Inside, a cgroup namespace rooted at the instance's cgroup; from the host, the
	// instance's cgroup.
	if out := e.logs(t, "v2", Stdout); !strings.Contains(out, "0::/\n") {
		t.Fatalf("/proc/self/cgroup = %q; want 0::/ (cgroup namespace)", out)
	}
	info, _ := e.rt.Get("v2")
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", info.PID)); !strings.Contains(string(b), "0::"+parent+"/v2\n") {
		t.Fatalf("host view of the instance's cgroup = %q; want 0::%s/v2", b, parent)
	}
	ctx := context.Background()
	if _, err := e.rt.SaveSnapshot(ctx, "v2", "frozen-copy"); err != nil { // freezes
		t.Fatalf("snapshot (freeze) on v2: %v", err)
	}
	if err := e.rt.Stop(ctx, "v2", 0); err != nil {
		t.Fatal(err)
	}
	cg := plat.cg.cgroup("v2")
	testutil.WaitFor(t, 5*time.Second, "empty cgroup", func() (bool, string) { return len(cg.procs()) == 0, "" })
	if err := e.rt.Destroy(ctx, "v2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg.path("")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cgroup dir after destroy: %v", err)
	}
}
