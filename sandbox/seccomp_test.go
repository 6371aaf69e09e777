package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
)

// runBPF interprets a seccomp filter over one seccomp_data (nr, arch, args).
func runBPF(t *testing.T, prog []bpfInsn, nr int, auditArch uint32, args [6]uint64) uint32 {
	t.Helper()
	ret, err := evalSeccomp(prog, nr, auditArch, args)
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

func TestSeccompDefaultProfileBothArches(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		a := seccompArches[goarch]
		prog, err := compileSeccomp(defaultSeccompProfile(), goarch, false)
		if err != nil {
			t.Fatalf("%s: %v", goarch, err)
		}
		t.Logf("%s: %d instructions", goarch, len(prog))
		nr := func(name string) int {
			n, ok := a.table.SyscallNames[name]
			if !ok {
				t.Fatalf("%s: no syscall %s", goarch, name)
			}
			return n
		}
		ret := func(name string, args ...uint64) uint32 {
			var a6 [6]uint64
			copy(a6[:], args)
			return runBPF(t, prog, nr(name), a.audit, a6)
		}
		eperm := uint32(retErrno | errnoEPERM)
		for _, name := range []string{"read", "write", "openat", "execve", "futex", "mmap", "exit_group", "ptrace", "wait4", "mknodat"} {
			if got := ret(name); got != retAllow {
				t.Errorf("%s: %s = %#x; want allow", goarch, name, got)
			}
		}
		for _, name := range []string{"unshare", "setns", "mount", "umount2", "pivot_root", "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter", "bpf", "perf_event_open", "open_by_handle_at", "kexec_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "settimeofday", "fsopen", "move_mount", "open_tree", "mount_setattr", "userfaultfd", "chroot", "syslog", "acct", "quotactl", "sethostname"} {
			if got := ret(name); got != eperm {
				t.Errorf("%s: %s = %#x; want EPERM", goarch, name, got)
			}
		}
		if got := ret("clone3"); got != retErrno|errnoENOSYS {
			t.Errorf("%s: clone3 = %#x; want ENOSYS", goarch, got)
		}
		const thread = 0x3d0f00 // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
		if got := ret("clone", thread); got != retAllow {
			t.Errorf("%s: clone(thread) = %#x", goarch, got)
		}
		for _, f := range []uint64{0x10000000, 0x20000, 0x40000000, 0x10000000 | thread, 1<<32 | 0x10000000} {
			if got := ret("clone", f); got != eperm {
				t.Errorf("%s: clone(%#x) = %#x; want EPERM", goarch, f, got)
			}
		}
		if got := ret("socket", 2); got != retAllow {
			t.Errorf("%s: socket(AF_INET) = %#x", goarch, got)
		}
		for _, d := range []uint64{38, 40, 1<<32 | 2} { // AF_ALG, AF_VSOCK, high bits set
			if got := ret("socket", d); got != eperm {
				t.Errorf("%s: socket(%#x) = %#x; want EPERM", goarch, d, got)
			}
		}
		if got := ret("personality", 0xffffffff); got != retAllow {
			t.Errorf("%s: personality query = %#x", goarch, got)
		}
		if got := ret("personality", 0x0040000); got != eperm { // ADDR_NO_RANDOMIZE
			t.Errorf("%s: personality(ADDR_NO_RANDOMIZE) = %#x", goarch, got)
		}
		// Another ABI is killed.
		if got := runBPF(t, prog, 0, uint32(arch.I386.ID), [6]uint64{}); got != retKillProcess {
			t.Errorf("%s: i386 ABI = %#x; want kill", goarch, got)
		}
		if goarch == "amd64" {
			if got := runBPF(t, prog, 0x40000000+nr("read"), a.audit, [6]uint64{}); got != retKillProcess {
				t.Errorf("x32 ABI = %#x; want kill", got)
			}
		}
	}
}

