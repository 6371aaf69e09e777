package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// initArg0 marks the re-executed binary as the Go instance init (the fallback).
const initArg0 = "constellation-sandbox-init"

// initConfig is what an instance's setup is built from (buildChild); the Go init gets
// it as JSON on fd 3.
type initConfig struct {
	Root       string   `json:"root"`        // empty host dir: mount point of the new root
	SystemDirs []string `json:"system_dirs"` // bound read-only at the same path
	Code       string   `json:"code"`        // overlay lower layer ("" = none)
	Upper      string   `json:"upper"`
	Work       string   `json:"work"`
	Hostname   string   `json:"hostname"`
	Loopback   bool     `json:"loopback"` // new network namespace with lo up
	// NetNS is a descriptor of the network namespace to join (bridge mode; -1: none).
	NetNS int      `json:"net_ns"`
	UID   int      `json:"uid"` // inside the user namespace (if any)
	GID   int      `json:"gid"`
	Path  string   `json:"path"` // executable, as seen inside the instance
	Argv  []string `json:"argv"`
	Env   []string `json:"env"`
	TmpMB int64    `json:"tmp_mb"`
	// UserNS: unshare a user namespace mapping 0..65535 to HostUID.. (uids and gids).
	UserNS  bool       `json:"user_ns"`
	HostUID int        `json:"host_uid"`
	Etc     []etcEntry `json:"etc"` // the instance's /etc
	// Secrets are the files of /run/secrets (Config.StartFiles); none: no mount.
	Secrets []etcEntry `json:"secrets,omitempty"`
	// Binds are host directories bound into the instance (Config.StartMounts).
	Binds    []BindMount `json:"binds,omitempty"`
	RunDir   string      `json:"run_dir"`   // bound read-only at /run/constellation
	DevNodes []string    `json:"dev_nodes"` // host /dev nodes bound into /dev
	// Docker's masked and read-only /proc paths that exist on this kernel.
	ProcMaskFiles []string  `json:"proc_mask_files"`
	ProcMaskDirs  []string  `json:"proc_mask_dirs"`
	ProcReadOnly  []string  `json:"proc_read_only"`
	LastCap       int       `json:"last_cap"`
	Seccomp       []bpfInsn `json:"seccomp"` // nil: unconfined
	SeccompFlags  uint32    `json:"seccomp_flags"`
	// InitFD is the runtime's fd of the native init binary (raw launcher; -1: none).
	InitFD int `json:"-"`
}

// Init must be the first call in main() (and in TestMain) of every binary that creates
// instances on Linux: when the binary was re-executed as an instance's init, Init sets up
// the instance's private root view inside the new namespaces, drops privileges and
// execs the program, and never returns. Otherwise it returns immediately.
func Init() {
	if len(os.Args) == 0 {
		return
	}
	if filepath.Base(os.Args[0]) == probeArg0 {
		runProbe() // Bench's probe program
	}
	if os.Args[0] != initArg0 {
		return
	}
	err := runInit()
	// Report to the runtime on the error pipe (closed once the program runs).
	errPipe := os.NewFile(goInitErrFD, "errpipe")
	fmt.Fprintf(errPipe, "%v", err)
	os.Exit(127)
}

func runInit() error {
	unix.CloseOnExec(goInitCfgFD)
	unix.CloseOnExec(goInitErrFD)
	b, err := io.ReadAll(os.NewFile(goInitCfgFD, "config"))
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var c initConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	if len(c.Argv) == 0 {
		return fmt.Errorf("empty config (runtime gave up)")
	}
	if c.UserNS {
		return fmt.Errorf("the Go init cannot create a user namespace")
	}
	// Credentials, capabilities and the seccomp filter are per thread: the calls run on
	// this one, which stays locked, and goPID1 forks the program from it.
	runtime.LockOSThread()
	prog := buildChild(&c, nil, nil, hostSystemDirs(c.SystemDirs), childSync{}, -1)
	var prev uintptr
	for i, op := range prog.ops {
		a := op.a
		if op.flags&opPrevA0 != 0 {
			a[0] = prev
		}
		r, _, e := syscall.RawSyscall6(op.nr, a[0], a[1], a[2], a[3], a[4], a[5])
		if e != 0 && op.flags&opMayFail == 0 {
			return opError(prog.desc[i], e)
		}
		if op.flags&opKeepPrev == 0 {
			prev = r
		}
	}
	return goPID1(&c) // stays resident as the instance init (pid1_go_linux.go)
}
