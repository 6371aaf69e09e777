package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// escape tries, from inside an instance, each way out the sandbox must close, and prints
// one line per attempt: "probe NAME blocked: ERR" or "probe NAME ESCAPED: DETAIL". The
// test fails on any ESCAPED line and on a missing probe. Attempts change nothing on the
// host when they fail, and as little as possible when they succeed.
//
// Arguments are key=value: super (the supervisor's host pid), other (another instance's
// host pid), cgroup (a host cgroup file), token and sock (host paths that are not bound
// in), skip (comma-separated probes to leave out).
func escape(args []string) {
	kv := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		kv[k] = v
	}
	skip := map[string]bool{}
	for _, s := range strings.Split(kv["skip"], ",") {
		skip[s] = true
	}
	pid := func(k string) int { n, _ := strconv.Atoi(kv[k]); return n }
	probe := func(name string, fn func() (escaped bool, detail string)) {
		if skip[name] {
			return
		}
		esc, detail := fn()
		if esc {
			fmt.Printf("probe %s ESCAPED: %s\n", name, detail)
		} else {
			fmt.Printf("probe %s blocked: %s\n", name, detail)
		}
	}
	errp := func(err error) (bool, string) {
		if err == nil {
			return true, "succeeded"
		}
		return false, err.Error()
	}
	probe("remount-ro-bind-rw", func() (bool, string) {
		return errp(unix.Mount("", "/usr", "", unix.MS_REMOUNT|unix.MS_BIND, ""))
	})
	probe("write-system-dir", func() (bool, string) {
		err := os.WriteFile("/usr/.escape", []byte("x"), 0o644)
		return errp(err)
	})
	probe("write-etc", func() (bool, string) {
		f, err := os.OpenFile("/etc/passwd", os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			f.Close()
		}
		return errp(err)
	})
	probe("mknod-block", func() (bool, string) {
		err := unix.Mknod("/tmp/sda", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0)))
		return errp(err)
	})
	probe("mknod-char", func() (bool, string) {
		err := unix.Mknod("/tmp/mem", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1)))
		return errp(err)
	})
	probe("mount-tmpfs", func() (bool, string) {
		os.Mkdir("/tmp/m", 0o755)
		return errp(unix.Mount("tmpfs", "/tmp/m", "tmpfs", 0, ""))
	})
	probe("mount-cgroup", func() (bool, string) {
		os.Mkdir("/tmp/cg", 0o755)
		if err := unix.Mount("none", "/tmp/cg", "cgroup2", 0, ""); err == nil {
			return true, "cgroup2 mounted"
		}
		return errp(unix.Mount("none", "/tmp/cg", "cgroup", 0, "memory"))
	})
	probe("umount-mask", func() (bool, string) {
		return errp(unix.Unmount("/proc/timer_list", unix.MNT_DETACH))
	})
	probe("open-by-handle", func() (bool, string) {
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/usr", 0)
		if err != nil {
			// The handle of the root of the host's filesystem: {ino 2} on ext4/xfs.
			h = unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0})
		}
		dir, err := unix.Open("/usr", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return false, "open /usr: " + err.Error()
		}
		defer unix.Close(dir)
		fd, err := unix.OpenByHandleAt(dir, h, unix.O_RDONLY)
		if err == nil {
			unix.Close(fd)
		}
		return errp(err)
	})
	for _, t := range []struct{ name, key string }{{"ptrace-supervisor", "super"}, {"ptrace-other-instance", "other"}} {
		probe(t.name, func() (bool, string) {
			p := pid(t.key)
			if p <= 1 {
				return true, "no pid given"
			}
			return errp(unix.PtraceAttach(p))
		})
	}
	// The instance init (PID 1) holds the status pipe and the runtime's ends of the
	// output pipes; the program must not reach them.
	probe("ptrace-init", func() (bool, string) {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, 1, 0, 0, 0, 0)
		if e != 0 {
			return false, e.Error()
		}
		return true, "seized PID 1"
	})
	probe("init-fds", func() (bool, string) {
		for _, fd := range []string{"3", "4"} {
			f, err := os.OpenFile("/proc/1/fd/"+fd, os.O_RDWR, 0)
			if err == nil {
				f.Close()
				return true, "opened /proc/1/fd/" + fd
			}
		}
		pfd, err := unix.PidfdOpen(1, 0)
		if err != nil {
			return false, "/proc/1/fd: denied; " + err.Error()
		}
		defer unix.Close(pfd)
		fd, err := unix.PidfdGetfd(pfd, 4, 0)
		if err == nil {
			unix.Close(fd)
			return true, "pidfd_getfd of PID 1's fd 4"
		}
		return false, "/proc/1/fd and pidfd_getfd: " + err.Error()
	})
	probe("pidfd-supervisor", func() (bool, string) {
		fd, err := unix.PidfdOpen(pid("super"), 0)
		if err == nil {
			unix.Close(fd)
		}
		return errp(err)
	})
	probe("environ-other-instance", func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid("other")))
		if err == nil {
			return true, fmt.Sprintf("read %d bytes", len(b))
		}
		return false, err.Error()
	})
	probe("cgroup-write", func() (bool, string) {
		f, err := os.OpenFile(kv["cgroup"], os.O_WRONLY, 0)
		if err == nil {
			f.Close()
			return true, "opened " + kv["cgroup"]
		}
		return false, err.Error()
	})
	probe("cgroup-escape-procs", func() (bool, string) {
		for _, p := range []string{"/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/memory/cgroup.procs", "/sys/fs/cgroup/unified/cgroup.procs"} {
			if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
				f.Close()
				return true, "opened " + p
			}
		}
		return false, "no cgroup.procs reachable"
	})
	probe("unshare-user", func() (bool, string) { return errp(unix.Unshare(unix.CLONE_NEWUSER)) })
	probe("unshare-mount", func() (bool, string) { return errp(unix.Unshare(unix.CLONE_NEWNS)) })
	probe("clone3", func() (bool, string) {
		// A clone3 of a new user namespace: refused before the kernel sees the flags.
		args := struct{ flags, pidfd, ctid, ptid, sig, stack, size, tls uint64 }{flags: unix.CLONE_NEWUSER, sig: uint64(unix.SIGCHLD)}
		r, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
		if e == 0 {
			if r == 0 {
				unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
			}
			return true, "clone3(CLONE_NEWUSER) succeeded"
		}
		return false, e.Error()
	})
	probe("io-uring", func() (bool, string) {
		var params [120]byte
		r, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params[0])), 0)
		if e == 0 {
			unix.Close(int(r))
			return true, "io_uring_setup succeeded"
		}
		return false, e.Error()
	})
	probe("add-key", func() (bool, string) {
		_, err := unix.AddKey("user", "escape", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return errp(err)
	})
	probe("keyctl", func() (bool, string) {
		_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 1, 0, 0)
		return errp(err)
	})
	probe("perf-event-open", func() (bool, string) {
		attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
		attr.Size = uint32(unsafe.Sizeof(attr))
		fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, 0)
		if err == nil {
			unix.Close(fd)
		}
		return errp(err)
	})
	probe("bpf", func() (bool, string) {
		var attr [128]byte
		binary.NativeEndian.PutUint32(attr[0:], 1) // BPF_MAP_TYPE_HASH
		binary.NativeEndian.PutUint32(attr[4:], 4)
		binary.NativeEndian.PutUint32(attr[8:], 4)
		binary.NativeEndian.PutUint32(attr[12:], 1)
		r, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
		if e == 0 {
			unix.Close(int(r))
			return true, "BPF_MAP_CREATE succeeded"
		}
		return false, e.Error()
	})
	probe("core-pattern", func() (bool, string) {
		f, err := os.OpenFile("/proc/sys/kernel/core_pattern", os.O_WRONLY, 0)
		if err == nil {
			f.Close() // opened: that alone is the escape; nothing written
		}
		return errp(err)
	})
	probe("sysrq-trigger", func() (bool, string) {
		f, err := os.OpenFile("/proc/sysrq-trigger", os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		return errp(err)
	})
	probe("lo-address", func() (bool, string) { return errp(addLoAddress()) })
	probe("sethostname", func() (bool, string) { return errp(unix.Sethostname([]byte("escaped"))) })
	probe("kcore", func() (bool, string) {
		b, err := os.ReadFile("/proc/kcore")
		if err == nil && len(b) > 0 {
			return true, fmt.Sprintf("read %d bytes", len(b))
		}
		return false, fmt.Sprintf("%d bytes, %v", len(b), err)
	})
	probe("proc-keys", func() (bool, string) {
		b, err := os.ReadFile("/proc/keys")
		if err == nil && len(b) > 0 {
			return true, fmt.Sprintf("read %d bytes", len(b))
		}
		return false, fmt.Sprintf("%d bytes, %v", len(b), err)
	})
	probe("host-token", func() (bool, string) {
		b, err := os.ReadFile(kv["token"])
		if err == nil {
			return true, fmt.Sprintf("read %q", b)
		}
		return false, err.Error()
	})
	probe("host-socket", func() (bool, string) {
		c, err := net.Dial("unix", kv["sock"])
		if err == nil {
			c.Close()
		}
		return errp(err)
	})
	probe("host-shadow", func() (bool, string) {
		_, err := os.Stat("/etc/shadow")
		return errp(err)
	})
	probe("chroot", func() (bool, string) { return errp(unix.Chroot("/tmp")) })
	probe("setns-host", func() (bool, string) {
		fd, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, err.Error()
		}
		defer unix.Close(fd)
		return errp(unix.Setns(fd, unix.CLONE_NEWNS))
	})
	// What the instance writes is owned by its own host uids (checked from the host).
	if err := os.WriteFile("/app/written", []byte("x"), 0o644); err != nil {
		fmt.Println("write /app:", err)
	}
	st, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(st), "\n") {
		for _, k := range []string{"Uid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"} {
			if strings.HasPrefix(line, k) {
				fmt.Println("status", strings.Join(strings.Fields(line), " "))
			}
		}
	}
	fmt.Println("probes done")
}

// addLoAddress asks the kernel (rtnetlink) to add 198.18.0.99/32 to lo.
func addLoAddress() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	var b bytes.Buffer
	attr := func(typ uint16, data []byte) {
		binary.Write(&b, binary.NativeEndian, unix.RtAttr{Len: uint16(4 + len(data)), Type: typ})
		b.Write(data)
	}
	binary.Write(&b, binary.NativeEndian, unix.NlMsghdr{Type: unix.RTM_NEWADDR, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL, Seq: 1})
	binary.Write(&b, binary.NativeEndian, unix.IfAddrmsg{Family: unix.AF_INET, Prefixlen: 32, Index: uint32(lo.Index)})
	attr(unix.IFA_LOCAL, []byte{198, 18, 0, 99})
	attr(unix.IFA_ADDRESS, []byte{198, 18, 0, 99})
	msg := b.Bytes()
	binary.NativeEndian.PutUint32(msg, uint32(len(msg)))
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	resp := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, resp, 0)
	if err != nil {
		return err
	}
	if n >= 20 {
		if e := int32(binary.NativeEndian.Uint32(resp[16:])); e != 0 {
			return unix.Errno(-e)
		}
		return nil
	}
	return fmt.Errorf("short netlink reply")
}