func TestSeccompOperators(t *testing.T) {
	mk := func(op string, v, v2 uint64) []bpfInsn {
		p := &ociSeccomp{DefaultAction: "SCMP_ACT_ALLOW", Syscalls: []ociSyscall{{Names: []string{"read"}, Action: "SCMP_ACT_ERRNO", Args: []ociArg{{Index: 2, Value: v, ValueTwo: v2, Op: op}}}}}
		prog, err := compileSeccomp(p, "amd64", true)
		if err != nil {
			t.Fatal(err)
		}
		return prog
	}
	a := seccompArches["amd64"]
	read := a.table.SyscallNames["read"]
	const big = 5<<32 | 7
	cases := []struct {
		op     string
		v, v2  uint64
		arg    uint64
		denied bool
	}{
		{"SCMP_CMP_EQ", big, 0, big, true}, {"SCMP_CMP_EQ", big, 0, 7, false}, {"SCMP_CMP_EQ", big, 0, 6<<32 | 7, false},
		{"SCMP_CMP_NE", big, 0, big, false}, {"SCMP_CMP_NE", big, 0, 7, true}, {"SCMP_CMP_NE", big, 0, 5 << 32, true},
		{"SCMP_CMP_GT", big, 0, big + 1, true}, {"SCMP_CMP_GT", big, 0, big, false}, {"SCMP_CMP_GT", big, 0, 6 << 32, true}, {"SCMP_CMP_GT", big, 0, 4<<32 | 9, false},
		{"SCMP_CMP_GE", big, 0, big, true}, {"SCMP_CMP_GE", big, 0, big - 1, false},
		{"SCMP_CMP_LT", big, 0, big - 1, true}, {"SCMP_CMP_LT", big, 0, big, false}, {"SCMP_CMP_LT", big, 0, 4<<32 | 9, true}, {"SCMP_CMP_LT", big, 0, 6 << 32, false},
		{"SCMP_CMP_LE", big, 0, big, true}, {"SCMP_CMP_LE", big, 0, big + 1, false},
		{"SCMP_CMP_MASKED_EQ", 0xff00000000f0, 0x3400000000a0, 0x34000000ffa5, true}, {"SCMP_CMP_MASKED_EQ", 0xff00000000f0, 0x3400000000a0, 0x35000000ffa5, false},
	}
	for _, c := range cases {
		got := runBPF(t, mk(c.op, c.v, c.v2), read, a.audit, [6]uint64{0, 0, c.arg})
		if denied := got == retErrno|errnoEPERM; denied != c.denied {
			t.Errorf("%s %#x (two %#x) on %#x: denied=%v; want %v", c.op, c.v, c.v2, c.arg, denied, c.denied)
		}
	}
}

func TestSeccompProfileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ json, want string }{
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`, "profile denies execveat, prctl, rt_sigprocmask, pipe2, clone, close, write, rt_sigtimedwait, kill, wait4, setpgid, fcntl, execve, exit_group"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":17,"op":"SCMP_CMP_EQ"}]}]}`, "profile denies clone,"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":268435456,"op":"SCMP_CMP_MASKED_EQ","valueTwo":268435456}]}]}`, ""},
		{`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["execveat","prctl","rt_sigprocmask","pipe2","clone","close","read","write","rt_sigtimedwait","kill","wait4","setpgid","fcntl","execve","exit_group"],"action":"SCMP_ACT_ALLOW"}]}`, ""},
		{`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_AARCH64"],"syscalls":[{"names":["arch_prctl","mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`, ""},
		{`{"defaultAction":"SCMP_ACT_NOPE"}`, "unknown action"},
		{`{}`, "defaultAction: missing"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["raed"],"action":"SCMP_ACT_ERRNO"}]}`, `unknown syscall "raed"`},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, "index 6"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"EQ"}]}]}`, `op "EQ"`},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}`, "exceeds 65535"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}`, "listener"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","archMap":[]}`, "Docker's conditional profile format"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`, "Docker's conditional profile format"},
		{`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_PPC64LE"]}`, "do not include"},
		{`{"defaultAction":"SCMP_ACT_ALLOW"} x`, "trailing data"},
		{`[1]`, "want an OCI linux.seccomp object"},
	} {
		p := filepath.Join(dir, "p.json")
		os.WriteFile(p, []byte(c.json), 0o644)
		_, err := loadSeccompProfile(p, "amd64")
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.json, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "seccomp" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v; want a seccomp FieldError containing %q", c.json, err, c.want)
		}
	}
	if _, err := loadSeccompProfile(filepath.Join(dir, "missing.json"), "amd64"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing profile: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, make([]byte, maxSeccompBytes+1), 0o644)
	if _, err := loadSeccompProfile(big, "amd64"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big profile: %v", err)
	}
}

// TestSeccompDispatchMatchesRules compares the compiled binary-search dispatch with a
// direct evaluation of the profile's rules for every syscall number and a few
// argument values.
func TestSeccompDispatchMatchesRules(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64"} {
		a := seccompArches[goarch]
		p := defaultSeccompProfile()
		prog, err := compileSeccomp(p, goarch, false)
		if err != nil {
			t.Fatal(err)
		}
		def, _ := seccompAction(p.DefaultAction, p.DefaultErrnoRet)
		eval := func(nr int, args [6]uint64) uint32 {
			for _, sc := range p.Syscalls {
				for _, name := range sc.Names {
					if n, ok := a.table.SyscallNames[name]; !ok || n != nr {
						continue
					}
					match := true
					for _, c := range sc.Args {
						v := args[c.Index]
						switch c.Op {
						case "SCMP_CMP_EQ":
							match = match && v == c.Value
						case "SCMP_CMP_MASKED_EQ":
							match = match && v&c.Value == c.ValueTwo
						default:
							t.Fatalf("evaluator lacks %s", c.Op)
						}
					}
					if match {
						ret, _ := seccompAction(sc.Action, sc.ErrnoRet)
						return ret
					}
				}
			}
			return def
		}
		for nr := 0; nr < 1100; nr++ {
			for _, arg0 := range []uint64{0, 2, 38, 0x10000000, 0xffffffff} {
				args := [6]uint64{arg0}
				if got, want := runBPF(t, prog, nr, a.audit, args), eval(nr, args); got != want {
					t.Fatalf("%s: nr %d (%s) arg0 %#x: filter %#x, rules %#x", goarch, nr, a.table.SyscallNumbers[nr], arg0, got, want)
				}
			}
		}
	}
}
