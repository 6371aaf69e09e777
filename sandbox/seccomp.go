package sandbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
)

// Seccomp profiles (Spec.Seccomp). Any other value is the absolute path of a profile in
// the OCI runtime spec's linux.seccomp format.
const (
	// SeccompDefault is the built-in allow-list, equivalent to Docker's default profile
	// for a container without CAP_SYS_ADMIN, CAP_SYS_PTRACE and the other capabilities
	// that unlock syscalls there: namespaces (unshare, setns, clone with namespace
	// flags), mounts, keyrings, io_uring, bpf, perf_event_open, open_by_handle_at,
	// kexec, module loading, clock setting, reboot and 32-bit ABIs are refused with
	// EPERM (clone3 with ENOSYS, so libc falls back to clone).
	SeccompDefault = "default"
	// SeccompUnconfined installs no filter.
	SeccompUnconfined = "unconfined"
)

// Limits of operator profiles.
const (
	maxSeccompBytes = 1 << 20
	maxSeccompRules = 4096
	maxBPFInsns     = 4096 // BPF_MAXINSNS
)

// ociSeccomp is linux.seccomp of the OCI runtime spec.
type ociSeccomp struct {
	DefaultAction   string       `json:"defaultAction"`
	DefaultErrnoRet *uint32      `json:"defaultErrnoRet,omitempty"`
	Architectures   []string     `json:"architectures,omitempty"`
	Flags           []string     `json:"flags,omitempty"`
	Syscalls        []ociSyscall `json:"syscalls,omitempty"`
}

type ociSyscall struct {
	Names    []string `json:"names"`
	Action   string   `json:"action"`
	ErrnoRet *uint32  `json:"errnoRet,omitempty"`
	Args     []ociArg `json:"args,omitempty"`
	Comment  string   `json:"comment,omitempty"`
}

type ociArg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	Op       string `json:"op"`
}

// Seccomp return values (include/uapi/linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// bpfInsn is a classic BPF instruction (struct sock_filter).
type bpfInsn struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// seccompArch is the target of a compiled filter.
type seccompArch struct {
	name  string // OCI name, e.g. SCMP_ARCH_X86_64
	audit uint32
	table *arch.Info
	x32   bool // reject syscall numbers with the x32 bit (same audit arch)
}

var seccompArches = map[string]*seccompArch{
	"amd64": {name: "SCMP_ARCH_X86_64", audit: uint32(arch.X86_64.ID), table: arch.X86_64, x32: true},
	"arm64": {name: "SCMP_ARCH_AARCH64", audit: uint32(arch.AARCH64.ID), table: arch.AARCH64},
}

// allTables are searched to tell a syscall of another architecture from a typo.
var allTables = []*arch.Info{arch.X86_64, arch.AARCH64, arch.I386, arch.ARM, arch.X32}

var syscallNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

// loadSeccompProfile reads and checks an operator profile for goarch; field is the spec
// field named in errors.
func loadSeccompProfile(path, goarch string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSeccompBytes+1))
	if err != nil {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: %v", err)
	}
	if len(b) > maxSeccompBytes {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile %s is larger than %d bytes", path, maxSeccompBytes)
	}
	if _, _, err := compileSeccompJSON(b, goarch); err != nil {
		return nil, err
	}
	return b, nil
}

// compileSeccompJSON decodes an OCI linux.seccomp profile strictly and compiles it; it
// also returns the seccomp(2) flags the profile asks for.
func compileSeccompJSON(b []byte, goarch string) ([]bpfInsn, uint32, error) {
	prog, p, err := decodeAndCompile(b, goarch)
	if err != nil {
		return nil, 0, err
	}
	if err := checkInitSyscalls(prog, goarch); err != nil {
		return nil, 0, err
	}
	var flags uint32
	for _, f := range p.Flags {
		switch f {
		case "SECCOMP_FILTER_FLAG_LOG":
			flags |= 2
		case "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
			flags |= 4
		}
	}
	return prog, flags, nil
}

