package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// escapeProbes are the attempts of `helper escape` (testdata/helper/escape_linux.go);
// each must report "blocked".
var escapeProbes = []string{
	"remount-ro-bind-rw", "write-system-dir", "write-etc", "mknod-block", "mknod-char",
	"mount-tmpfs", "mount-cgroup", "umount-mask", "open-by-handle", "ptrace-supervisor",
	"ptrace-other-instance", "pidfd-supervisor", "environ-other-instance", "cgroup-write",
	"cgroup-escape-procs", "unshare-user", "unshare-mount", "clone3", "io-uring", "add-key",
	"keyctl", "perf-event-open", "bpf", "core-pattern", "sysrq-trigger", "lo-address",
	"sethostname", "kcore", "proc-keys", "host-token", "host-socket", "host-shadow", "chroot",
	"setns-host", "ptrace-init", "init-fds",
}

// seccompOnlyProbes are refused by the seccomp filter alone: without it the kernel
// allows them to an unprivileged process (nested user namespaces, io_uring, keyrings,
// self-profiling, unprivileged BPF maps).
var seccompOnlyProbes = []string{"unshare-user", "clone3", "io-uring", "add-key", "keyctl", "perf-event-open", "bpf"}

// TestHostileInstance runs the escape probes inside instances as root and as an
// unprivileged user of their user namespace, with the default seccomp filter, and as
// root without any filter (what namespaces and capabilities alone must hold). It fails
// on any probe that gets through and on any probe that did not run.
func TestHostileInstance(t *testing.T) {
	e := newTestRuntime(t, nil)
	code := e.withHelper(t, "hostile")
	// Node secrets that are not bound into instances.
	secrets := t.TempDir()
	token := filepath.Join(secrets, "api.token")
	if err := os.WriteFile(token, []byte("node-admin-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	sockPath := filepath.Join(secrets, "api.sock")
	ln, err := net.Listen("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sockPath, 0o666)
	// A victim instance whose environment holds a secret.
	victim := Spec{Name: "victim", Command: []string{"sleep", "1000"}, Env: map[string]string{"SECRET": "victim-secret"}}
	if _, err := e.rt.Create(victim); err != nil {
		t.Fatal(err)
	}
	vi, err := e.rt.Start("victim")
	if err != nil {
		t.Fatal(err)
	}
	plat := e.rt.plat.(*linuxPlatform)
	cgFile := filepath.Join(plat.cg.cgroup("victim").dirs()[0], "cgroup.procs")
	hostUIDs := map[int]string{vi.HostUID: "victim"}
	for _, c := range []struct {
		name    string
		uid     int
		seccomp string
		skip    []string
	}{
		{"root", 0, "", nil},
		{"user", 1000, "", nil},
		{"root-unconfined", 0, SeccompUnconfined, seccompOnlyProbes},
	} {
		t.Run(c.name, func(t *testing.T) {
			uid := c.uid
			name := "attacker-" + c.name
			args := []string{"./helper", "escape", "super=" + strconv.Itoa(os.Getpid()), "other=" + strconv.Itoa(vi.PID),
				"cgroup=" + cgFile, "token=" + token, "sock=" + sockPath, "skip=" + strings.Join(c.skip, ",")}
			spec := Spec{Name: name, Code: code, Command: args, UID: &uid, GID: &uid, Seccomp: c.seccomp}
			if _, err := e.rt.Create(spec); err != nil {
				t.Fatal(err)
			}
			info, err := e.rt.Start(name)
			if err != nil {
				t.Fatal(err)
			}
			// The host uid of the instance's processes: its own range, never nobody.
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.PID))
			wantUID := info.HostUID + uid
			if !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", wantUID, wantUID, wantUID, wantUID)) && len(status) > 0 {
				t.Errorf("host view of the instance's uid: want %d in\n%s", wantUID, status)
			}
			if info.HostUID < userNSSize || wantUID == 65534 {
				t.Errorf("instance host uid base %d: want an unprivileged range above 65535", info.HostUID)
			}
			if other, dup := hostUIDs[info.HostUID]; dup {
				t.Errorf("instance %s shares host uid range %d with %s", name, info.HostUID, other)
			}
			hostUIDs[info.HostUID] = name
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := e.rt.Wait(ctx, name); err != nil {
				t.Fatal(err)
			}
			out := e.logs(t, name, Stdout)
			if !strings.Contains(out, "probes done\n") {
				t.Fatalf("probes did not finish:\n%s\nstderr:\n%s", out, e.logs(t, name, Stderr))
			}
			skip := map[string]bool{}
			for _, s := range c.skip {
				skip[s] = true
			}
			for _, p := range escapeProbes {
				if skip[p] {
					continue
				}
				if !strings.Contains(out, "probe "+p+" blocked: ") {
					t.Errorf("probe %s was not blocked (or did not run)", p)
				}
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, " ESCAPED: ") {
					t.Errorf("%s", line)
				}
			}
			wantCaps := fmt.Sprintf("%016x", uint64(rootCaps))
			if uid != 0 {
				wantCaps = "0000000000000000"
			}
			seccompMode := "2"
			if c.seccomp == SeccompUnconfined {
				seccompMode = "0"
			}
			// The instance init (PID 1, info.PID) runs inside the same boundary.
			for _, want := range []string{"\nCapEff:\t" + wantCaps, "\nCapBnd:\t" + wantCaps, "\nNoNewPrivs:\t1", "\nSeccomp:\t" + seccompMode} {
				if !strings.Contains(string(status), want+"\n") {
					t.Errorf("instance init lacks %q:\n%s", want[1:], status)
				}
			}
			for _, want := range []string{
				fmt.Sprintf("status Uid: %d %d %d %d", uid, uid, uid, uid),
				"status CapInh: 0000000000000000", "status CapPrm: " + wantCaps, "status CapEff: " + wantCaps,
				"status CapBnd: " + wantCaps, "status CapAmb: 0000000000000000", "status NoNewPrivs: 1",
				"status Seccomp: " + seccompMode,
			} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("instance status lacks %q:\n%s", want, out)
				}
			}
			// What it wrote belongs to its host uid.
			in, _ := e.rt.get(name)
			fi, err := os.Stat(filepath.Join(in.st.Res.upper(), "written"))
			if err != nil {
				t.Fatalf("file written in /app: %v", err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != wantUID || int(st.Gid) != wantUID {
				t.Errorf("/app/written is owned by %d:%d on the host; want %d", st.Uid, st.Gid, wantUID)
			}
		})
	}
	// Neither the host's nobody nor the victim's own host uid (outside its user
	// namespace) can read the victim's environment (the program's: the init is not
	// dumpable).
	environ := fmt.Sprintf("/proc/%d/environ", programPID(t, vi.PID))
	for _, uid := range []int{65534, vi.HostUID + 65534} {
		if out, err := readAs(environ, uid); err == nil || strings.Contains(out, "victim-secret") {
			t.Errorf("host uid %d read the victim's environment: %q, %v", uid, out, err)
		}
	}
	// A host_root instance running as 65534 is readable by the host's nobody (what every
	// instance was before user namespaces): the check above can fail.
	e2 := newTestRuntime(t, func(c *Config) { c.AllowHostRoot = true })
	nobody := 65534
	spec := victim
	spec.HostRoot, spec.UID, spec.GID = true, &nobody, &nobody
	if _, err := e2.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	hr, err := e2.rt.Start("victim")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := readAs(fmt.Sprintf("/proc/%d/environ", programPID(t, hr.PID)), 65534); err != nil || !strings.Contains(out, "victim-secret") {
		t.Errorf("host nobody could not read a host_root nobody instance's environment (%q, %v): the check proves nothing", out, err)
	}
}

