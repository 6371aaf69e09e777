package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

func TestIsolationPID1AndHostInvisible(t *testing.T) {
	e := newTestRuntime(t, nil)
	host := exec.Command("sleep", "30")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { host.Process.Kill(); host.Wait() }()
	script := fmt.Sprintf(`echo pid=$$; echo init=$(cat /proc/1/comm); echo procs=$(ls /proc | grep -cE '^[0-9]+$'); test -e /proc/%d && echo host=visible || echo host=hidden; echo user=$(id -u); echo host=$(hostname); touch /usr/x 2>/dev/null && echo usr=rw || echo usr=ro; echo tmp=$(ls -A /tmp | wc -l)`, host.Process.Pid)
	ex := e.run(t, Spec{Name: "iso", Command: []string{"sh", "-c", script}})
	out := e.logs(t, "iso", Stdout)
	if ex.Reason != ReasonExited || ex.Code != 0 {
		t.Fatalf("exit = %+v; stderr %s", ex, e.logs(t, "iso", Stderr))
	}
	// PID 1 is the instance init; the program is its child.
	for _, want := range []string{"pid=2\n", "init=init\n", "host=hidden\n", "user=65534\n", "host=iso\n", "usr=ro\n", "tmp=0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The init, sh, ls and grep (and a subshell) at most: no host processes.
	for _, line := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(line, "procs="); ok {
			if v, _ := strconv.Atoi(n); v < 2 || v > 6 {
				t.Errorf("instance sees %d processes; want only its own", v)
			}
		}
	}
}

func TestOOMKilled(t *testing.T) {
	e := newTestRuntime(t, nil)
	e.withHelper(t, "oom")
	ex := e.run(t, Spec{Name: "oom", Code: filepath.Join(e.code, "oom"), Command: []string{"./helper", "alloc", "200"}, Limits: Limits{RAMMB: 32}})
	if ex.Reason != ReasonOOMKilled {
		t.Fatalf("exit = %+v; want oom_killed", ex)
	}
}

