package sandbox

import (
	"strings"
	"testing"
)

func TestSmoke(t *testing.T) {
	e := newTestRuntime(t, nil)
	ex := e.run(t, Spec{Name: "smoke", Command: []string{"sh", "-c", "echo pid=$$; id; hostname; ls /proc | grep -c '^[0-9]'; pwd; echo err >&2"}})
	out := e.logs(t, "smoke", Stdout)
	t.Logf("exit %+v\n%s\nstderr: %s", ex, out, e.logs(t, "smoke", Stderr))
	if !strings.Contains(out, "pid=1") {
		t.Fatalf("not pid 1")
	}
}
