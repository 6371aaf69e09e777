package sandbox

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var testHost = Host{CPUs: 4, MemoryMB: 8192, MaxPIDs: 4194304, DiskMB: 100000}

func TestDecodeSpec(t *testing.T) {
	tests := []struct {
		in        string
		field     string // "" = no error
		wantClass error
	}{
		{`{"name":"a","command":["sh"],"ram_mb":64,"cpu_percent":50,"restart":{"policy":"always"}}`, "", nil},
		{`{"name":"a","command":["sh"],"bogus":1}`, "bogus", ErrUnknownField},
		{`{"name":"a","restart":{"policy":"always","x":1}}`, "x", ErrUnknownField},
		{`{"name":"a","ram_mb":"lots"}`, "ram_mb", ErrInvalidSpec},
		{`{"name":"a","ram_mb":1.5}`, "ram_mb", ErrInvalidSpec},
		{`{"name":"a","command":"sh"}`, "command", ErrInvalidSpec},
		{`{"name":"a"} {"name":"b"}`, "", ErrInvalidSpec},
		{`{"name":`, "", ErrInvalidSpec},
	}
	for _, tt := range tests {
		s, err := DecodeSpec([]byte(tt.in))
		if tt.wantClass == nil {
			if err != nil {
				t.Errorf("DecodeSpec(%s) = %v; want ok", tt.in, err)
			}
			if s.Name != "a" || s.RAMMB != 64 || s.CPUPercent != 50 || s.Restart.Policy != RestartAlways {
				t.Errorf("DecodeSpec(%s) = %+v", tt.in, s)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, tt.wantClass) || !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("DecodeSpec(%s) = %v; want *FieldError of class %v", tt.in, err, tt.wantClass)
			continue
		}
		if tt.field != "" && fe.Field != tt.field {
			t.Errorf("DecodeSpec(%s) field = %q; want %q", tt.in, fe.Field, tt.field)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Spec{Name: "web-1", Command: []string{"sh"}}
	tests := []struct {
		mut   func(*Spec)
		field string
	}{
		{func(s *Spec) {}, ""},
		{func(s *Spec) { s.Name = "" }, "name"},
		{func(s *Spec) { s.Name = "../x" }, "name"},
		{func(s *Spec) { s.Name = strings.Repeat("a", 64) }, "name"},
		{func(s *Spec) { s.Command = nil }, "command"},
		{func(s *Spec) { s.Script = "x.rads" }, "script"},
		{func(s *Spec) { s.Command = nil; s.Script = "../x"; s.Code = "/c" }, "script"},
		{func(s *Spec) { s.Command = nil; s.Script = "x" }, "script"},
		{func(s *Spec) { s.Runtime = "rads" }, "runtime"},
		{func(s *Spec) { s.Code = "rel" }, "code"},
		{func(s *Spec) { s.Env = map[string]string{"A=B": "1"} }, "env"},
		{func(s *Spec) { s.CPUPercent = -1 }, "cpu_percent"},
		{func(s *Spec) { s.CPUPercent = 401 }, "cpu_percent"},
		{func(s *Spec) { s.CPUPercent = 400 }, ""},
		{func(s *Spec) { s.CPUCores = 5 }, "cpu_cores"},
		{func(s *Spec) { s.CPUCores = -1 }, "cpu_cores"},
		{func(s *Spec) { s.RAMMB = -5 }, "ram_mb"},
		{func(s *Spec) { s.RAMMB = MinRAMMB - 1 }, "ram_mb"},
		{func(s *Spec) { s.RAMMB = 1 << 40 }, "ram_mb"},
		{func(s *Spec) { s.DiskMB = -1 }, "disk_mb"},
		{func(s *Spec) { s.DiskMB = 1 << 41 }, "disk_mb"},
		{func(s *Spec) { s.PIDs = 1 }, "pids"},
		{func(s *Spec) { s.PIDs = 1 << 40 }, "pids"},
		{func(s *Spec) { s.Restart.Policy = "sometimes" }, "restart.policy"},
		{func(s *Spec) { s.Restart.MaxAttempts = -1 }, "restart.max_attempts"},
		{func(s *Spec) { u := -1; s.UID = &u }, "uid"},
		{func(s *Spec) { s.Network = "nat" }, "network"},
		{func(s *Spec) { s.Network = NetworkBridge }, ""},
		{func(s *Spec) { s.Network = NetworkNone }, ""},
		{func(s *Spec) { s.Network = NetworkIsolated }, ""},
		{func(s *Spec) { s.Network = NetworkHost }, ""},
		{func(s *Spec) { s.Publish = []Publish{{HostPort: 8080, Port: 80}} }, ""},
		{func(s *Spec) {
			s.Network = NetworkBridge
			s.Publish = []Publish{{HostPort: 53, Port: 53, Protocol: "udp"}}
		}, ""},
		{func(s *Spec) { s.Network = NetworkHost; s.Publish = []Publish{{HostPort: 8080, Port: 80}} }, "publish"},
		{func(s *Spec) { s.Network = NetworkNone; s.Publish = []Publish{{HostPort: 8080, Port: 80}} }, "publish"},
		{func(s *Spec) { s.Publish = []Publish{{HostPort: 0, Port: 80}} }, "publish"},
		{func(s *Spec) { s.Publish = []Publish{{HostPort: 1, Port: 80, Protocol: "sctp"}} }, "publish"},
		{func(s *Spec) {
			s.Publish = []Publish{{HostPort: 1, Port: 80}, {HostPort: 1, Port: 81, Protocol: "tcp"}}
		}, "publish"},
		{func(s *Spec) {
			s.Publish = []Publish{{HostPort: 1, Port: 80}, {HostPort: 1, Port: 81, Protocol: "udp"}}
		}, ""},
		{func(s *Spec) { u := 65535; s.UID = &u }, ""},
		{func(s *Spec) { u := 65536; s.UID = &u }, "uid"},
		{func(s *Spec) { g := 70000; s.GID = &g }, "gid"},
		{func(s *Spec) { u := 70000; s.UID = &u; s.HostRoot = true }, ""},
		{func(s *Spec) { s.Seccomp = SeccompDefault }, ""},
		{func(s *Spec) { s.Seccomp = SeccompUnconfined }, ""},
		{func(s *Spec) { s.Seccomp = "/etc/profile.json" }, ""},
		{func(s *Spec) { s.Seccomp = "strict" }, "seccomp"},
		{func(s *Spec) { s.Seccomp = "profile.json" }, "seccomp"},
	}
	for i, tt := range tests {
		s := ok
		tt.mut(&s)
		err := s.Validate(testHost)
		if tt.field == "" {
			if err != nil {
				t.Errorf("case %d: Validate = %v; want ok", i, err)
			}
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("case %d: Validate = %v; want field %q", i, err, tt.field)
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	exited := func(code int) Exit { return Exit{Reason: ReasonExited, Code: code} }
	tests := []struct {
		p        RestartPolicy
		e        Exit
		attempts int
		want     bool
	}{
		{RestartPolicy{}, exited(1), 0, false},
		{RestartPolicy{Policy: RestartAlways}, exited(0), 0, true},
		{RestartPolicy{Policy: RestartAlways}, Exit{Reason: ReasonSignaled, Code: 9, Stopped: true}, 0, false},
		{RestartPolicy{Policy: RestartOnFailure}, exited(0), 0, false},
		{RestartPolicy{Policy: RestartOnFailure}, exited(2), 0, true},
		{RestartPolicy{Policy: RestartOnFailure}, Exit{Reason: ReasonOOMKilled}, 0, true},
		{RestartPolicy{Policy: RestartOnFailure, MaxAttempts: 3}, exited(2), 3, false},
		{RestartPolicy{Policy: RestartOnFailure, MaxAttempts: 3}, exited(2), 2, true},
	}
	for _, tt := range tests {
		if got := tt.p.shouldRestart(tt.e, tt.attempts); got != tt.want {
			t.Errorf("%+v.shouldRestart(%+v, %d) = %v; want %v", tt.p, tt.e, tt.attempts, got, tt.want)
		}
	}
	p := RestartPolicy{BackoffMS: 100, MaxBackoffMS: 1000}
	for _, tt := range []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{0, 0, 50 * time.Millisecond},
		{0, 0.999999, 100 * time.Millisecond},
		{1, 0, 100 * time.Millisecond},
		{3, 1, 800 * time.Millisecond},
		{4, 1, 1000 * time.Millisecond},
		{60, 0, 500 * time.Millisecond},
	} {
		got := p.backoff(tt.attempt, tt.rnd).Round(time.Millisecond)
		if got != tt.want {
			t.Errorf("backoff(%d, %v) = %v; want %v", tt.attempt, tt.rnd, got, tt.want)
		}
	}
}

func TestCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{{"0-2,5", "0,1,2,5"}, {"", ""}, {"3", "3"}, {"x,1", "1"}} {
		if got := formatCPUList(parseCPUList(tt.in)); got != tt.want {
			t.Errorf("parseCPUList(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzDecodeSpec(f *testing.F) {
	f.Add([]byte(`{"name":"a","command":["sh","-c","x"],"ram_mb":64,"env":{"A":"B"}}`))
	f.Add([]byte(`{"name":"a","script":"main.rads","code":"/c","restart":{"policy":"on-failure","max_attempts":3}}`))
	f.Add([]byte(`{"cpu_percent":1e309}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSpec(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeSpec error %v is not a *FieldError", err)
			}
			return
		}
		if err := s.Validate(testHost); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" && !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("Validate error %v is not a field error", err)
			}
		}
	})
}

func TestParsePublish(t *testing.T) {
	good := map[string]Publish{
		"8080:80":     {HostPort: 8080, Port: 80, Protocol: "tcp"},
		"8080:80/tcp": {HostPort: 8080, Port: 80, Protocol: "tcp"},
		"5353:53/udp": {HostPort: 5353, Port: 53, Protocol: "udp"},
		"65535:1/tcp": {HostPort: 65535, Port: 1, Protocol: "tcp"},
	}
	for in, want := range good {
		got, err := ParsePublish(in)
		if err != nil || got != want {
			t.Errorf("ParsePublish(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParsePublish(got.String()); err != nil || back != got {
			t.Errorf("String of %q = %q does not parse back: %+v %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"", "8080", "8080:", ":80", "0:80", "8080:0", "70000:80", "8080:80/sctp", "8080:80/", "a:b", "1.2.3.4:8080:80", "-1:80"} {
		if p, err := ParsePublish(in); err == nil {
			t.Errorf("ParsePublish(%q) = %+v; want an error", in, p)
		} else if !strings.Contains(err.Error(), "HOSTPORT:PORT") {
			t.Errorf("ParsePublish(%q) error %q does not say the syntax", in, err)
		}
	}
}

func TestAllocAddr(t *testing.T) {
	p := netip.MustParsePrefix("198.18.7.0/29") // .0 net, .1 gateway, .7 broadcast
	used := map[netip.Addr]bool{}
	var got []string
	for {
		a, ok := allocAddr(p, used)
		if !ok {
			break
		}
		used[a] = true
		got = append(got, a.String())
	}
	want := []string{"198.18.7.2", "198.18.7.3", "198.18.7.4", "198.18.7.5", "198.18.7.6"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("allocated %v; want %v", got, want)
	}
	delete(used, netip.MustParseAddr("198.18.7.4"))
	if a, ok := allocAddr(p, used); !ok || a.String() != "198.18.7.4" {
		t.Fatalf("after a release: %v %v; want 198.18.7.4", a, ok)
	}
	for _, bad := range []string{"10.0.0.0/30", "10.0.0.1/16", "fd00::/64", "10.0.0.0/7", "x"} {
		if _, err := parseBridgeSubnet(bad); err == nil {
			t.Errorf("parseBridgeSubnet(%q) accepted", bad)
		}
	}
	if _, err := parseBridgeSubnet(DefaultBridgeSubnet); err != nil {
		t.Errorf("default subnet: %v", err)
	}
}
