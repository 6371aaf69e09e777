package sandbox

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFiles: StartFiles' files appear in /run/secrets (0400, the instance's uid,
// read-only noexec tmpfs); the program cannot change or add files there; an instance
// without files has no /run/secrets; the value is nowhere in the runtime's state dir.
func TestSecretFiles(t *testing.T) {
	const value = "v-3c9d1f-secret-file"
	e := newTestRuntime(t, func(c *Config) {
		c.StartFiles = func(name string) (map[string][]byte, error) {
			if name == "sf" {
				return map[string][]byte{"pw": []byte(value)}, nil
			}
			return nil, nil
		}
	})
	e.run(t, Spec{Name: "sf", Command: []string{"sh", "-c", `cat /run/secrets/pw; echo; stat -c '%a %u' /run/secrets/pw; id -u; ` +
		`(echo x > /run/secrets/pw) 2>/dev/null && echo WROTE; (echo x > /run/secrets/new) 2>/dev/null && echo ADDED; ` +
		`chmod 644 /run/secrets/pw 2>/dev/null && echo CHMOD; grep ' /run/secrets ' /proc/mounts`}})
	out := e.logs(t, "sf", Stdout)
	lines := strings.Split(out, "\n")
	if len(lines) < 4 || lines[0] != value {
		t.Fatalf("instance output %q; want the value first", out)
	}
	f := strings.Fields(lines[1])
	if len(f) != 2 || f[0] != "400" || f[1] != strings.TrimSpace(lines[2]) {
		t.Errorf("secret file mode/owner %q, instance uid %q; want 400 owned by the instance", lines[1], lines[2])
	}
	for _, bad := range []string{"WROTE", "ADDED", "CHMOD"} {
		if strings.Contains(out, bad) {
			t.Errorf("the instance could change /run/secrets (%s):\n%s", bad, out)
		}
	}
	for _, w := range []string{"tmpfs /run/secrets tmpfs ro,", "nosuid", "nodev", "noexec"} {
		if !strings.Contains(out, w) {
			t.Errorf("/run/secrets mount: want %q in\n%s", w, out)
		}
	}
	e.run(t, Spec{Name: "plain", Command: []string{"sh", "-c", "ls /run/secrets 2>&1 || echo NONE"}})
	if out := e.logs(t, "plain", Stdout); !strings.Contains(out, "NONE") {
		t.Errorf("an instance without secret files sees /run/secrets: %q", out)
	}
	filepath.WalkDir(e.cfg.StateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), value) && !strings.Contains(p, "stdout") {
			t.Errorf("the secret's value is stored in %s", p)
		}
		return nil
	})
}