func TestCPUPercentLimit(t *testing.T) {
	e := newTestRuntime(t, nil)
	spec := Spec{Name: "busy", Command: []string{"sh", "-c", "while :; do :; done"}, Limits: Limits{CPUPercent: 25}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("busy"); err != nil {
		t.Fatal(err)
	}
	e.rt.Stats("busy") // start the interval
	time.Sleep(3 * time.Second)
	st, err := e.rt.Stats("busy")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cpu over 3s: %.1f%%", st.CPUPercent)
	if st.CPUPercent > 30 || st.CPUPercent < 5 {
		t.Fatalf("cpu_percent 25 busy loop used %.1f%% of a core; want 5..30", st.CPUPercent)
	}
	if err := e.rt.Stop(context.Background(), "busy", 0); err != nil {
		t.Fatal(err)
	}
}

func TestForkBombStopsAtPIDs(t *testing.T) {
	e := newTestRuntime(t, nil)
	// Forks until refused and keeps trying: the count plateaus at the limit. (A shell
	// bomb exits at the first refused fork and, now that the init reaps, collapses.)
	code := e.withHelper(t, "bomb")
	spec := Spec{Name: "bomb", Code: code, Command: []string{"./helper", "spawn"}, Limits: Limits{PIDs: 20}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("bomb"); err != nil {
		t.Fatal(err)
	}
	var peak int64
	for i := 0; i < 40; i++ {
		st, _ := e.rt.Stats("bomb")
		peak = max(peak, st.PIDs)
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("peak pids %d", peak)
	if peak > 20 || peak < 10 {
		t.Fatalf("fork bomb peaked at %d pids; want 10..20 (limit 20)", peak)
	}
	if err := e.rt.Stop(context.Background(), "bomb", 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.rt.Stats("bomb"); st.PIDs != 0 {
		t.Fatalf("after stop %d pids remain", st.PIDs)
	}
}

func TestDiskLimitENOSPC(t *testing.T) {
	e := newTestRuntime(t, func(c *Config) { c.DiskQuota = os.Getenv("SANDBOX_TEST_DISK_QUOTA") })
	if m := e.rt.DiskQuotaMode(); m != DiskQuotaXFS && m != DiskQuotaExt4 {
		t.Fatalf("disk quota mode %q gives no ENOSPC; need xfs or ext4 (mkfs.xfs/mkfs.ext4, loop devices)", m)
	}
	ex := e.run(t, Spec{Name: "disk", Command: []string{"sh", "-c", "dd if=/dev/zero of=/app/big bs=1M count=64 2>&1; echo rc=$?"}, Limits: Limits{DiskMB: 16}})
	out := e.logs(t, "disk", Stdout)
	if ex.Code != 0 || !strings.Contains(out, "No space left on device") || strings.Contains(out, "rc=0") {
		t.Fatalf("mode %s: exit %+v, output:\n%s", e.rt.DiskQuotaMode(), ex, out)
	}
	st, _ := e.rt.Stats("disk")
	if st.DiskMB < 8 || st.DiskMB > 17 {
		t.Errorf("disk usage %.1f MiB; want about 16", st.DiskMB)
	}
	// The host is fine: a write of the same size next to the state dir succeeds.
	host := filepath.Join(e.state, "hostfile")
	if err := os.WriteFile(host, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatalf("host write: %v", err)
	}
	os.Remove(host)
}

func TestStopKillsTree(t *testing.T) {
	e := newTestRuntime(t, nil)
	spec := Spec{Name: "tree", Command: []string{"sh", "-c", "sleep 1000 & (sleep 1000 &); sh -c 'sleep 1000' & wait"}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("tree"); err != nil {
		t.Fatal(err)
	}
	plat := e.rt.plat.(*linuxPlatform)
	cg := plat.cg.cgroup("tree")
	testutil.WaitFor(t, 5*time.Second, "4 processes", func() (bool, string) { return len(cg.procs()) >= 4, "" })
	pids := cg.procs()
	if err := e.rt.Stop(context.Background(), "tree", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "empty cgroup", func() (bool, string) { return len(cg.procs()) == 0, "" })
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err == nil {
			if st := procStartTime(p); st != 0 {
				t.Errorf("pid %d still alive after stop", p)
			}
		}
	}
	info, _ := e.rt.Get("tree")
	if info.State != StateExited || info.LastExit == nil || !info.LastExit.Stopped {
		t.Fatalf("info after stop = %+v", info)
	}
}

func TestSetLimitsLowersMemory(t *testing.T) {
	e := newTestRuntime(t, nil)
	e.withHelper(t, "mem")
	spec := Spec{Name: "mem", Code: filepath.Join(e.code, "mem"), Command: []string{"./helper", "alloc-after", "1500", "100"}, Limits: Limits{RAMMB: 256}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("mem"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.SetLimits("mem", Limits{RAMMB: 48}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.rt.Stats("mem"); st.Limits.RAMMB != 48 {
		t.Fatalf("limits after SetLimits = %+v", st.Limits)
	}
	info, _ := e.rt.Get("mem")
	if info.State != StateRunning {
		t.Fatalf("SetLimits restarted or stopped the instance: %+v", info)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := e.rt.Wait(ctx, "mem")
	if err != nil {
		t.Fatalf("Wait: %v (the 100 MiB allocation was not stopped by the lowered limit)", err)
	}
	if ex.Reason != ReasonOOMKilled {
		t.Fatalf("exit = %+v; want oom_killed", ex)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	e := newTestRuntime(t, nil)
	code := e.codeDir(t, "snap", map[string]string{"shipped.txt": "from code\n"})
	spec := Spec{Name: "snap", Code: code, Command: []string{"sh", "-c", "rm shipped.txt; echo v1 > data.txt; mkdir -p d; echo deep > d/f.tmp; mv d/f.tmp d/f; sleep 1000"}, Limits: Limits{DiskMB: 32}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("snap"); err != nil {
		t.Fatal(err)
	}
	in, _ := e.rt.get("snap")
	up := in.st.Res.upper()
	testutil.WaitFor(t, 5*time.Second, "data written", func() (bool, string) { _, err := os.Stat(filepath.Join(up, "d", "f")); return err == nil, "" })
	ctx := context.Background()
	s, err := e.rt.SaveSnapshot(ctx, "snap", "s1") // running: frozen during the copy
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.SaveSnapshot(ctx, "snap", "s1"); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate snapshot: %v", err)
	}
	if err := e.rt.RestoreSnapshot(ctx, "snap", "s1"); !errors.Is(err, ErrRunning) {
		t.Fatalf("restore into running: %v; want ErrRunning", err)
	}
	if err := e.rt.Stop(ctx, "snap", 0); err != nil {
		t.Fatal(err)
	}
	// Change the data, then restore.
	check := "cat data.txt d/f; test -e shipped.txt && echo shipped || echo noshipped"
	if err := os.WriteFile(filepath.Join(up, "data.txt"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RestoreSnapshot(ctx, "snap", "s1"); err != nil {
		t.Fatal(err)
	}
	// Recreate "snap" keeping its data (and snapshots) with a checking command.
	if err := e.rt.Destroy(ctx, "snap", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Create(Spec{Name: "snap", Code: code, Command: []string{"sh", "-c", check}, Limits: Limits{DiskMB: 32}}); err != nil {
		t.Fatal(err)
	}
	e.run(t, Spec{Name: "other", Command: []string{"true"}})
	if _, err := e.rt.Start("snap"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Wait(ctx, "snap"); err != nil {
		t.Fatal(err)
	}
	if out := e.logs(t, "snap", Stdout); !strings.HasSuffix(out, "v1\ndeep\nnoshipped\n") {
		t.Fatalf("after restore: %q (stderr %q)", out, e.logs(t, "snap", Stderr))
	}
	list, _ := e.rt.ListSnapshots("snap")
	if len(list) != 1 || list[0].Name != "s1" || list[0].Instance != "snap" || s.Bytes == 0 || list[0].Bytes != s.Bytes {
		t.Fatalf("snapshots = %+v (saved %+v)", list, s)
	}
	// Another instance has no access to it: restore takes the owner's snapshots only.
	if err := e.rt.RestoreSnapshot(ctx, "other", "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of another instance's snapshot: %v; want ErrNotFound", err)
	}
	if err := e.rt.DeleteSnapshot("snap", "s1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.rt.ListSnapshots("snap"); len(list) != 0 {
		t.Fatalf("after delete: %+v", list)
	}
	if err := e.rt.DeleteSnapshot("snap", "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v; want ErrNotFound", err)
	}
}

func TestReadoption(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	onEvent := func(ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
	e := newTestRuntime(t, func(c *Config) { c.OnEvent = onEvent })
	for _, s := range []Spec{
		{Name: "long", Command: []string{"sleep", "1000"}, Limits: Limits{RAMMB: 64}},
		{Name: "short", Command: []string{"sleep", "0.5"}},
	} {
		if _, err := e.rt.Create(s); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.Start(s.Name); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := e.rt.Get("long")
	e.rt.Close()
	if err := syscall.Kill(before.PID, 0); err != nil {
		t.Fatalf("closing the runtime killed the instance: %v", err)
	}
	time.Sleep(800 * time.Millisecond) // "short" ends while unsupervised
	rt2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt2
	after, err := rt2.Get("long")
	if err != nil {
		t.Fatal(err)
	}
	if after.State != StateRunning || after.PID != before.PID {
		t.Fatalf("re-adopted = %+v; want running pid %d", after, before.PID)
	}
	// "short" ended while unsupervised. Re-created in the same process, the runtime is
	// still its parent and reads the real status; after a supervisor restart it would
	// be reported with reason unknown.
	ctxS, cancelS := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelS()
	if ex, err := rt2.Wait(ctxS, "short"); err != nil || ex.Reason != ReasonExited || ex.Code != 0 {
		t.Fatalf("short: Wait = %+v, %v; want exited 0", ex, err)
	}
	// The new runtime supervises: it sees the exit and can stop it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt2.Stop(ctx, "long", 0); err != nil {
		t.Fatal(err)
	}
	ex, err := rt2.Wait(ctx, "long")
	if err != nil || !ex.Stopped {
		t.Fatalf("Wait after stop = %+v, %v", ex, err)
	}
	mu.Lock()
	defer mu.Unlock()
	adopted := false
	for _, ev := range events {
		if ev.Type == EventAdopted && ev.Instance == "long" && ev.PID == before.PID {
			adopted = true
		}
	}
	if !adopted {
		t.Fatalf("no adopted event in %+v", events)
	}
}

func TestRestartPolicyOnFailure(t *testing.T) {
	var mu sync.Mutex
	var types []string
	e := newTestRuntime(t, func(c *Config) {
		c.OnEvent = func(ev Event) {
			mu.Lock()
			types = append(types, string(ev.Type))
			mu.Unlock()
		}
	})
	ex := e.run(t, Spec{Name: "flaky", Command: []string{"sh", "-c", "echo run; exit 3"},
		Restart: RestartPolicy{Policy: RestartOnFailure, MaxAttempts: 2, BackoffMS: 10}})
	if ex.Reason != ReasonExited || ex.Code != 3 {
		t.Fatalf("exit = %+v", ex)
	}
	info, _ := e.rt.Get("flaky")
	if info.Restarts != 2 {
		t.Fatalf("restarts = %d; want 2", info.Restarts)
	}
	if out := e.logs(t, "flaky", Stdout); strings.Count(out, "run\n") != 3 {
		t.Fatalf("ran %d times; want 3", strings.Count(out, "run\n"))
	}
	e.rt.Close()
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(types, ",")
	want := "created,started,exited,restarting,started,exited,restarting,started,exited"
	if got != want {
		t.Fatalf("events = %s\nwant %s", got, want)
	}
}

func TestLogsFollowAndRotate(t *testing.T) {
	e := newTestRuntime(t, func(c *Config) {
		c.LogMaxBytes = 2000
		c.HousekeepInterval = 50 * time.Millisecond
		c.FollowInterval = 10 * time.Millisecond
	})
	spec := Spec{Name: "logger", Command: []string{"sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); sleep 0.002; done"}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := e.rt.Logs(ctx, "logger", LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := e.rt.Start("logger"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 100)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// Rotation as the runtime writes: every line, in order.
	for i, l := range lines {
		if want := "line-" + strconv.Itoa(i); l != want || len(lines) != 300 {
			t.Fatalf("followed %d lines; line %d is %q, want %q", len(lines), i, l, want)
		}
	}
	in, _ := e.rt.get("logger")
	if _, err := os.Stat(logPath(in.st.Res.Dir, Stdout) + ".1"); err != nil {
		t.Fatalf("no rotated file: %v", err)
	}
}

func TestCPUCoresPinning(t *testing.T) {
	e := newTestRuntime(t, nil)
	ex := e.run(t, Spec{Name: "pin", Command: []string{"sh", "-c", "grep Cpus_allowed_list /proc/self/status"}, Limits: Limits{CPUCores: 1}})
	out := e.logs(t, "pin", Stdout)
	info, _ := e.rt.Get("pin")
	if ex.Code != 0 || info.Cpuset == "" || !strings.HasSuffix(strings.TrimSpace(out), "\t"+info.Cpuset) {
		t.Fatalf("cpuset %q, output %q", info.Cpuset, out)
	}
}

func TestIsolatedNetwork(t *testing.T) {
	e := newTestRuntime(t, nil)
	e.run(t, Spec{Name: "net", Network: NetworkIsolated, Command: []string{"sh", "-c", "ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"}})
	out := strings.Fields(e.logs(t, "net", Stdout))
	if len(out) != 1 || out[0] != "lo" {
		t.Fatalf("interfaces in an isolated instance: %q; want [lo]", out)
	}
}

// TestReadoptionAcrossProcesses: a supervisor process starts an instance and exits; a
// new runtime in another process re-adopts it, supervises it and reports its end.
func TestReadoptionAcrossProcesses(t *testing.T) {
	e := newTestRuntime(t, nil)
	e.rt.Close() // the other process owns the state dir first
	b, err := json.Marshal(Config{StateDir: e.cfg.StateDir, CodeRoots: e.cfg.CodeRoots, CgroupParent: e.cfg.CgroupParent, DataImageMB: e.cfg.DataImageMB,
		Bridge: e.cfg.Bridge, BridgeSubnet: e.cfg.BridgeSubnet})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SANDBOX_TEST_SUPERVISOR="+string(b))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("supervisor process: %v: %s", err, out)
	}
	rt2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt2
	info, err := rt2.Get("outlive")
	if err != nil || info.State != StateRunning || syscall.Kill(info.PID, 0) != nil {
		t.Fatalf("outlive = %+v, %v; want running (the supervisor's exit must not kill it)", info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Not our child, but the init's status pipe, taken back from it, tells.
	ex, err := rt2.Wait(ctx, "outlive")
	if err != nil || ex.Reason != ReasonExited || ex.Code != 0 {
		t.Fatalf("Wait = %+v, %v; want exited 0 (reported by the init)", ex, err)
	}
}

// TestDiskPollFallback: without a quota filesystem the runtime measures the data layer
// and kills an instance past disk_mb with reason disk_exceeded.
func TestDiskPollFallback(t *testing.T) {
	e := newTestRuntime(t, func(c *Config) { c.DiskQuota = DiskQuotaPoll; c.HousekeepInterval = 50 * time.Millisecond })
	if m := e.rt.DiskQuotaMode(); m != DiskQuotaPoll {
		t.Fatalf("mode %q", m)
	}
	ex := e.run(t, Spec{Name: "grow", Command: []string{"sh", "-c", "dd if=/dev/zero of=/app/big bs=1M count=32 2>/dev/null; sleep 30"}, Limits: Limits{DiskMB: 8}})
	if ex.Reason != ReasonDiskExceeded {
		t.Fatalf("exit = %+v; want disk_exceeded", ex)
	}
}

// TestInitFallbackLauncher: the re-executed Go init (the launcher of 32-bit
// architectures) runs host_root instances with the same mounts, capabilities and
// seccomp filter, and refuses instances that need a user namespace.
func TestInitFallbackLauncher(t *testing.T) {
	e := newTestRuntime(t, func(c *Config) {
		c.SystemDirs = append(DefaultConfig("/").SystemDirs, "/var/lib")
		c.AllowHostRoot = true
	})
	e.rt.plat.(*linuxPlatform).raw = false
	_, err := e.rt.Create(Spec{Name: "userns", Command: []string{"true"}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "host_root" || !errors.Is(err, ErrUnenforceable) {
		t.Fatalf("user-namespace instance on the Go init: %v; want ErrUnenforceable naming host_root", err)
	}
	uid := 65534
	ex := e.run(t, Spec{Name: "fallback", HostRoot: true, UID: &uid, GID: &uid, Command: []string{"sh", "-c", "echo ppid=$PPID user=$(id -u); test -d /var/lib && echo varlib; grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; test -e /etc/shadow || echo noshadow; exit 4"}, Limits: Limits{RAMMB: 64, PIDs: 16}})
	out := e.logs(t, "fallback", Stdout)
	// The Go init is PID 1 and reports the program's status.
	want := "ppid=1 user=65534\nvarlib\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nnoshadow\n"
	if ex.Reason != ReasonExited || ex.Code != 4 || out != want {
		t.Fatalf("exit %+v output %q (want %q) stderr %q", ex, out, want, e.logs(t, "fallback", Stderr))
	}
}
