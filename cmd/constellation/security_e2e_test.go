package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestCLITokens drives tokens and the audit log through the binary: an operator token
// created on the socket works over TCP, is refused what its role lacks (403 naming the
// permission), is refused once revoked (401 with the reason); the audit log names the
// token for its mutating calls, verifies, and detects an edited line.
func TestCLITokens(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	port, apiPort := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	startPeer(t, dir, "--node", "alpha", "--cluster", "sec", "--bind", fmt.Sprintf("127.0.0.1:%d", port),
		"--api-listen", fmt.Sprintf("127.0.0.1:%d", apiPort))
	waitJSON(t, 30*time.Second, "alpha answers", func(r result) bool { return strings.Contains(r.stdout, `"alpha"`) }, "status", "--json", "--data-dir", dir)
	fpb, err := os.ReadFile(filepath.Join(dir, "api.fingerprint"))
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.TrimSpace(string(fpb))
	addr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	empty := t.TempDir()
	tcp := func(tok string, args ...string) result {
		return run(t, append([]string{"--api", addr, "--data-dir", empty, "--api-token", tok, "--api-fingerprint", fp}, args...)...)
	}

	if r := run(t, "token", "create", "--name", "ci", "--role", "root", "--data-dir", dir); r.code == 0 || !strings.Contains(r.stderr, `unknown role "root"`) {
		t.Errorf("token create with an unknown role: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, "role", "create", "x", "--rule", "instances:delete", "--data-dir", dir); r.code == 0 || !strings.Contains(r.stderr, `unknown verb "delete"`) {
		t.Errorf("role with an unknown verb: exit %d %s", r.code, r.stderr)
	}
	r := run(t, "token", "create", "--name", "ci", "--role", "operator", "--ttl", "1h", "--json", "--data-dir", dir)
	var created struct{ ID, Secret string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &created) != nil || !strings.HasPrefix(created.Secret, "cst_") {
		t.Fatalf("token create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sec := created.Secret
	if r := tcp(sec, "whoami"); r.code != 0 || !strings.Contains(r.stdout, "token ci, role operator") {
		t.Errorf("whoami with the token: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := tcp(sec, "create", "--name", "job", "--no-start", "--network", "none", "--", "true"); r.code != 0 {
		t.Errorf("create with the operator token: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { run(t, "rm", "--grace", "0s", "job", "--data-dir", dir) }) // before the data dir goes
	if r := tcp(sec, "token", "create", "--name", "more", "--role", "admin"); r.code == 0 || !strings.Contains(r.stderr, "tokens:write") {
		t.Errorf("token create with the operator token: exit %d %s; want 403 naming tokens:write", r.code, r.stderr)
	}
	if r := run(t, "token", "list", "--data-dir", dir); r.code != 0 || !strings.Contains(r.stdout, created.ID) || strings.Contains(r.stdout, sec[len(sec)-64:]) {
		t.Errorf("token list: exit %d\n%s", r.code, r.stdout)
	}
	if r := run(t, "token", "revoke", "ci", "--data-dir", dir); r.code != 0 {
		t.Errorf("revoke: exit %d %s", r.code, r.stderr)
	}
	if r := tcp(sec, "status"); r.code == 0 || !strings.Contains(r.stderr, "token revoked") {
		t.Errorf("status with the revoked token: exit %d %s; want 401 token revoked", r.code, r.stderr)
	}

	// Namespaces: create with a quota and an expiry, list, refuse a duplicate, delete,
	// refuse creates in the deleted namespace.
	if r := run(t, "namespace", "create", "team-x", "--max-cpu-cores", "2", "--max-instances", "3", "--auto-delete-after", "1h", "--data-dir", dir); r.code != 0 || !strings.Contains(r.stdout, "expires") {
		t.Errorf("namespace create: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "namespace", "list", "--data-dir", dir); r.code != 0 || !strings.Contains(r.stdout, "team-x") || !strings.Contains(r.stdout, "active") {
		t.Errorf("namespace list: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "namespace", "create", "team-x", "--data-dir", dir); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("namespace create twice: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, "namespace", "delete", "team-x", "--data-dir", dir); r.code != 0 {
		t.Errorf("namespace delete: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, "--data-dir", dir, "create", "--name", "late", "--namespace", "team-x", "--no-start", "--network", "none", "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "namespace team-x was deleted") {
		t.Errorf("create in a deleted namespace: exit %d %s", r.code, r.stderr)
	}
	// A namespace never created: creates of every kind are refused naming it and the
	// command that creates it; nothing is made. default always exists.
	for _, args := range [][]string{
		{"create", "--name", "ghost", "--namespace", "nowhere", "--no-start", "--network", "none", "--", "true"},
		{"token", "create", "--name", "ghost", "--role", "operator", "--namespace", "nowhere"},
	} {
		if r := run(t, append([]string{"--data-dir", dir}, args...)...); r.code == 0 || !strings.Contains(r.stderr, "namespace nowhere does not exist") || !strings.Contains(r.stderr, "constellation namespace create nowhere") {
			t.Errorf("%v in a namespace never created: exit %d %s; want namespace nowhere does not exist + how to create it", args, r.code, r.stderr)
		}
	}
	if r := run(t, "--data-dir", dir, "list", "--json"); strings.Contains(r.stdout, "ghost") {
		t.Errorf("a refused create left an instance: %s", r.stdout)
	}
	if r := run(t, "--data-dir", dir, "create", "--name", "indefault", "--namespace", "default", "--no-start", "--network", "none", "--", "true"); r.code != 0 {
		t.Errorf("create in default: exit %d %s", r.code, r.stderr)
	}
	t.Cleanup(func() { run(t, "rm", "--grace", "0s", "indefault", "--data-dir", dir) })

	r = run(t, "audit", "--who", "ci", "--json", "--data-dir", dir)
	var res struct {
		Entries []struct {
			Caller    string
			Route     string
			RequestID string `json:"request_id"`
			Status    int
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || len(res.Entries) < 2 {
		t.Fatalf("audit --who ci: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if e := res.Entries[0]; e.Route != "POST /v1/instances" || e.Status != 201 || e.RequestID == "" {
		t.Errorf("first audit entry of ci: %+v; want the create, 201, with a request ID", e)
	}
	if !strings.Contains(r.stdout, `"status": 403`) {
		t.Errorf("the refused token create is not in the audit log:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, sec[len(sec)-64:]) {
		t.Error("the audit log holds the token's secret")
	}
	if r := run(t, "audit", "verify", "--data-dir", dir); r.code != 0 || !strings.Contains(r.stdout, "alpha: ok") {
		t.Errorf("audit verify: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	logf := filepath.Join(dir, "audit", "audit.log")
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logf, []byte(strings.Replace(string(b), `"status":201`, `"status":200`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "audit", "verify", "--data-dir", dir); r.code != 1 || !strings.Contains(r.stdout, "FAILED") || !strings.Contains(r.stdout, "changed") {
		t.Errorf("audit verify of an edited log: exit %d %s%s; want exit 1 naming the changed entry", r.code, r.stdout, r.stderr)
	}
}

// TestCLISecrets stores a secret, gives it to an instance (real sandbox: root), checks the
// instance sees it, and greps every output for the value: list and show (tables and
// --json), secrets list, events, logs, the audit log, error texts and the node's debug log.
func TestCLISecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if os.Geteuid() != 0 && os.Getenv("CONSTELLATION_TEST_REQUIRE_ROOT") == "" {
		t.Skip("instances need root")
	}
	dir := t.TempDir()
	port, apiPort := testutil.FreePort(t, nil), testutil.FreePort(t, nil)
	p := startPeer(t, dir, "--node", "alpha", "--cluster", "sec", "--cluster-key", "test-cluster-key",
		"--bind", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "debug", "--api-listen", fmt.Sprintf("127.0.0.1:%d", apiPort))
	waitJSON(t, 30*time.Second, "alpha answers", func(r result) bool { return strings.Contains(r.stdout, `"alpha"`) }, "status", "--json", "--data-dir", dir)
	value := fmt.Sprintf("s3cr3t-%d", time.Now().UnixNano())
	sum := sha256.Sum256([]byte(value))
	d := []string{"--data-dir", dir}
	var outputs []string
	runD := func(args ...string) result {
		t.Helper()
		r := run(t, append(append([]string{}, d...), args...)...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	if r := runD("secrets", "set", "1bad", "x"); r.code == 0 || !strings.Contains(r.stderr, "identifier") {
		t.Errorf("bad secret name: exit %d %s", r.code, r.stderr)
	}
	if r := runD("secrets", "set", "db_password", value); r.code != 0 || !strings.Contains(r.stdout, "version 1") {
		t.Fatalf("secrets set: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := runD("create", "--name", "nosecret", "--secret", "missing", "--network", "none", "--", "true"); r.code == 0 || !strings.Contains(r.stderr, `secret "missing" does not exist`) {
		t.Errorf("create with an unknown secret: exit %d %s", r.code, r.stderr)
	}
	if r := runD("show", "nosecret"); r.code == 0 {
		t.Error("a create refused for its secret left an instance")
	}
	t.Cleanup(func() { run(t, "rm", "--grace", "0s", "app", "--data-dir", dir) })
	if r := runD("create", "--name", "app", "--secret", "db_password", "--network", "none", "--",
		"sh", "-c", `printf %s "$db_password" | sha256sum; sleep 1000`); r.code != 0 {
		t.Fatalf("create --secret: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	want := hex.EncodeToString(sum[:])
	testutil.WaitFor(t, 20*time.Second, "the instance prints the secret's hash", func() (bool, string) {
		r := run(t, "logs", "app", "--data-dir", dir)
		return strings.Contains(r.stdout, want), r.stdout + r.stderr
	})
	// As a file: /run/secrets/db_password, mode 0400, the instance's uid, a read-only
	// noexec/nosuid/nodev tmpfs; not in the environment.
	t.Cleanup(func() { run(t, "rm", "--grace", "0s", "fileapp", "--data-dir", dir) })
	if r := runD("create", "--name", "fileapp", "--secret", "db_password:file", "--network", "none", "--",
		"sh", "-c", `echo "mode=$(stat -c '%a:%u:%g' /run/secrets/db_password) id=$(id -u):$(id -g) env=$(env | grep -c db_password)"; echo "sum=$(sha256sum < /run/secrets/db_password)"; grep ' /run/secrets ' /proc/mounts; echo end; sleep 1000`); r.code != 0 {
		t.Fatalf("create --secret NAME:file: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	var fileOut string
	testutil.WaitFor(t, 20*time.Second, "fileapp prints its secret file's mode, hash and mount", func() (bool, string) {
		r := run(t, "logs", "fileapp", "--data-dir", dir)
		fileOut = r.stdout
		return strings.Contains(r.stdout, "end"), r.stdout + r.stderr
	})
	var mode, owner, id string
	for _, f := range strings.Fields(fileOut) {
		if m, ok := strings.CutPrefix(f, "mode="); ok {
			mode, owner, _ = strings.Cut(m, ":")
		}
		if v, ok := strings.CutPrefix(f, "id="); ok {
			id = v
		}
	}
	if mode != "400" || owner == "" || owner != id || !strings.Contains(fileOut, "env=0") || !strings.Contains(fileOut, "sum="+want) {
		t.Errorf("the secret file: mode %q owner %q (instance %q); want mode 400 owned by the instance, its hash, not in env:\n%s", mode, owner, id, fileOut)
	}
	var mountLine string
	for _, l := range strings.Split(fileOut, "\n") {
		if strings.Contains(l, " /run/secrets ") {
			mountLine = l
		}
	}
	for _, w := range []string{"tmpfs /run/secrets tmpfs ro,", "nosuid", "nodev", "noexec"} {
		if !strings.Contains(mountLine, w) {
			t.Errorf("/run/secrets mount %q: want %q", mountLine, w)
		}
	}
	t.Logf("fileapp: %s", fileOut)
	outputs = append(outputs, fileOut)
	// get is the one output that holds the value: not collected.
	if r := run(t, "secrets", "get", "db_password", "--data-dir", dir); r.code != 0 || r.stdout != value {
		t.Errorf("secrets get = %q (exit %d); want the value", r.stdout, r.code)
	}
	if r := runD("secrets", "rotate-key"); r.code != 0 || !strings.Contains(r.stdout, "1 versions of 1 secrets") {
		t.Errorf("rotate-key: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	checkRevokeEndsLogs(t, dir, fmt.Sprintf("127.0.0.1:%d", apiPort))
	if r := run(t, "secrets", "get", "db_password", "--version", "1", "--data-dir", dir); r.code != 0 || r.stdout != value {
		t.Errorf("secrets get --version 1 after rotation = %q (exit %d)", r.stdout, r.code)
	}
	// The instance gets the value decrypted with the new key generation at its next start.
	if r := runD("restart", "app"); r.code != 0 {
		t.Errorf("restart: exit %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"show", "app"}, {"show", "app", "--json"}, {"logs", "app"},
		{"show", "fileapp", "--json"}, {"logs", "fileapp"},
		{"secrets", "list"}, {"secrets", "list", "--json"}, {"audit", "--json"}, {"secrets", "get", "db_password", "--namespace", "other"}} {
		runD(args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var evs strings.Builder
	_ = api.NewClient(dir, "", "").Events(ctx, nil, true, 0, func(e api.Event) error {
		b, _ := json.Marshal(e)
		evs.Write(b)
		return nil
	})
	outputs = append(outputs, evs.String(), p.stderr.String())
	for _, f := range []string{"audit/audit.log", "state.db"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		outputs = append(outputs, string(b))
	}
	for i, o := range outputs {
		if strings.Contains(o, value) {
			t.Errorf("output %d holds the secret's value:\n%s", i, o)
		}
	}
	if !strings.Contains(evs.String(), `"app"`) {
		t.Errorf("the event stream has no event of app (the grep saw nothing): %.500s", evs.String())
	}
}

// checkRevokeEndsLogs: a viewer token follows app's logs over TCP (logs -f); revoking the
// token ends the stream and the command.
func checkRevokeEndsLogs(t *testing.T, dir, addr string) {
	t.Helper()
	r := run(t, "token", "create", "--name", "tail", "--role", "viewer", "--json", "--data-dir", dir)
	var tok struct{ Secret string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil {
		t.Fatalf("token create: exit %d %s%s", r.code, r.stdout, r.stderr)
	}
	fp, _ := os.ReadFile(filepath.Join(dir, "api.fingerprint"))
	cmd := exec.Command(binary(t), "--api", addr, "--data-dir", t.TempDir(), "--api-token", tok.Secret,
		"--api-fingerprint", strings.TrimSpace(string(fp)), "logs", "-f", "app")
	cmd.Env = testutil.CleanEnv()
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	testutil.WaitFor(t, 10*time.Second, "logs -f shows the hash line", func() (bool, string) {
		s := out.String()
		return strings.Contains(s, " -"), s
	})
	select {
	case err := <-done:
		t.Fatalf("logs -f ended before the revocation: %v %s", err, out.String())
	default:
	}
	if r := run(t, "token", "revoke", "tail", "--data-dir", dir); r.code != 0 {
		t.Fatalf("revoke: %s", r.stderr)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("logs -f still runs 10 s after its token was revoked: %s", out.String())
	}
}