func decodeAndCompile(b []byte, goarch string) ([]bpfInsn, *ociSeccomp, error) {
	var p ociSeccomp
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		msg := err.Error()
		if strings.Contains(msg, `"includes"`) || strings.Contains(msg, `"excludes"`) || strings.Contains(msg, `"archMap"`) {
			return nil, nil, fieldErr("seccomp", ErrInvalidSpec, "profile: %v: Docker's conditional profile format (archMap, includes, excludes) is not supported; give an OCI linux.seccomp profile (defaultAction, architectures, syscalls[].names/action/errnoRet/args)", err)
		}
		return nil, nil, fieldErr("seccomp", ErrInvalidSpec, "profile: %v (want an OCI linux.seccomp object: defaultAction, architectures, syscalls[].names/action/errnoRet/args)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fieldErr("seccomp", ErrInvalidSpec, "profile: trailing data after the JSON object")
	}
	prog, err := compileSeccomp(&p, goarch, true)
	return prog, &p, err
}

// compileSeccomp compiles a profile into a filter for goarch. Names unknown on goarch but
// known on another architecture are skipped (profiles list every architecture's
// syscalls); with strict, a name unknown everywhere is an error.
func compileSeccomp(p *ociSeccomp, goarch string, strict bool) ([]bpfInsn, error) {
	a, ok := seccompArches[goarch]
	if !ok {
		return nil, fieldErr("seccomp", ErrUnenforceable, "no seccomp syscall table for %s", goarch)
	}
	def, err := seccompAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: defaultAction: %v", err)
	}
	if len(p.Architectures) > 0 && !slices.Contains(p.Architectures, a.name) {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: architectures %v do not include this node's %s", p.Architectures, a.name)
	}
	for _, f := range p.Flags {
		switch f {
		case "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG":
		default:
			return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: flag %q is not supported (SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW)", f)
		}
	}
	if len(p.Syscalls) > maxSeccompRules {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: more than %d syscalls entries", maxSeccompRules)
	}
	// nr -> rules in profile order; the first matching rule decides.
	type rule struct {
		args []ociArg
		ret  uint32
	}
	rules := map[int][]rule{}
	for i, sc := range p.Syscalls {
		ret, err := seccompAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: syscalls[%d].action: %v", i, err)
		}
		if len(sc.Names) == 0 {
			return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: syscalls[%d].names is empty", i)
		}
		if len(sc.Args) > 6 {
			return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: syscalls[%d] has %d args; at most 6", i, len(sc.Args))
		}
		seen := map[uint]bool{}
		dup := false
		for j, arg := range sc.Args {
			if arg.Index > 5 {
				return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: syscalls[%d].args[%d].index %d; must be 0..5", i, j, arg.Index)
			}
			if !validSeccompOp(arg.Op) {
				return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: syscalls[%d].args[%d].op %q; want one of SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ", i, j, arg.Op)
			}
			dup = dup || seen[arg.Index]
			seen[arg.Index] = true
		}
		// As runc does: comparisons of distinct arguments are ANDed; several comparisons
		// of the same argument are separate rules (ORed).
		var argSets [][]ociArg
		if dup {
			for _, arg := range sc.Args {
				argSets = append(argSets, []ociArg{arg})
			}
		} else {
			argSets = [][]ociArg{sc.Args}
		}
		for _, name := range sc.Names {
			nr, ok := a.table.SyscallNames[name]
			if !ok {
				if strict && (!syscallNameRE.MatchString(name) || !knownSyscall(name)) {
					return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: syscalls[%d]: unknown syscall %q", i, name)
				}
				continue // another architecture's syscall
			}
			for _, args := range argSets {
				rules[nr] = append(rules[nr], rule{args: args, ret: ret})
			}
		}
	}
	as := &bpfAsm{}
	// Another architecture's ABI (i386 or arm32 compat, x32) kills the process: its
	// syscall numbers mean other calls.
	as.stmt(bpfLdAbs, 4) // seccomp_data.arch
	as.jump(bpfJeqK, a.audit, "+1", "")
	as.stmt(bpfRet, retKillProcess)
	as.stmt(bpfLdAbs, 0) // seccomp_data.nr
	if a.x32 {
		as.jump(bpfJgeK, 0x40000000, "", "+1")
		as.stmt(bpfRet, retKillProcess)
	}
	nrs := make([]int, 0, len(rules))
	for nr := range rules {
		nrs = append(nrs, nr)
	}
	sort.Ints(nrs)
	// The syscall number space as intervals with one outcome each (a return value, or a
	// jump to the argument checks of one syscall), dispatched by a binary search: a
	// few comparisons per call, and a short program for the kernel's constant-action
	// cache to evaluate for every syscall number when the filter is installed.
	type interval struct {
		lo    uint32
		ret   uint32
		block string // argument checks; "" for ret
	}
	var ivs []interval
	next := uint32(0)
	for _, nr := range nrs {
		if uint32(nr) > next {
			ivs = append(ivs, interval{lo: next, ret: def})
		}
		rs := rules[nr]
		if len(rs) == 1 && len(rs[0].args) == 0 {
			if n := len(ivs); n > 0 && ivs[n-1].block == "" && ivs[n-1].ret == rs[0].ret {
				next = uint32(nr) + 1 // extends the previous interval
				continue
			}
			ivs = append(ivs, interval{lo: uint32(nr), ret: rs[0].ret})
		} else {
			ivs = append(ivs, interval{lo: uint32(nr), block: fmt.Sprintf("nr%d", nr)})
		}
		next = uint32(nr) + 1
	}
	ivs = append(ivs, interval{lo: next, ret: def})
	// Merge neighbours with the same plain outcome (a gap between two denied numbers).
	merged := ivs[:1]
	for _, iv := range ivs[1:] {
		last := &merged[len(merged)-1]
		if iv.block == "" && last.block == "" && iv.ret == last.ret {
			continue
		}
		merged = append(merged, iv)
	}
	var tree func(ivs []interval, id string)
	tree = func(ivs []interval, id string) {
		if len(ivs) == 1 {
			if ivs[0].block != "" {
				as.ja(ivs[0].block)
			} else {
				as.stmt(bpfRet, ivs[0].ret)
			}
			return
		}
		mid := len(ivs) / 2
		right := id + "r"
		as.jump(bpfJgeK, ivs[mid].lo, "", "+1")
		as.ja(right)
		tree(ivs[:mid], id+"l")
		as.label(right)
		tree(ivs[mid:], right)
	}
	tree(merged, "t")
	for _, nr := range nrs {
		rs := rules[nr]
		if len(rs) == 1 && len(rs[0].args) == 0 {
			continue
		}
		as.label(fmt.Sprintf("nr%d", nr))
		for i, r := range rs {
			next := fmt.Sprintf("nr%d.%d", nr, i+1)
			for j, arg := range r.args {
				as.argCond(arg, fmt.Sprintf("nr%d.%d.%d", nr, i, j), next)
			}
			as.stmt(bpfRet, r.ret)
			as.label(next)
		}
		as.stmt(bpfRet, def)
	}
	prog, err := as.assemble()
	if err != nil {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile: %v", err)
	}
	if len(prog) > maxBPFInsns {
		return nil, fieldErr("seccomp", ErrInvalidSpec, "profile compiles to %d BPF instructions; the kernel allows %d", len(prog), maxBPFInsns)
	}
	return prog, nil
}

