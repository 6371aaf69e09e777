//go:build unix

package mesh

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

func execEndpoint(hc string) Endpoint {
	return Endpoint{Rec: EndpointRecord{Service: "db", Host: "127.0.0.1", Port: 5432, HealthCheck: hc}}
}

// TestExecCheckPassFail: exit 0 passes, another status fails with the command's first line
// of output in the reason; the command sees a clean environment naming the endpoint.
func TestExecCheckPassFail(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MESH_TEST_SECRET", "leak")
	out := filepath.Join(dir, "env")
	script := filepath.Join(dir, "check")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$1\"\n[ -e \"$2\" ] && exit 0\necho \"no $2 here\"\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	flag := filepath.Join(dir, "ok")
	e := execEndpoint("exec:" + script + " " + out + " " + flag)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, why := execCheck(ctx, e)
	if ok || !strings.Contains(why, "exit status 3") || !strings.Contains(why, "no "+flag+" here") {
		t.Fatalf("failing check: ok=%v why=%q", ok, why)
	}
	env, _ := os.ReadFile(out)
	if strings.Contains(string(env), "MESH_TEST_SECRET") || !strings.Contains(string(env), "CONSTELLATION_ENDPOINT=127.0.0.1:5432") {
		t.Fatalf("environment of the check:\n%s", env)
	}
	os.WriteFile(flag, nil, 0o644)
	if ok, why := execCheck(ctx, e); !ok {
		t.Fatalf("passing check failed: %s", why)
	}
	if ok, why := execCheck(ctx, execEndpoint("exec:no-such-command-xyz")); ok || !strings.Contains(why, "not found") {
		t.Fatalf("missing command: ok=%v why=%q", ok, why)
	}
}

// TestExecCheckKilledAtTimeout: a check that hangs, with a child that hangs too, is killed
// at the timeout with its whole process group.
func TestExecCheckKilledAtTimeout(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	script := filepath.Join(dir, "hang")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 300 &\necho $! > \"$1\"\nwait\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	ok, why := execCheck(ctx, execEndpoint("exec:"+script+" "+pidFile))
	if ok || !strings.Contains(why, "killed at the health check timeout") {
		t.Fatalf("hanging check: ok=%v why=%q", ok, why)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the check's child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill(0)
	}
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
}

func TestValidateExecCheck(t *testing.T) {
	for _, hc := range []string{"exec:", "exec:   ", "exec:bin/x", "exec:/bin/true\n/bin/false", "exec:" + strings.Repeat("a ", 600)} {
		r := api.MeshRegisterRequest{Name: "db", Port: 5432, Protocol: "tcp", HealthCheck: hc}
		if err := validateRegister(&r); err == nil || !strings.Contains(err.Error(), "health_check") {
			t.Errorf("%q: %v", hc, err)
		}
	}
	for _, p := range []string{"tcp", "http"} {
		r := api.MeshRegisterRequest{Name: "db", Port: 5432, Protocol: p, HealthCheck: "exec:pg_isready -q"}
		if err := validateRegister(&r); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func FuzzParseExecCheck(f *testing.F) {
	f.Add("exec:/usr/bin/pg_isready -q -h 127.0.0.1")
	f.Add("exec:")
	f.Add("exec:a/b c")
	f.Fuzz(func(t *testing.T, hc string) {
		argv, err := parseExecCheck(hc)
		if err != nil {
			return
		}
		if len(argv) == 0 || len(argv) > execMaxArgs || len(hc) > execMaxLen {
			t.Fatalf("accepted %q as %q", hc, argv)
		}
		for _, a := range argv {
			if a == "" || strings.ContainsAny(a, " \t\r\n\x00") {
				t.Fatalf("accepted %q with word %q", hc, a)
			}
		}
	})
}
