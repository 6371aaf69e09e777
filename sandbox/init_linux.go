package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// initArg0 marks the re-executed binary as the short-lived instance init.
const initArg0 = "constellation-sandbox-init"

// initConfig is what the runtime sends the init on fd 3.
type initConfig struct {
	Root       string   `json:"root"`        // empty host dir: mount point of the new root
	SystemDirs []string `json:"system_dirs"` // bound read-only at the same path
	Code       string   `json:"code"`        // overlay lower layer ("" = none)
	Upper      string   `json:"upper"`
	Work       string   `json:"work"`
	Hostname   string   `json:"hostname"`
	Loopback   bool     `json:"loopback"` // bring lo up (new network namespace)
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	Path       string   `json:"path"` // executable, as seen inside the instance
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	TmpMB      int64    `json:"tmp_mb"`
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
	unix.Umask(0)
	if err := setupRoot(&c); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if c.Loopback {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
	}
	if err := unix.Chdir("/app"); err != nil {
		return fmt.Errorf("chdir /app: %w", err)
	}
	unix.Umask(0o022)
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(c.GID); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(c.UID); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return goPID1(&c) // >>> pid1: stays resident as the instance init (pid1_go_linux.go)
}

// setupRoot builds the instance's root: a small tmpfs holding read-only binds of the
// system directories, the /app overlay, private /tmp and /dev, and /proc of the new PID
// namespace; then pivot_root into it.
func setupRoot(c *initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	r := c.Root
	if err := unix.Mount("tmpfs", r, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	for _, d := range c.SystemDirs {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		target := filepath.Join(r, d)
		if fi.Mode()&os.ModeSymlink != 0 { // merged /usr: /bin -> usr/bin
			l, err := os.Readlink(d)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return fmt.Errorf("symlink %s: %w", d, err)
			}
			continue
		}
		if !fi.IsDir() {
			continue
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(d, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", d, err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", d, err)
		}
	}
	app := filepath.Join(r, "app")
	if err := os.Mkdir(app, 0o755); err != nil {
		return err
	}
	if c.Code != "" {
		opts := "lowerdir=" + c.Code + ",upperdir=" + c.Upper + ",workdir=" + c.Work
		if err := unix.Mount("overlay", app, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("mount overlay: %w", err)
		}
	} else if err := unix.Mount(c.Upper, app, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind data: %w", err)
	}
	tmp := filepath.Join(r, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%dm", c.TmpMB)); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if err := setupDev(filepath.Join(r, "dev")); err != nil {
		return err
	}
	proc := filepath.Join(r, "proc")
	if err := os.Mkdir(proc, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	old := filepath.Join(r, ".old")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(r, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Rmdir("/.old"); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}

func setupDev(dev string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := unix.Mknod(filepath.Join(dev, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=16m"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
