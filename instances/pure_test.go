package instances

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
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

func TestInstanceTokens(t *testing.T) {
	a := &instanceAPI{secret: bytes.Repeat([]byte{7}, 32)}
	tok := a.token("web.1")
	if name, ok := a.instanceOf(tok); !ok || name != "web.1" {
		t.Fatalf("instanceOf(token(web.1)) = %q, %v", name, ok)
	}
	other := &instanceAPI{secret: bytes.Repeat([]byte{8}, 32)}
	for _, bad := range []string{"", "ci1.", "ci1.web.1", tok + "0", strings.Replace(tok, "web.1", "web.2", 1), other.token("web.1")} {
		if name, ok := a.instanceOf(bad); ok {
			t.Errorf("instanceOf(%q) accepted as %q", bad, name)
		}
	}
}
