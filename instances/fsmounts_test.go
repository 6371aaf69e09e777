package instances

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseMountFS(t *testing.T) {
	for in, want := range map[string]MountFS{
		"/cluster/data:/data":     {Prefix: "/cluster/data", Target: "/data"},
		"/cluster/data/:/data:ro": {Prefix: "/cluster/data", Target: "/data", ReadOnly: true},
		"/:/dfs:rw":               {Prefix: "/", Target: "/dfs"},
	} {
		got, err := ParseMountFS(in)
		if err != nil || got != want {
			t.Errorf("ParseMountFS(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"/cluster/data":      "want PREFIX:TARGET",
		"/a:/b:ro:x":         "want PREFIX:TARGET",
		"/a:/b:wr":           "want PREFIX:TARGET",
		"a:/b":               "not absolute",
		"/a/../b:/b":         "not resolved",
		"/a//b:/b":           "not resolved",
		"/a:/proc/x":         "/proc",
		"/a:/run/secrets":    "/run/secrets",
		"/a:/data/../../etc": `".."`,
		"/a:data":            "not absolute",
		"/a:/":               "whole root",
	} {
		if _, err := ParseMountFS(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMountFS(%q): %v; want an error containing %q", in, err, want)
		}
	}
	got, err := CheckMountFS([]string{"/a/:/x:rw", "/b:/y:ro"})
	if err != nil || strings.Join(got, " ") != "/a:/x /b:/y:ro" {
		t.Errorf("CheckMountFS normalizes to %v, %v", got, err)
	}
	if _, err := CheckMountFS([]string{"/a:/x", "/b:/x:ro"}); err == nil || !strings.Contains(err.Error(), "two mounts at /x") {
		t.Errorf("two views at /x: %v", err)
	}
}

// TestInstanceMayNotDeployViews plays an instance (with deployments:write) that tries to
// give its deployment's instances DFS views: refused, like secrets.
func TestInstanceMayNotDeployViews(t *testing.T) {
	c := caller{name: "job", id: "1", grants: []string{GrantDeploymentsWrite}}
	for body, refused := range map[string]bool{
		`{"name":"d","instances":1,"command":["true"],"mount_fs":["/cluster:/data"]}`: true,
		`{"name":"d","instances":1,"command":["true"]}`:                               false,
	} {
		r := httptest.NewRequest("POST", "/v1/deployments", strings.NewReader(body))
		err := checkDeployPriority(c, r)
		if (err != nil) != refused || (refused && !strings.Contains(err.Error(), "mount_fs")) {
			t.Errorf("%s: %v, want refused=%v", body, err, refused)
		}
	}
}