// programPID is the host pid of the program: the only child of the instance init.
func programPID(t *testing.T, initPID int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", initPID, initPID))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("children of the instance init %d: %q", initPID, b)
	}
	return pid
}

// readAs reads path as host uid (and gid) uid.
func readAs(path string, uid int) (string, error) {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHostRootNeedsSetting: an instance without a user namespace is refused unless the
// node allows host root, with an error naming the setting; allowed, it runs as host
// uid 0 with the reduced capability set.
func TestHostRootNeedsSetting(t *testing.T) {
	e := newTestRuntime(t, nil)
	_, err := e.rt.Create(Spec{Name: "root", HostRoot: true, Command: []string{"true"}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "host_root" || !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), "--allow-host-root") {
		t.Fatalf("host_root without the setting: %v; want ErrNotPermitted naming --allow-host-root", err)
	}
	if _, err := e.rt.Get("root"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused instance exists: %v", err)
	}
	big := 70000
	if _, err := e.rt.Create(Spec{Name: "bigid", UID: &big, Command: []string{"true"}}); !errors.As(err, &fe) || fe.Field != "uid" {
		t.Fatalf("uid 70000 in a user namespace: %v; want a uid FieldError", err)
	}
	e2 := newTestRuntime(t, func(c *Config) { c.AllowHostRoot = true })
	root := 0
	ex := e2.run(t, Spec{Name: "root", HostRoot: true, UID: &root, Command: []string{"sh", "-c", "grep -E '^(Uid|CapEff|CapBnd):' /proc/self/status"}})
	out := e2.logs(t, "root", Stdout)
	caps := fmt.Sprintf("%016x", uint64(rootCaps))
	if ex.Code != 0 || out != "Uid:\t0\t0\t0\t0\nCapEff:\t"+caps+"\nCapBnd:\t"+caps+"\n" {
		t.Fatalf("host-root instance: %+v %q", ex, out)
	}
	if info, _ := e2.rt.Get("root"); info.HostUID != 0 {
		t.Fatalf("host-root instance has host uid range %d", info.HostUID)
	}
}

// TestUIDRanges: ranges are the lowest free slots, distinct, reused after destroy and
// kept across a runtime restart; data kept across a recreate keeps its owners inside.
func TestUIDRanges(t *testing.T) {
	e := newTestRuntime(t, nil)
	base := e.rt.cfg.UIDBase
	for i, n := range []string{"a", "b", "c"} {
		info, err := e.rt.Create(Spec{Name: n, Command: []string{"sh", "-c", "touch /app/f; stat -c %u /app/f"}})
		if err != nil {
			t.Fatal(err)
		}
		if info.HostUID != base+i*userNSSize {
			t.Fatalf("%s: host uid %d; want %d", n, info.HostUID, base+i*userNSSize)
		}
	}
	ctx := context.Background()
	if err := e.rt.Destroy(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	info, err := e.rt.Create(Spec{Name: "d", Command: []string{"true"}})
	if err != nil || info.HostUID != base+userNSSize {
		t.Fatalf("after destroying b: d got %d, %v; want the freed %d", info.HostUID, err, base+userNSSize)
	}
	e.rt.Close()
	rt2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt2
	for n, want := range map[string]int{"a": base, "c": base + 2*userNSSize, "d": base + userNSSize} {
		if info, _ := rt2.Get(n); info.HostUID != want {
			t.Fatalf("%s after restart: host uid %d; want %d", n, info.HostUID, want)
		}
	}
	// Kept data moves to the new range of a recreated instance: the file written as
	// uid 65534 is still 65534 inside.
	if _, err := rt2.Start("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := rt2.Wait(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := rt2.Destroy(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := rt2.Create(Spec{Name: "e", Command: []string{"true"}}); err != nil { // takes a's range
		t.Fatal(err)
	}
	info, err = rt2.Create(Spec{Name: "a", Command: []string{"stat", "-c", "%u", "/app/f"}})
	if err != nil || info.HostUID == base {
		t.Fatalf("recreated a: %+v %v; want another range", info, err)
	}
	if _, err := rt2.Start("a"); err != nil {
		t.Fatal(err)
	}
	if ex, err := rt2.Wait(ctx, "a"); err != nil || ex.Code != 0 {
		t.Fatalf("recreated a: %+v %v: %s", ex, err, e.logs(t, "a", Stderr))
	}
	if out := e.logs(t, "a", Stdout); out != "65534\n" {
		t.Fatalf("owner of kept data inside the recreated instance: %q; want 65534", out)
	}
}

// TestRunFiles: the node's files in the run directory appear read-only at
// /run/constellation: a token with mode 0400 readable by the instance's root only, and a
// Unix socket that the instance can connect to.
func TestRunFiles(t *testing.T) {
	e := newTestRuntime(t, nil)
	code := e.withHelper(t, "runfiles")
	for _, c := range []struct {
		name string
		uid  int
	}{{"rootrun", 0}, {"userrun", 1000}} {
		uid := c.uid
		if _, err := e.rt.Create(Spec{Name: c.name, Code: code, UID: &uid, Command: []string{"sh", "-c", "./helper read /run/constellation/token; echo; ./helper dial /run/constellation/api.sock; echo; touch /run/constellation/x 2>/dev/null && echo writable"}}); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.WriteRunFile(c.name, "token", []byte("instance-token"), 0o400); err != nil {
			t.Fatal(err)
		}
		dir, err := e.rt.RunDir(c.name)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", filepath.Join(dir, "api.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		info, _ := e.rt.Get(c.name)
		os.Chown(filepath.Join(dir, "api.sock"), info.HostUID+uid, info.HostUID+uid)
		go func() {
			if conn, err := ln.Accept(); err == nil {
				conn.Write([]byte("hello-from-node"))
				conn.Close()
			}
		}()
		if _, err := e.rt.Start(c.name); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := e.rt.Wait(ctx, c.name); err != nil {
			t.Fatal(err)
		}
		out := e.logs(t, c.name, Stdout)
		want := "instance-token\nhello-from-node\n"
		if uid != 0 {
			want = "\nhello-from-node\n" // the 0400 token belongs to root inside
		}
		if out != want {
			t.Fatalf("%s: %q; want %q (stderr %q)", c.name, out, want, e.logs(t, c.name, Stderr))
		}
	}
	if err := e.rt.WriteRunFile("rootrun", "../escape", nil, 0o400); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("run file name with a slash: %v", err)
	}
}

// TestDevicesCgroup: a process in an instance's cgroup may open /dev/null but not
// /dev/kmsg, even as host root.
func TestDevicesCgroup(t *testing.T) {
	e := newTestRuntime(t, nil)
	if _, err := e.rt.Create(Spec{Name: "dev", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	plat := e.rt.plat.(*linuxPlatform)
	cg := plat.cg.cgroup("dev")
	var procs []string
	for _, d := range cg.dirs() {
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	script := fmt.Sprintf("for f in %s; do echo $$ > $f || exit 3; done; (exec 3</dev/null) && echo null-ok; (exec 3</dev/kmsg) 2>/dev/null && echo kmsg-open || echo kmsg-denied", strings.Join(procs, " "))
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil || string(out) != "null-ok\nkmsg-denied\n" {
		t.Fatalf("in the instance's cgroup: %q, %v; want null-ok and kmsg-denied", out, err)
	}
	// The same outside: the check can fail.
	if out, _ := exec.Command("sh", "-c", "(exec 3</dev/kmsg) && echo kmsg-open").CombinedOutput(); string(out) != "kmsg-open\n" {
		t.Fatalf("/dev/kmsg cannot be read outside the cgroup either (%q): the check above proves nothing", out)
	}
}

// TestSeccompProfileFile: an operator profile (OCI JSON) is copied at create and
// enforced: here mkdir/mkdirat fail with EACCES while the rest runs; a later change or
// removal of the file does not affect the created instance.
func TestSeccompProfileFile(t *testing.T) {
	e := newTestRuntime(t, nil)
	profile := filepath.Join(t.TempDir(), "profile.json")
	body := `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64"],
	"syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`
	if err := os.WriteFile(profile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Create(Spec{Name: "prof", Seccomp: profile, Command: []string{"sh", "-c", "mkdir /tmp/d 2>&1; touch /tmp/f && echo touched; grep Seccomp: /proc/self/status"}}); err != nil {
		t.Fatal(err)
	}
	os.Remove(profile)
	if _, err := e.rt.Start("prof"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Wait(context.Background(), "prof"); err != nil {
		t.Fatal(err)
	}
	out := e.logs(t, "prof", Stdout)
	if !strings.Contains(out, "Permission denied") || !strings.Contains(out, "touched\n") || !strings.Contains(out, "Seccomp:\t2\n") {
		t.Fatalf("instance under the profile: %q", out)
	}
}

// TestRestoreAcrossRanges: a snapshot taken in an earlier life of an instance (destroyed
// with its data kept, re-created in another uid range) is moved into the new range at
// start: the files keep their ids inside, and the instance can write them.
func TestRestoreAcrossRanges(t *testing.T) {
	e := newTestRuntime(t, nil)
	ctx := context.Background()
	uid := 1000
	if _, err := e.rt.Create(Spec{Name: "src", UID: &uid, GID: &uid, Command: []string{"sh", "-c", "mkdir -p d && echo v1 > d/f"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("src"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Wait(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.SaveSnapshot(ctx, "src", "s"); err != nil {
		t.Fatal(err)
	}
	old, _ := e.rt.Get("src")
	if err := e.rt.Destroy(ctx, "src", true); err != nil {
		t.Fatal(err)
	}
	// Another instance takes the freed range; src comes back in a new one.
	if _, err := e.rt.Create(Spec{Name: "other", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	dst, err := e.rt.Create(Spec{Name: "src", UID: &uid, GID: &uid, Command: []string{"sh", "-c", "stat -c '%u %g' d/f && echo v2 >> d/f && cat d/f"}})
	if err != nil {
		t.Fatal(err)
	}
	if dst.HostUID == old.HostUID {
		t.Fatal("the re-created instance kept its old range")
	}
	if err := e.rt.RestoreSnapshot(ctx, "src", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("src"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Wait(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	if out := e.logs(t, "src", Stdout); out != "1000 1000\nv1\nv2\n" {
		t.Fatalf("restored data in the new range: %q (stderr %q)", out, e.logs(t, "src", Stderr))
	}
	in, _ := e.rt.get("src")
	fi, err := os.Stat(filepath.Join(in.st.Res.upper(), "d", "f"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != dst.HostUID+1000 {
		t.Fatalf("restored file owned by host uid %d; want %d", st.Uid, dst.HostUID+1000)
	}
}
