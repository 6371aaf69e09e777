package sandbox

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// startAndWaitOutput starts spec and waits until its stdout contains want.
func (e *testEnv) startAndWaitOutput(t *testing.T, spec Spec, want string) {
	t.Helper()
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	if _, err := e.rt.Start(spec.Name); err != nil {
		t.Fatalf("Start(%s): %v", spec.Name, err)
	}
	if want != "" {
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%q in the output of %s", want, spec.Name), func() (bool, string) {
			return strings.Contains(e.logs(t, spec.Name, Stdout), want), ""
		})
	}
}

// TestStopWithoutHandler: programs without a SIGTERM handler stop at once (the init
// forwards SIGTERM; the program is not PID 1), reported as stopped by SIGTERM.
func TestStopWithoutHandler(t *testing.T) {
	e := newTestRuntime(t, nil)
	if _, ok := lookSystem("python3", e.rt.cfg.SystemDirs); !ok {
		t.Fatal("python3 is not installed in the system directories (the test stops a python program)")
	}
	cases := []Spec{
		{Name: "sleep", Command: []string{"sleep", "1000"}},
		{Name: "python", Command: []string{"python3", "-c", "import time; time.sleep(1000)"}},
	}
	for _, spec := range cases {
		e.startAndWaitOutput(t, spec, "")
		time.Sleep(200 * time.Millisecond) // the program runs (python has started up)
		t0 := time.Now()
		if err := e.rt.Stop(context.Background(), spec.Name, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		d := time.Since(t0)
		info, _ := e.rt.Get(spec.Name)
		ex := info.LastExit
		if ex == nil || !ex.Stopped || ex.Reason != ReasonSignaled || ex.Code != int(syscall.SIGTERM) {
			t.Fatalf("%s: exit %+v; want stopped, signaled by SIGTERM", spec.Name, ex)
		}
		if d > time.Second {
			t.Fatalf("%s: stop took %v; want well under the 10 s grace", spec.Name, d)
		}
		t.Logf("%s stopped in %v", spec.Name, d)
	}
}

// TestZombiesReaped: children a program forks and never waits for (orphans reparented
// to PID 1 included) are reaped by the init.
func TestZombiesReaped(t *testing.T) {
	e := newTestRuntime(t, nil)
	// The double-forked children are orphans reparented to PID 1 when their parent
	// subshell exits; they exit 0.1 s later. Without an init reaping them they would
	// stay zombies (the program, sleep, is no reaper).
	script := `for i in 1 2 3 4 5; do (sh -c 'sleep 0.1' &); done; echo forked; exec sleep 1000`
	e.startAndWaitOutput(t, Spec{Name: "zombies", Command: []string{"sh", "-c", script}}, "forked")
	plat := e.rt.plat.(*linuxPlatform)
	cg := plat.cg.cgroup("zombies")
	var states string
	testutil.WaitFor(t, 5*time.Second, "no zombies in the instance", func() (bool, string) {
		states = ""
		for _, pid := range cg.procs() {
			states += string(procState(pid))
		}
		return !strings.Contains(states, "Z") && len(states) == 2, "process states " + states // init and sleep
	})
	t.Logf("process states: %s", states)
}

// TestSignalForwarded: Signal reaches the program (and its process group) through the
// init; the program's handler runs.
func TestSignalForwarded(t *testing.T) {
	e := newTestRuntime(t, nil)
	script := `trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.05; done`
	e.startAndWaitOutput(t, Spec{Name: "sig", Command: []string{"sh", "-c", script}}, "ready")
	for _, s := range []struct {
		sig  syscall.Signal
		want string
	}{{syscall.SIGUSR1, "got-usr1"}, {syscall.SIGHUP, "got-hup"}} {
		if err := e.rt.Signal("sig", s.sig); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 5*time.Second, s.want, func() (bool, string) { return strings.Contains(e.logs(t, "sig", Stdout), s.want), "" })
	}
	// A stop with another signal: the program's INT handler exits 7.
	if err := e.rt.StopSignal(context.Background(), "sig", syscall.SIGINT, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	info, _ := e.rt.Get("sig")
	if ex := info.LastExit; ex == nil || !ex.Stopped || ex.Reason != ReasonExited || ex.Code != 7 {
		t.Fatalf("exit %+v; want stopped, exited 7 from the INT handler", ex)
	}
	if err := e.rt.Signal("sig", syscall.SIGUSR1); err == nil {
		t.Fatal("Signal to a stopped instance succeeded")
	}
}

// TestExitStatusThroughInit: exit codes and signal deaths of the program are reported
// as before (not the init's).
func TestExitStatusThroughInit(t *testing.T) {
	e := newTestRuntime(t, nil)
	if ex := e.run(t, Spec{Name: "code", Command: []string{"sh", "-c", "exit 42"}}); ex.Reason != ReasonExited || ex.Code != 42 {
		t.Fatalf("exit 42: %+v", ex)
	}
	if ex := e.run(t, Spec{Name: "kill", Command: []string{"sh", "-c", "kill -SEGV $$"}}); ex.Reason != ReasonSignaled || ex.Code != int(syscall.SIGSEGV) {
		t.Fatalf("SIGSEGV: %+v", ex)
	}
	// The program exits; a daemon it left behind does not keep the instance running.
	if ex := e.run(t, Spec{Name: "daemon", Command: []string{"sh", "-c", "(setsid sleep 1000 &); exit 0"}}); ex.Reason != ReasonExited || ex.Code != 0 {
		t.Fatalf("daemonizing program: %+v", ex)
	}
}