func knownSyscall(name string) bool {
	for _, t := range allTables {
		if _, ok := t.SyscallNames[name]; ok {
			return true
		}
	}
	return false
}

func validSeccompOp(op string) bool {
	switch op {
	case "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ":
		return true
	}
	return false
}

func seccompAction(action string, errnoRet *uint32) (uint32, error) {
	data := func(def uint32) (uint32, error) {
		v := def
		if errnoRet != nil {
			v = *errnoRet
		}
		if v > 0xffff {
			return 0, fmt.Errorf("errnoRet %d exceeds 65535", v)
		}
		return v, nil
	}
	switch action {
	case "SCMP_ACT_ALLOW":
		return retAllow, nil
	case "SCMP_ACT_ERRNO":
		e, err := data(errnoEPERM)
		return retErrno | e, err
	case "SCMP_ACT_TRACE":
		e, err := data(0)
		return retTrace | e, err
	case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD":
		return retKillThread, nil
	case "SCMP_ACT_KILL_PROCESS":
		return retKillProcess, nil
	case "SCMP_ACT_TRAP":
		return retTrap, nil
	case "SCMP_ACT_LOG":
		return retLog, nil
	case "SCMP_ACT_NOTIFY":
		return 0, errors.New("SCMP_ACT_NOTIFY needs a listener, which instances do not have")
	case "":
		return 0, errors.New("missing")
	}
	return 0, fmt.Errorf("unknown action %q (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_LOG)", action)
}

// Classic BPF opcodes used by the compiler.
const (
	bpfLdAbs  = 0x20 // BPF_LD|BPF_W|BPF_ABS
	bpfAndK   = 0x54 // BPF_ALU|BPF_AND|BPF_K
	bpfJa     = 0x05 // BPF_JMP|BPF_JA
	bpfJeqK   = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
	bpfJgtK   = 0x25 // BPF_JMP|BPF_JGT|BPF_K
	bpfJgeK   = 0x35 // BPF_JMP|BPF_JGE|BPF_K
	bpfRet    = 0x06 // BPF_RET|BPF_K
	argOffset = 16   // offsetof(struct seccomp_data, args)
)

