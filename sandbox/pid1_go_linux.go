package sandbox

import (
	"encoding/binary"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// The Go init: where no native init exists (pid1_nonative_linux.go) or the fallback
// launcher runs (nested system directories), the re-executed Go init (Init) sets the
// instance up and stays resident as PID 1, doing what pid1Main does. It costs a Go
// runtime (measured: 4.9 MiB RSS, 3 MiB PSS, 1 MiB anonymous per instance; the binary's
// package initialisers run too) where the native init costs about 11 KiB RSS.
//
// Its files: 0-6 as for the native init (pid1_linux.go), the configuration on
// goInitCfgFD and the setup error pipe on goInitErrFD.
const (
	goInitCfgFD = pid1NumFDs
	goInitErrFD = pid1NumFDs + 1
	goInitNetFD = pid1NumFDs + 2 // the bridge-mode network namespace, if any
)

// goPID1 starts the program and supervises it; it returns only when the program could
// not be started before anything ran (then Init reports the error).
func goPID1(c *initConfig) error {
	// Like the native init: the program (same uid) must not ptrace the init or take its
	// files.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // before the fork: no SIGCHLD is missed
	pid, err := syscall.ForkExec(c.Path, c.Argv, &syscall.ProcAttr{
		Env:   c.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	status := os.NewFile(pid1StatusFD, "status")
	var rec [8]byte
	// The runtime's wait for setup errors ends here; the start report follows.
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return err
		}
		unix.Close(goInitErrFD)
		binary.NativeEndian.PutUint32(rec[:4], pid1RecExecFail)
		binary.NativeEndian.PutUint32(rec[4:], uint32(errno))
		status.Write(rec[:])
		os.Exit(127)
	}
	unix.Close(goInitErrFD)
	binary.NativeEndian.PutUint32(rec[:4], pid1RecStarted)
	binary.NativeEndian.PutUint32(rec[4:], uint32(pid))
	status.Write(rec[:])
	for s := range sigs {
		sig, ok := s.(syscall.Signal)
		if !ok || sig == syscall.SIGURG { // SIGURG: the Go runtime's own preemption
			continue
		}
		if sig != syscall.SIGCHLD {
			if unix.Kill(-pid, sig) != nil {
				unix.Kill(pid, sig)
			}
			continue
		}
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || p <= 0 {
				break
			}
			if p != pid {
				continue
			}
			binary.NativeEndian.PutUint32(rec[:4], pid1RecExit)
			binary.NativeEndian.PutUint32(rec[4:], uint32(ws))
			status.Write(rec[:])
			if ws.Signaled() {
				os.Exit(128 + int(ws.Signal()))
			}
			os.Exit(ws.ExitStatus())
		}
	}
	return errors.New("signal channel closed")
}
