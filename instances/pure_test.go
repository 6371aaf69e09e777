package instances

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sandbox"
)

func TestParseRestart(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    sandbox.RestartPolicy
		wantErr bool
	}{
		{"", sandbox.RestartPolicy{Policy: "never"}, false},
		{"never", sandbox.RestartPolicy{Policy: "never"}, false},
		{"always", sandbox.RestartPolicy{Policy: "always"}, false},
		{"on-failure", sandbox.RestartPolicy{Policy: "on-failure"}, false},
		{"on-failure:5", sandbox.RestartPolicy{Policy: "on-failure", MaxAttempts: 5}, false},
		{"on-failure:0", sandbox.RestartPolicy{}, true},
		{"on-failure:x", sandbox.RestartPolicy{}, true},
		{"always:3", sandbox.RestartPolicy{}, true},
		{"sometimes", sandbox.RestartPolicy{}, true},
	} {
		got, err := ParseRestart(c.in)
		if (err != nil) != c.wantErr || (!c.wantErr && got != c.want) {
			t.Errorf("ParseRestart(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
		}
		if err == nil && restartString(got) != map[string]string{"": "never"}[c.in]+c.in && c.in != "" {
			t.Errorf("restartString(ParseRestart(%q)) = %q", c.in, restartString(got))
		}
	}
}

func TestStatusOf(t *testing.T) {
	exit := func(r sandbox.Reason, code int, stopped bool) *sandbox.Exit {
		return &sandbox.Exit{Reason: r, Code: code, Stopped: stopped}
	}
	for _, c := range []struct {
		state sandbox.State
		last  *sandbox.Exit
		want  string
		code  *int
	}{
		{sandbox.StateCreated, nil, api.InstanceCreated, nil},
		{sandbox.StateRunning, nil, api.InstanceRunning, nil},
		{sandbox.StateRestarting, exit(sandbox.ReasonExited, 1, false), api.InstanceStarting, ptr(1)},
		{sandbox.StateExited, exit(sandbox.ReasonExited, 0, false), api.InstanceExited, ptr(0)},
		{sandbox.StateExited, exit(sandbox.ReasonExited, 3, false), api.InstanceFailed, ptr(3)},
		{sandbox.StateExited, exit(sandbox.ReasonSignaled, 15, true), api.InstanceStopped, ptr(15)},
		{sandbox.StateExited, exit(sandbox.ReasonSignaled, 9, false), api.InstanceFailed, ptr(9)},
		{sandbox.StateExited, exit(sandbox.ReasonOOMKilled, 9, false), api.InstanceOOMKilled, ptr(9)},
		{sandbox.StateExited, exit(sandbox.ReasonOOMKilled, 9, true), api.InstanceOOMKilled, ptr(9)},
		{sandbox.StateExited, exit(sandbox.ReasonStartFailed, -1, false), api.InstanceFailed, ptr(-1)},
		{sandbox.StateExited, exit(sandbox.ReasonDiskExceeded, 9, false), api.InstanceFailed, ptr(9)},
		{sandbox.StateExited, exit(sandbox.ReasonUnknown, -1, false), api.InstanceExited, ptr(-1)},
	} {
		got, code, _ := statusOf(sandbox.Info{State: c.state, LastExit: c.last})
		if got != c.want || (code == nil) != (c.code == nil) || (code != nil && *code != *c.code) {
			t.Errorf("statusOf(%s, %+v) = %s, %v; want %s, %v", c.state, c.last, got, code, c.want, c.code)
		}
	}
}

func TestOlderCreate(t *testing.T) {
	t0 := time.Unix(100, 0)
	t1 := t0.Add(time.Millisecond)
	for _, c := range []struct {
		name string
		a, b createStamp
		want bool
	}{
		{"earlier wall clock (no stamps)", createStamp{at: t0, node: "b"}, createStamp{at: t1, node: "a"}, true},
		{"later wall clock (no stamps)", createStamp{at: t1, node: "a"}, createStamp{at: t0, node: "b"}, false},
		{"tie: lower node", createStamp{at: t0, node: "a"}, createStamp{at: t0, node: "b"}, true},
		{"tie: higher node", createStamp{at: t0, node: "b"}, createStamp{at: t0, node: "a"}, false},
		// A node with a clock 1 s fast created after seeing the other create: its HLC stamp
		// is later although its wall clock says earlier.
		{"stamp wins over wall clock", createStamp{wall: 200, at: t1, node: "b"}, createStamp{wall: 100, logical: 3, at: t0, node: "a"}, false},
		{"logical counter", createStamp{wall: 100, logical: 1, node: "b"}, createStamp{wall: 100, logical: 2, node: "a"}, true},
		{"equal stamps: lower node", createStamp{wall: 100, logical: 2, node: "a"}, createStamp{wall: 100, logical: 2, node: "b"}, true},
	} {
		if got := olderCreate(c.a, c.b); got != c.want {
			t.Errorf("%s: olderCreate(%+v, %+v) = %v; want %v", c.name, c.a, c.b, got, c.want)
		}
		// Exactly one of two different creates wins.
		if olderCreate(c.a, c.b) == olderCreate(c.b, c.a) {
			t.Errorf("%s: olderCreate is not antisymmetric", c.name)
		}
	}
}