// bpfAsm assembles classic BPF with symbolic forward jumps. Target "" falls through;
// "+1" skips one instruction.
type bpfAsm struct {
	insns  []bpfInsn
	jt, jf []string // per instruction, for conditional jumps
	jaTo   []string // per instruction, for ja
	labels map[string]int
}

func (a *bpfAsm) emit(i bpfInsn, jt, jf, ja string) {
	a.insns = append(a.insns, i)
	a.jt = append(a.jt, jt)
	a.jf = append(a.jf, jf)
	a.jaTo = append(a.jaTo, ja)
}

func (a *bpfAsm) stmt(code uint16, k uint32) { a.emit(bpfInsn{Code: code, K: k}, "", "", "") }
func (a *bpfAsm) jump(code uint16, k uint32, jt, jf string) {
	a.emit(bpfInsn{Code: code, K: k}, jt, jf, "")
}
func (a *bpfAsm) ja(to string) { a.emit(bpfInsn{Code: bpfJa}, "", "", to) }

func (a *bpfAsm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

// argCond emits the 64-bit comparison of one argument: it falls through on a match and
// jumps to fail otherwise. tmp prefixes the labels it needs.
func (a *bpfAsm) argCond(arg ociArg, tmp, fail string) {
	hi, lo := argOffset+8*uint32(arg.Index)+4, argOffset+8*uint32(arg.Index)
	vh, vl := uint32(arg.Value>>32), uint32(arg.Value)
	ok := tmp + ".ok"
	switch arg.Op {
	case "SCMP_CMP_EQ":
		a.stmt(bpfLdAbs, hi)
		a.jump(bpfJeqK, vh, "", fail)
		a.stmt(bpfLdAbs, lo)
		a.jump(bpfJeqK, vl, "", fail)
	case "SCMP_CMP_NE":
		a.stmt(bpfLdAbs, hi)
		a.jump(bpfJeqK, vh, "", ok)
		a.stmt(bpfLdAbs, lo)
		a.jump(bpfJeqK, vl, fail, "")
	case "SCMP_CMP_GT", "SCMP_CMP_GE":
		a.stmt(bpfLdAbs, hi)
		a.jump(bpfJgtK, vh, ok, "")
		a.jump(bpfJeqK, vh, "", fail)
		a.stmt(bpfLdAbs, lo)
		if arg.Op == "SCMP_CMP_GT" {
			a.jump(bpfJgtK, vl, "", fail)
		} else {
			a.jump(bpfJgeK, vl, "", fail)
		}
	case "SCMP_CMP_LT", "SCMP_CMP_LE":
		a.stmt(bpfLdAbs, hi)
		a.jump(bpfJgeK, vh, "", ok) // hi < vh: match
		a.jump(bpfJeqK, vh, "", fail)
		a.stmt(bpfLdAbs, lo)
		if arg.Op == "SCMP_CMP_LT" {
			a.jump(bpfJgeK, vl, fail, "")
		} else {
			a.jump(bpfJgtK, vl, fail, "")
		}
	case "SCMP_CMP_MASKED_EQ":
		mh, ml := vh, vl
		wh, wl := uint32(arg.ValueTwo>>32), uint32(arg.ValueTwo)
		a.stmt(bpfLdAbs, hi)
		a.stmt(bpfAndK, mh)
		a.jump(bpfJeqK, wh, "", fail)
		a.stmt(bpfLdAbs, lo)
		a.stmt(bpfAndK, ml)
		a.jump(bpfJeqK, wl, "", fail)
	}
	a.label(ok)
}

func (a *bpfAsm) assemble() ([]bpfInsn, error) {
	out := slices.Clone(a.insns)
	off := func(i int, target string) (int, error) {
		switch target {
		case "":
			return 0, nil
		case "+1":
			return 1, nil
		}
		t, ok := a.labels[target]
		if !ok {
			return 0, fmt.Errorf("bpf: undefined label %s", target)
		}
		d := t - i - 1
		if d < 0 {
			return 0, fmt.Errorf("bpf: backward jump to %s", target)
		}
		return d, nil
	}
	for i := range out {
		if a.jaTo[i] != "" {
			d, err := off(i, a.jaTo[i])
			if err != nil {
				return nil, err
			}
			out[i].K = uint32(d)
			continue
		}
		jt, err := off(i, a.jt[i])
		if err != nil {
			return nil, err
		}
		jf, err := off(i, a.jf[i])
		if err != nil {
			return nil, err
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("bpf: conditional jump of %d instructions exceeds 255", max(jt, jf))
		}
		out[i].Jt, out[i].Jf = uint8(jt), uint8(jf)
	}
	return out, nil
}

// initSyscalls are the calls made under an instance's filter before the program runs:
// the launcher's execveat of the instance init (its memfd, AT_EMPTY_PATH) and every call
// of the init (pid1_linux_*.s; the Go init makes more, but runs only where the native
// one does not), with the arguments an argument rule could look at. Pointer arguments
// are 0.
var initSyscalls = []struct {
	name string
	args [6]uint64
}{
	{"execveat", [6]uint64{3, 0, 0, 0, 0x1000}}, // AT_EMPTY_PATH
	{"prctl", [6]uint64{15}},                    // PR_SET_NAME
	{"prctl", [6]uint64{4, 0}},                  // PR_SET_DUMPABLE, 0
	{"rt_sigprocmask", [6]uint64{2, 0, 0, 8}},   // SIG_SETMASK
	{"pipe2", [6]uint64{0, 0x80000}},            // O_CLOEXEC
	{"clone", [6]uint64{17}},                    // SIGCHLD: a plain fork
	{"close", [6]uint64{}},
	{"read", [6]uint64{0, 0, 4}},
	{"write", [6]uint64{3, 0, 8}},
	{"rt_sigtimedwait", [6]uint64{0, 0, 0, 8}},
	{"kill", [6]uint64{^uint64(1), 15}},
	{"wait4", [6]uint64{^uint64(0), 0, 1}}, // WNOHANG
	{"setpgid", [6]uint64{}},               // its child: setpgid(0, 0)
	{"fcntl", [6]uint64{3, 2, 1}},          // F_SETFD, FD_CLOEXEC
	{"execve", [6]uint64{}},                // the program
	{"exit_group", [6]uint64{}},
}

// checkInitSyscalls refuses a filter under which the instance init could not start
// or run the program.
func checkInitSyscalls(prog []bpfInsn, goarch string) error {
	a, ok := seccompArches[goarch]
	if !ok {
		return nil
	}
	var denied []string
	for _, c := range initSyscalls {
		nr, ok := a.table.SyscallNames[c.name]
		if !ok {
			continue
		}
		ret, err := evalSeccomp(prog, nr, a.audit, c.args)
		if err != nil {
			return fieldErr("seccomp", ErrInvalidSpec, "profile: %v", err)
		}
		if act := ret & 0xffff0000; act != retAllow && act != retLog && !slices.Contains(denied, c.name) {
			denied = append(denied, c.name)
		}
	}
	if len(denied) > 0 {
		return fieldErr("seccomp", ErrInvalidSpec, "profile denies %s, which every instance needs before its program runs: the filter is installed before the instance init is exec'd (execveat of a memfd), and the init forks (clone with SIGCHLD only), reaps (wait4), forwards signals (kill, rt_sigtimedwait) and execs the program; allow them", strings.Join(denied, ", "))
	}
	return nil
}

// evalSeccomp runs a compiled filter over one seccomp_data (nr, arch, args) and returns
// its action.
func evalSeccomp(prog []bpfInsn, nr int, auditArch uint32, args [6]uint64) (uint32, error) {
	var data [64]byte
	binary.LittleEndian.PutUint32(data[0:], uint32(nr))
	binary.LittleEndian.PutUint32(data[4:], auditArch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLdAbs:
			if in.K > uint32(len(data))-4 {
				return 0, fmt.Errorf("filter loads offset %d at %d", in.K, pc)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case bpfAndK:
			acc &= in.K
		case bpfJa:
			pc += int(in.K)
		case bpfJeqK, bpfJgtK, bpfJgeK:
			var c bool
			switch in.Code {
			case bpfJeqK:
				c = acc == in.K
			case bpfJgtK:
				c = acc > in.K
			default:
				c = acc >= in.K
			}
			if c {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRet:
			return in.K, nil
		default:
			return 0, fmt.Errorf("unknown opcode %#x at %d", in.Code, pc)
		}
	}
	return 0, errors.New("filter fell off its end")
}
