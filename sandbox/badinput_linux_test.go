package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// leftovers lists everything on the host that belongs to this runtime's instances:
// state dirs, data dirs and images, cgroup dirs, mounts.
func leftovers(t *testing.T, e *testEnv) []string {
	t.Helper()
	var out []string
	for _, d := range []string{filepath.Join(e.state, "instances"), filepath.Join(e.state, "data", "instances")} {
		ents, _ := os.ReadDir(d)
		for _, en := range ents {
			out = append(out, filepath.Join(d, en.Name()))
		}
	}
	plat := e.rt.plat.(*linuxPlatform)
	var parents []string
	if plat.cg.v2 {
		parents = []string{filepath.Join(plat.cg.root, plat.cg.parent)}
	} else {
		for _, p := range plat.cg.v1 {
			parents = append(parents, p)
		}
	}
	for _, p := range parents {
		ents, _ := os.ReadDir(p)
		for _, en := range ents {
			if en.IsDir() {
				out = append(out, filepath.Join(p, en.Name()))
			}
		}
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], filepath.Join(e.state, "data", "instances")) {
			out = append(out, "mount "+f[4])
		}
	}
	sort.Strings(out)
	return out
}

func TestBadInputLeavesNothing(t *testing.T) {
	e := newTestRuntime(t, nil)
	code := e.codeDir(t, "app", map[string]string{"run.sh": "#!/bin/sh\necho hi\n", "main.rads": "print 1\n"})
	if err := os.Symlink("/etc", filepath.Join(e.code, "escape")); err != nil {
		t.Fatal(err)
	}
	// One good instance: its resources are the only ones allowed to remain.
	if _, err := e.rt.Create(Spec{Name: "dup", Command: []string{"true"}, Limits: Limits{DiskMB: 8}}); err != nil {
		t.Fatal(err)
	}
	// A stray "kept" image that is not a filesystem makes Create fail after the cgroup
	// exists: the cgroup and state dir must be rolled back.
	if err := os.WriteFile(filepath.Join(e.state, "data", "instances", "late.img"), []byte("not ext4"), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(e.state, "data", "instances", "late.img")
	bigID := 65536
	badProfile := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(badProfile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_KILL_EVERYONE"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := leftovers(t, e)
	if len(before) < 3 {
		t.Fatalf("the good instance left almost no trace: leftovers() checks nothing: %q", before)
	}
	tests := []struct {
		name  string
		spec  Spec
		field string
		class error
	}{
		{"negative ram", Spec{Name: "a", Command: []string{"true"}, Limits: Limits{RAMMB: -1}}, "ram_mb", ErrInvalidSpec},
		{"ram below minimum", Spec{Name: "a", Command: []string{"true"}, Limits: Limits{RAMMB: 2}}, "ram_mb", ErrInvalidSpec},
		{"absurd cpu", Spec{Name: "a", Command: []string{"true"}, Limits: Limits{CPUPercent: 1e9}}, "cpu_percent", ErrInvalidSpec},
		{"absurd pids", Spec{Name: "a", Command: []string{"true"}, Limits: Limits{PIDs: 1 << 50}}, "pids", ErrInvalidSpec},
		{"absurd disk", Spec{Name: "a", Command: []string{"true"}, Limits: Limits{DiskMB: 1 << 50}}, "disk_mb", ErrInvalidSpec},
		{"duplicate name", Spec{Name: "dup", Command: []string{"true"}, Limits: Limits{DiskMB: 8}}, "name", ErrExists},
		{"missing executable", Spec{Name: "a", Command: []string{"no-such-program-xyz"}}, "command", ErrMissingExecutable},
		{"missing code executable", Spec{Name: "a", Code: code, Command: []string{"./nope"}}, "command", ErrMissingExecutable},
		{"executable outside system dirs", Spec{Name: "a", Command: []string{"/tmp/x"}}, "command", ErrMissingExecutable},
		{"missing script", Spec{Name: "a", Code: code, Script: "nope.sh"}, "script", ErrMissingExecutable},
		{"missing runtime", Spec{Name: "a", Code: code, Script: "main.rads", Runtime: "no-such-rads"}, "runtime", ErrMissingExecutable},
		{"code outside roots", Spec{Name: "a", Code: "/etc", Command: []string{"true"}}, "code", ErrPathNotAllowed},
		{"code escaping by symlink", Spec{Name: "a", Code: filepath.Join(e.code, "escape"), Command: []string{"true"}}, "code", ErrPathNotAllowed},
		{"bad name", Spec{Name: "../../x", Command: []string{"true"}}, "name", ErrInvalidSpec},
		{"host root not allowed", Spec{Name: "a", HostRoot: true, Command: []string{"true"}}, "host_root", ErrNotPermitted},
		{"uid outside the user namespace", Spec{Name: "a", UID: &bigID, Command: []string{"true"}}, "uid", ErrInvalidSpec},
		{"missing seccomp profile", Spec{Name: "a", Seccomp: "/nonexistent/profile.json", Command: []string{"true"}}, "seccomp", ErrInvalidSpec},
		{"bad seccomp profile", Spec{Name: "a", Seccomp: badProfile, Command: []string{"true"}}, "seccomp", ErrInvalidSpec},
		{"late failure", Spec{Name: "late", Command: []string{"true"}, Limits: Limits{DiskMB: 8, RAMMB: 64}}, "", nil},
	}
	for _, tt := range tests {
		if tt.name == "late failure" && e.rt.DiskQuotaMode() != DiskQuotaExt4 {
			continue // the stray image only breaks per-instance ext4 images
		}
		_, err := e.rt.Create(tt.spec)
		if err == nil {
			t.Errorf("%s: Create succeeded", tt.name)
			continue
		}
		if tt.class != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, tt.class) {
				t.Errorf("%s: Create = %v; want field %q class %v", tt.name, err, tt.field, tt.class)
			}
		}
		after := leftovers(t, e)
		want := before
		if strings.Join(after, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: leftovers changed:\nbefore %q\nafter  %q", tt.name, want, after)
		}
	}
	// The good one still works, and destroying it removes everything.
	if _, err := e.rt.Start("dup"); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Destroy(context.Background(), "dup", false); err != nil {
		t.Fatal(err)
	}
	os.Remove(stray)
	if l := leftovers(t, e); len(l) != 0 {
		t.Fatalf("after destroy: %q", l)
	}
}