func TestDecodeFwdRequest(t *testing.T) {
	for _, c := range []struct {
		name, in string
		ok       bool
	}{
		{"stats", `{"method":"GET","path":"/v1/instances/web/stats"}`, true},
		{"create", `{"method":"POST","path":"/v1/instances","body":"e30="}`, true},
		{"logs query", `{"method":"GET","path":"/v1/instances/web/logs","query":"follow=1"}`, true},
		{"other route", `{"method":"POST","path":"/v1/send"}`, false},
		{"prefix trick", `{"method":"GET","path":"/v1/instancesX"}`, false},
		{"dot dot", `{"method":"GET","path":"/v1/instances/../status"}`, false},
		{"method", `{"method":"PUT","path":"/v1/instances/web"}`, false},
		{"unknown field", `{"method":"GET","path":"/v1/instances","admin":true}`, false},
		{"not json", `hello`, false},
		{"long query", `{"method":"GET","path":"/v1/instances","query":"` + strings.Repeat("a", 5000) + `"}`, false},
		{"caller", `{"method":"GET","path":"/v1/instances","instance":"a","instance_id":"1","grants":["instances:read"]}`, true},
		{"grants without caller", `{"method":"GET","path":"/v1/instances","grants":["instances:read"]}`, false},
		{"too many grants", `{"method":"GET","path":"/v1/instances","instance":"a","grants":[` + strings.Repeat(`"x",`, 16) + `"x"]}`, false},
	} {
		_, err := decodeFwdRequest([]byte(c.in))
		if (err == nil) != c.ok {
			t.Errorf("%s: decodeFwdRequest(%.60q) error = %v; want ok=%v", c.name, c.in, err, c.ok)
		}
	}
}
func ptr(i int) *int { return &i }

