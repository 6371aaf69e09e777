package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rads-lang/constellation/api"
)

// TestDefaultAndMaxLimits: an instance that asks for no limits gets the node's defaults
// (nothing runs unlimited unless the operator says so); one that asks for more than the
// node's maximum is refused naming the setting; set-limits cannot lift a limit past the
// maximum nor remove it.
func TestDefaultAndMaxLimits(t *testing.T) {
	n := startSchedClusterCfg(t, 1, func(_ int, c *Config) {
		c.DefaultCPUPercent, c.DefaultRAMMB, c.DefaultPIDs = 50, 128, 64
		c.MaxRAMMB = 256
	})[0]
	code, body := apiDo(t, n.Node, http.MethodPost, "/v1/instances", `{"name":"plain","command":["sleep","100"]}`, nil)
	if code != http.StatusCreated {
		t.Fatalf("create: HTTP %d %s", code, body)
	}
	var in api.Instance
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	if in.CPUPercent != 50 || in.RAMMB != 128 || in.PIDs != 64 {
		t.Fatalf("instance without limits got cpu %v ram %d pids %d; want the defaults 50, 128, 64", in.CPUPercent, in.RAMMB, in.PIDs)
	}
	for _, c := range []struct{ name, method, path, body string }{
		{"create above the maximum", http.MethodPost, "/v1/instances", `{"name":"big","command":["true"],"ram_mb":512}`},
		{"raise past the maximum", http.MethodPost, "/v1/instances/plain/set-limits", `{"ram_mb":1024}`},
	} {
		code, body := apiDo(t, n.Node, c.method, c.path, c.body, nil)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "--max-ram-mb") {
			t.Errorf("%s: HTTP %d %s; want 422 naming --max-ram-mb", c.name, code, body)
		}
	}
	// Removing a limit (0) brings back the default, not unlimited.
	if code, body := apiDo(t, n.Node, http.MethodPost, "/v1/instances/plain/set-limits", `{"ram_mb":0}`, &in); code != http.StatusOK || in.RAMMB != 128 {
		t.Fatalf("set-limits ram_mb 0: HTTP %d %s; want ram_mb back at the default 128", code, body)
	}
}
