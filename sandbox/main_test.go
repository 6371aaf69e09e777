package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Init()
	if cfg := os.Getenv("SANDBOX_TEST_SUPERVISOR"); cfg != "" {
		os.Exit(testSupervisor(cfg))
	}
	code := m.Run()
	if helperPath != "" && helperErr == nil {
		os.RemoveAll(filepath.Dir(helperPath))
	}
	os.Exit(code)
}

// testSupervisor is a separate supervisor process for TestReadoptionAcrossProcesses:
// it starts instance "outlive" and exits without stopping it.
func testSupervisor(cfgJSON string) int {
	var cfg Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return 2
	}
	rt, err := New(cfg)
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 3
	}
	if _, err := rt.Create(Spec{Name: "outlive", Command: []string{"sleep", "1.5"}, Limits: Limits{RAMMB: 32}}); err != nil {
		os.Stderr.WriteString(err.Error())
		return 4
	}
	if _, err := rt.Start("outlive"); err != nil {
		os.Stderr.WriteString(err.Error())
		return 5
	}
	rt.Close()
	return 0
}

// requireRoot skips unless root; with CONSTELLATION_TEST_REQUIRE_ROOT=1 it fails instead.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root (CONSTELLATION_TEST_REQUIRE_ROOT=1)")
	}
	t.Skip("needs root")
}

func randName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testEnv is a runtime over a fresh state dir with a code dir under an allowed root.
type testEnv struct {
	rt    *Runtime
	cfg   Config
	code  string // allowed code root with a code dir "app"
	state string
}

// newTestRuntime creates a runtime whose cgroups, data image and state are removed in
// t.Cleanup.
func newTestRuntime(t testing.TB, mut func(*Config)) *testEnv {
	t.Helper()
	requireRoot(t)
	state := t.TempDir()
	codeRoot := t.TempDir()
	os.Chmod(codeRoot, 0o755)
	bridge, subnet := testBridge(t)
	cfg := Config{
		StateDir:     state,
		CodeRoots:    []string{codeRoot},
		CgroupParent: randName("constellation-test-"),
		DataImageMB:  1024,
		Bridge:       bridge,
		BridgeSubnet: subnet,
	}
	if mut != nil {
		mut(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &testEnv{rt: rt, cfg: cfg, code: codeRoot, state: state}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A test may have replaced the runtime (re-adoption): tear down the latest.
		if err := e.rt.Teardown(ctx); err != nil {
			t.Errorf("Teardown: %v", err)
		}
	})
	return e
}

// codeDir makes a code directory with the given files (name -> content; names ending
// in .sh or without extension are executable).
func (e *testEnv) codeDir(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(e.code, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, c := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// helperBinary builds testdata/helper (static) once per test run.
func helperBinary(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sandbox-helper-")
		if err != nil {
			helperErr = err
			return
		}
		helperPath = filepath.Join(dir, "helper")
		cmd := exec.Command("go", "build", "-o", helperPath, "./testdata/helper")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = err
			helperPath = string(out)
		}
	})
	if helperErr != nil {
		t.Fatalf("build helper: %v: %s", helperErr, helperPath)
	}
	return helperPath
}

// withHelper copies the helper binary into a code dir.
func (e *testEnv) withHelper(t testing.TB, name string) string {
	t.Helper()
	dir := e.codeDir(t, name, nil)
	b, err := os.ReadFile(helperBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "helper"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (e *testEnv) run(t testing.TB, spec Spec) Exit {
	t.Helper()
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	if _, err := e.rt.Start(spec.Name); err != nil {
		t.Fatalf("Start(%s): %v", spec.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex, err := e.rt.Wait(ctx, spec.Name)
	if err != nil {
		t.Fatalf("Wait(%s): %v", spec.Name, err)
	}
	return ex
}

func (e *testEnv) logs(t testing.TB, name string, s Stream) string {
	t.Helper()
	rc, err := e.rt.Logs(context.Background(), name, LogOptions{Stream: s})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
