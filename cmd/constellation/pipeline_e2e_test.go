package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/internal/testutil"
)

// TestDataPipelineEndToEnd runs examples/data-pipeline on two nodes: raw files put on
// alpha, the pipeline driven on beta (one worker instance per file, spread over both
// nodes, each with --mount-fs /cluster/data:/data), the results read on alpha with fs get. Then an
// attacker instance, root inside, tries to get out of its views: a write to a :ro view,
// ".." out of the view, a remount read-write, a view of a sandbox path.
func TestDataPipelineEndToEnd(t *testing.T) {
	fuseRequireRoot(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	t.Cleanup(func() { // after the nodes are killed: their instances and cgroups
		for _, d := range []string{dirA, dirB} {
			if r := run(t, "teardown", "--data-dir", d); r.code != 0 {
				t.Logf("teardown %s: %s", d, r.stderr)
			}
		}
	})
	portA, portB := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	startPeer(t, dirA, "--node", "alpha", "--cluster", "pipe", "--bind", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "64")
	startPeer(t, dirB, "--node", "beta", "--cluster", "pipe", "--bind", fmt.Sprintf("127.0.0.1:%d", portB),
		"--join", fmt.Sprintf("127.0.0.1:%d", portA), "--dfs-capacity-mb", "64")
	detachAllUnder(t, dirA, dirB)
	waitJSON(t, 30*time.Second, "alpha sees 2 nodes alive", func(r result) bool {
		var st map[string]any
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st["nodes_alive"] == float64(2)
	}, "status", "--json", "--data-dir", dirA)

	raw := map[string]string{
		"one.txt":   "first line\nsecond line here\n",
		"two.csv":   "a,b,c\n1,2,3\n4,5,6\n",
		"three.log": "only one line without newline",
	}
	for name, content := range raw {
		local := filepath.Join(t.TempDir(), name)
		os.WriteFile(local, []byte(content), 0o644)
		waitJSON(t, 30*time.Second, "put "+name+" on alpha", func(result) bool { return true },
			"fs", "put", local, "/cluster/data/raw/"+name, "--replication", "2", "--json", "--data-dir", dirA)
	}
	waitJSON(t, 15*time.Second, "beta lists the raw files", func(r result) bool {
		return strings.Count(r.stdout, "/cluster/data/raw/") == 3
	}, "fs", "ls", "/cluster/data/raw", "--data-dir", dirB)

	script, err := filepath.Abs("../../examples/data-pipeline/pipeline.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", script)
	cmd.Env = append(testutil.CleanEnv(), "C7="+binary(t)+" --data-dir "+dirB)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pipeline.sh on beta: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "on node alpha") || !strings.Contains(string(out), "on node beta") {
		t.Errorf("the workers did not run on both nodes:\n%s", out)
	}
	for name, content := range raw {
		if !strings.Contains(string(out), "processed "+name+" on node ") {
			t.Errorf("pipeline output lacks the worker of %s:\n%s", name, out)
		}
		lines := strings.Count(content, "\n")
		want := fmt.Sprintf("file: %s\nlines: %d\nwords: %d\nbytes: %d\nfirst: %s\n", name, lines,
			len(strings.Fields(content)), len(content), strings.ToUpper(strings.SplitN(content, "\n", 2)[0]))
		local := filepath.Join(t.TempDir(), name+".out")
		var r result
		testutil.WaitFor(t, 15*time.Second, "alpha gets the result of "+name, func() (bool, string) {
			r = run(t, "fs", "get", "/cluster/data/processed/"+name+".out", local, "--data-dir", dirA)
			got, _ := os.ReadFile(local)
			return r.code == 0 && string(got) == want, fmt.Sprintf("exit %d %s: %q, want %q", r.code, r.stderr, got, want)
		})
	}
	if r := run(t, "fs", "ls", "-R", "/cluster/data/processed", "--data-dir", dirA); strings.Contains(r.stdout, ".part") {
		t.Errorf("a temporary result was left: %s", r.stdout)
	}
	if r := run(t, "list", "--data-dir", dirB); strings.Contains(r.stdout, "processor-") {
		t.Errorf("workers left after the pipeline: %s", r.stdout)
	}
	for _, d := range []string{dirA, dirB} {
		if r := run(t, "fs", "mounts", "--json", "--data-dir", d); strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("views left on %s after the workers were removed: %s", d, r.stdout)
		}
	}

	// the attacker: root inside, a read-only view of raw/ and a writable one of scratch/
	attack := `set +e
echo x > /raw/one.txt; echo "write-ro:$?"
rm /raw/two.csv; echo "rm-ro:$?"
mkdir /raw/d; echo "mkdir-ro:$?"
mount -o remount,rw /raw; echo "remount:$?"
umount /raw; echo "umount:$?"
echo x > /scratch/../../escape; echo "dotdot:$?"
ls /scratch/.. | tr '\n' ' '; echo
echo ok > /scratch/mine; echo "write-rw:$?"
ls /scratch; echo "end"`
	if r := run(t, "create", "--name", "attacker", "--uid", "0", "--network", "none",
		"--mount-fs", "/cluster/data/raw:/raw:ro", "--mount-fs", "/cluster/scratch:/scratch",
		"--data-dir", dirB, "--", "/bin/sh", "-c", attack); r.code != 0 {
		t.Fatalf("create attacker: %s", r.stderr)
	}
	run(t, "wait", "attacker", "--data-dir", dirB)
	logs := run(t, "logs", "attacker", "--data-dir", dirB).stdout
	for _, want := range []string{"write-ro:2", "rm-ro:1", "mkdir-ro:1", "remount:32", "umount:32", "write-rw:0", "end"} {
		if !strings.Contains(logs, want) {
			t.Errorf("attacker: no %q in its output:\n%s", want, logs)
		}
	}
	if !strings.Contains(logs, "Read-only file system") {
		t.Errorf("the ro view did not answer EROFS:\n%s", logs)
	}
	if strings.Contains(logs, "dotdot:0") {
		// ".." from /scratch is the instance's own root, never the node's
		if _, err := os.Stat("/escape"); err == nil {
			os.Remove("/escape")
			t.Errorf("the attacker wrote /escape on the host")
		}
	}
	if r := run(t, "fs", "cat", "/cluster/data/raw/one.txt", "--data-dir", dirA); r.stdout != raw["one.txt"] {
		t.Errorf("one.txt after the attack: %q", r.stdout)
	}
	if r := run(t, "fs", "cat", "/cluster/scratch/mine", "--data-dir", dirA); r.stdout != "ok\n" {
		t.Errorf("the rw view's write: %q %s", r.stdout, r.stderr)
	}
	if r := run(t, "fs", "ls", "-R", "/", "--data-dir", dirA); strings.Contains(r.stdout, "escape") {
		t.Errorf("the attacker wrote outside its views: %s", r.stdout)
	}
	run(t, "rm", "attacker", "--data-dir", dirB)

	// bad --mount-fs values: clear errors, nothing created
	for _, tc := range []struct{ spec, want string }{
		{"/cluster/data", "want PREFIX:TARGET"},
		{"/cluster/data:/proc/x", "/proc"},
		{"/cluster/data:/run/secrets", "/run/secrets"},
		{"/cluster/data:/data/../etc", `".."`},
		{"cluster:/data", "not absolute"},
		{"/cluster/../x:/data", "not resolved"},
		{"/cluster/data:/data:rx", "want PREFIX:TARGET"},
		{"/cluster/data:relative", "not absolute"},
	} {
		r := run(t, "create", "--name", "bad", "--mount-fs", tc.spec, "--data-dir", dirB, "--", "true")
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("--mount-fs %s: exit %d, stderr %q; want an error containing %q", tc.spec, r.code, r.stderr, tc.want)
		}
	}
	if r := run(t, "create", "--name", "bad", "--mount-fs", "/a:/data", "--mount-fs", "/b:/data", "--data-dir", dirB, "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "two mounts at /data") {
		t.Errorf("two views at one target: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, "list", "--data-dir", dirB); strings.Contains(r.stdout, "bad") {
		t.Errorf("a refused create left an instance: %s", r.stdout)
	}
}
