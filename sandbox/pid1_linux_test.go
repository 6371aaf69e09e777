package sandbox

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runPID1 runs the init program outside any namespace with argv, returning the
// process, the status pipe's read end and a function waiting for the exit.
func runPID1(t *testing.T, argv ...string) (*exec.Cmd, *os.File) {
	t.Helper()
	prog, err := pid1ELF()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(bin, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sr.Close() })
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	cmd := exec.Command(bin)
	cmd.Args = append([]string{pid1Name}, argv...)
	cmd.ExtraFiles = []*os.File{sw, devnull, devnull, devnull}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sw.Close()
	return cmd, sr
}

func TestPID1ProgramExitStatus(t *testing.T) {
	if !havePID1 {
		t.Skip("no native init on this architecture (the Go init is tested by TestInitFallbackLauncher)")
	}
	cmd, sr := runPID1(t, "/bin/sh", "sh", "-c", "exit 3")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("init exit = %v; want code 3", err)
	}
	b, _ := io.ReadAll(sr)
	ws, known, execErr := parseStatusRecords(b)
	if !known || !ws.Exited() || ws.ExitStatus() != 3 || execErr != 0 {
		t.Fatalf("status records %x: ws %v known %v exec %v", b, ws, known, execErr)
	}
}

func TestPID1ProgramExecFailure(t *testing.T) {
	if !havePID1 {
		t.Skip("no native init on this architecture")
	}
	cmd, sr := runPID1(t, "/nonexistent/prog", "prog")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 {
		t.Fatalf("init exit = %v; want code 127", err)
	}
	b, _ := io.ReadAll(sr)
	if _, _, execErr := parseStatusRecords(b); execErr != unix.ENOENT {
		t.Fatalf("exec error %v; want ENOENT (records %x)", execErr, b)
	}
}

func TestPID1ProgramForwardsSignals(t *testing.T) {
	if !havePID1 {
		t.Skip("no native init on this architecture")
	}
	cmd, sr := runPID1(t, "/bin/sleep", "sleep", "1000")
	time.Sleep(100 * time.Millisecond) // the program is exec'd
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("init exit = %v; want 128+SIGTERM", err)
	}
	b, _ := io.ReadAll(sr)
	ws, known, _ := parseStatusRecords(b)
	if !known || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("status %v known %v; want signaled SIGTERM", ws, known)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("stop took %v", d)
	}
}
