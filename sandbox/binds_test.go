package sandbox

import (
	"strings"
	"testing"
)

func TestCheckBindTarget(t *testing.T) {
	for _, ok := range []string{"/data", "/app/data", "/tmp/in", "/srv/a b", "/run/data", "/mnt/x/y"} {
		if err := CheckBindTarget(ok); err != nil {
			t.Errorf("CheckBindTarget(%q): %v", ok, err)
		}
	}
	for target, want := range map[string]string{
		"":                              "empty",
		"data":                          "not absolute",
		"/":                             "whole root",
		"/data/../etc":                  `".."`,
		"/data/./x":                     `"."`,
		"/data//x":                      `""`,
		"/data/":                        `""`,
		"/proc":                         "/proc",
		"/proc/sys":                     "/proc",
		"/dev/shm":                      "/dev",
		"/sys/fs":                       "/sys",
		"/run/secrets":                  "/run/secrets",
		"/run/secrets/x":                "/run/secrets",
		"/run/constellation":            "/run/constellation",
		"/etc/passwd":                   "/etc",
		"/usr/lib":                      "/usr",
		"/bin":                          "/bin",
		"/a\x00b":                       "NUL",
		"/" + strings.Repeat("a", 1100): "longer",
	} {
		err := CheckBindTarget(target)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckBindTarget(%q): %v, want an error containing %q", target, err, want)
		}
	}
}

func TestStartMountsChecksWhatTheNodeGives(t *testing.T) {
	spec := &Spec{Name: "job"}
	cfg := &Config{StartMounts: func(name string, uid, gid int) ([]BindMount, error) {
		return []BindMount{{Source: "/var/lib/x", Target: "/data"}, {Source: "/var/lib/y", Target: "/data"}}, nil
	}}
	if _, err := startMounts(spec, cfg, 1, 1); err == nil || !strings.Contains(err.Error(), "two mounts at /data") {
		t.Fatalf("two binds at one target: %v", err)
	}
	cfg.StartMounts = func(string, int, int) ([]BindMount, error) {
		return []BindMount{{Source: "relative", Target: "/data"}}, nil
	}
	if _, err := startMounts(spec, cfg, 1, 1); err == nil || !strings.Contains(err.Error(), "clean absolute") {
		t.Fatalf("a relative source: %v", err)
	}
	var gotUID, gotGID int
	cfg.StartMounts = func(_ string, uid, gid int) ([]BindMount, error) {
		gotUID, gotGID = uid, gid
		return []BindMount{{Source: "/var/lib/x", Target: "/data", ReadOnly: true}}, nil
	}
	bs, err := startMounts(spec, cfg, 1000, 1001)
	if err != nil || len(bs) != 1 || gotUID != 1000 || gotGID != 1001 {
		t.Fatalf("startMounts: %v %v (owner %d:%d)", bs, err, gotUID, gotGID)
	}
}