// TestStartFailureReported: a failure inside the child (here: the program vanished
// after Create) is a clear error from Start naming the step, and leaves the instance
// startable once fixed.
func TestStartFailureReported(t *testing.T) {
	e := newTestRuntime(t, nil)
	code := e.codeDir(t, "gone", map[string]string{"prog.sh": "#!/bin/sh\necho ok\n"})
	if _, err := e.rt.Create(Spec{Name: "gone", Code: code, Command: []string{"./prog.sh"}}); err != nil {
		t.Fatal(err)
	}
	// Executable but not runnable: the kernel refuses the exec inside the child.
	if err := os.WriteFile(filepath.Join(code, "prog.sh"), []byte("\x7fELFgarbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := e.rt.Start("gone")
	if err == nil || !strings.Contains(err.Error(), "exec") {
		t.Fatalf("Start = %v; want an exec error", err)
	}
	if info, _ := e.rt.Get("gone"); info.State == StateRunning {
		t.Fatalf("state after failed start: %+v", info)
	}
	if err := os.WriteFile(filepath.Join(code, "prog.sh"), []byte("#!/bin/sh\necho ok\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("gone"); err != nil {
		t.Fatal(err)
	}
	if ex, err := e.rt.Wait(context.Background(), "gone"); err != nil || ex.Code != 0 {
		t.Fatalf("Wait = %+v, %v", ex, err)
	}
}