func FuzzDecodeFwdRequest(f *testing.F) {
	f.Add([]byte(`{"method":"GET","path":"/v1/instances/web/stats"}`))
	f.Add([]byte(`{"method":"POST","path":"/v1/instances","body":"e30=","instance":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeFwdRequest(b)
		if err != nil {
			return
		}
		if !strings.HasPrefix(req.Path, "/v1/instances") || strings.Contains(req.Path, "..") {
			t.Fatalf("accepted path %q", req.Path)
		}
	})
}

// TestInstanceTokens: a token is bound to the node's secret, the instance's name and its
// ID (a new instance of the same name gets another token).
func TestInstanceTokens(t *testing.T) {
	a := &instanceAPI{secret: bytes.Repeat([]byte{7}, 32)}
	tok := a.token("web.1", "id1")
	if !strings.HasPrefix(tok, "ci1.web.1.") || len(tok) != len("ci1.web.1.")+32 {
		t.Fatalf("token = %q; want ci1.web.1.<32 hex digits>", tok)
	}
	if again := a.token("web.1", "id1"); again != tok {
		t.Fatalf("token not stable: %q then %q", tok, again)
	}
	other := &instanceAPI{secret: bytes.Repeat([]byte{8}, 32)}
	for what, x := range map[string]string{"another ID": a.token("web.1", "id2"), "another name": a.token("web.2", "id1"),
		"name and ID run together": a.token("web.1i", "d1"), "another secret": other.token("web.1", "id1")} {
		if x == tok {
			t.Errorf("%s gives the same token %q", what, x)
		}
	}
}

// TestListenUnixLongPath: a socket path longer than bind allows is bound through
// /proc/self/fd and answers at its real path's directory.
func TestListenUnixLongPath(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the /proc/self/fd bind is Linux only")
	}
	dir := t.TempDir()
	for len(dir) < 120 {
		dir = filepath.Join(dir, "a-rather-long-directory-name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, socketFile)
	l, err := listenUnix(path)
	if err != nil {
		t.Fatalf("listenUnix(%d-byte path): %v", len(path), err)
	}
	defer l.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no socket at %s: %v", path, err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := net.Dial("unix", fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), socketFile))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if string(b) != "ok" {
		t.Fatalf("read %q; want ok", b)
	}
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("closing the listener removed the socket file (detach removes it): %v", err)
	}
}

func TestParseGrants(t *testing.T) {
	got, err := ParseGrants([]string{"nodes:read", "instances:read", "nodes:read"})
	if err != nil || !slices.Equal(got, []string{"instances:read", "nodes:read"}) {
		t.Fatalf("ParseGrants = %v, %v; want [instances:read nodes:read]", got, err)
	}
	if got, err := ParseGrants(nil); err != nil || got != nil {
		t.Fatalf("ParseGrants(nil) = %v, %v", got, err)
	}
	for _, bad := range []string{"instances:*", "admin", "", "Instances:read"} {
		if _, err := ParseGrants([]string{bad}); err == nil || !strings.Contains(err.Error(), "instances:create") {
			t.Errorf("ParseGrants(%q) = %v; want an error listing the known grants", bad, err)
		}
	}
}

// TestAuthorizeOp: the per-target rules (self, child, other) for every operation.
func TestAuthorizeOp(t *testing.T) {
	self := target{name: "a", id: "1"}
	child := target{name: "c", id: "3", createdBy: "a", creatorID: "1"}
	oldChild := target{name: "c", id: "4", createdBy: "a", creatorID: "0"} // of an earlier "a"
	other := target{name: "b", id: "2"}
	none := caller{name: "a", id: "1"}
	reader := caller{name: "a", id: "1", grants: []string{GrantInstancesRead}}
	manager := caller{name: "a", id: "1", grants: []string{GrantInstancesManage}}
	noID := caller{name: "a"} // a forwarded caller of a node that does not send IDs
	limits := []byte(`{"ram_mb":64}`)
	for _, c := range []struct {
		c    caller
		op   string
		t    target
		body []byte
		ok   bool
	}{
		{none, "show", self, nil, true},
		{none, "logs", self, nil, true},
		{none, "stop", self, nil, true},
		{none, "restart", self, nil, true},
		{none, "restart", self, []byte(`{"grace_s":1}`), true},
		{none, "restart", self, limits, false},
		{none, "restart", self, []byte(`{bad`), false},
		{none, "set-limits", self, limits, false},
		{none, "snapshot", self, nil, true},
		{none, "restore", self, nil, true},
		{none, "rm", self, nil, false},
		{none, "show", other, nil, false},
		{none, "rm", child, nil, true},
		{none, "set-limits", child, limits, true},
		{none, "rm", oldChild, nil, false},
		{reader, "show", other, nil, true},
		{reader, "logs", other, nil, true},
		{reader, "stop", other, nil, false},
		{manager, "show", other, nil, true},
		{manager, "stop", other, nil, true},
		{manager, "restore", other, nil, true},
		{manager, "rm", other, nil, true},
		{manager, "restart", other, limits, false},
		{manager, "set-limits", other, limits, false},
		{manager, "rm", self, nil, false},
		{noID, "show", self, nil, false},
		{none, "unknown-op", other, nil, false},
	} {
		err := authorizeOp(c.c, c.op, c.t, c.body)
		if (err == nil) != c.ok {
			t.Errorf("authorizeOp(%v, %s, %s, %s) = %v; want ok=%v", c.c.grants, c.op, c.t.name, c.body, err, c.ok)
		}
		if err != nil {
			if st, code, _ := httpapi.Status(err); st != 403 || code != "forbidden" {
				t.Errorf("authorizeOp(%s %s) error class %d %s; want 403 forbidden", c.op, c.t.name, st, code)
			}
		}
	}
}

// TestCheckCreate: children get no uid/gid, no reservation, at most the creator's grants.
func TestCheckCreate(t *testing.T) {
	c := caller{name: "a", id: "1", grants: []string{GrantInstancesCreate, GrantNodesRead}}
	for _, x := range []struct {
		req api.CreateRequest
		ok  bool
	}{
		{api.CreateRequest{Name: "x"}, true},
		{api.CreateRequest{Name: "x", Grants: []string{GrantNodesRead, GrantInstancesCreate}}, true},
		{api.CreateRequest{Name: "x", Grants: []string{GrantInstancesRead}}, false},
		{api.CreateRequest{Name: "x", UID: ptr(0)}, false},
		{api.CreateRequest{Name: "x", GID: ptr(1000)}, false},
		{api.CreateRequest{Name: "x", Reservation: "r1"}, false},
		{api.CreateRequest{Name: "x", MountFS: []string{"/cluster:/data"}}, false},
	} {
		if err := checkCreate(c, &x.req); (err == nil) != x.ok {
			t.Errorf("checkCreate(%+v) = %v; want ok=%v", x.req, err, x.ok)
		}
	}
}

// TestChildFieldsClassified: every field of a create is either one an instance may set for
// a child or one for admin callers; a new field fails here until it is classified (and is
// refused to instances meanwhile).
func TestChildFieldsClassified(t *testing.T) {
	adminFields := []string{"uid", "gid", "reservation", "publish", "host_root", "seccomp", "secrets", "mount_fs"}
	rt := reflect.TypeOf(api.CreateRequest{})
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "-" { // never decoded from a body (Deployment: set by the scheduler in process)
			continue
		}
		if !slices.Contains(childFields, name) && !slices.Contains(adminFields, name) {
			t.Errorf("create field %q is neither in childFields nor an admin field", name)
		}
	}
}
