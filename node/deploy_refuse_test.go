package node

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/scheduler"
)

// TestDeployRefusedUpFront: a deployment that can never run is refused with the reason and
// nothing is stored: below the RAM minimum, larger than every node, constraints no node
// matches. One that fits is accepted.
func TestDeployRefusedUpFront(t *testing.T) {
	ns := startSchedCluster(t, 2, func(i int) map[string]string { return map[string]string{"region": "eu"} })
	n := ns[0]
	testutil.WaitFor(t, 10*time.Second, "resource records", func() (bool, string) {
		for _, x := range ns {
			if _, ok := n.GetState(instances.CollResources, x.ID().String()); !ok {
				return false, x.cfg.Node
			}
		}
		return true, ""
	})
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"below minimum", `{"name":"tiny","instances":1,"ram_mb":8,"command":["true"]}`, 400, "below the minimum of 16 MiB"},
		{"larger than every node", `{"name":"huge","instances":1,"ram_mb":100000000,"command":["true"]}`, 422, "no node can run huge"},
		{"constraints nobody matches", `{"name":"far","instances":1,"constraints":["node.region=us"],"command":["true"]}`, 422, "matches the constraints"},
	} {
		code, body := apiDo(t, n.Node, http.MethodPost, "/v1/deployments", c.body, nil)
		if code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: HTTP %d %s; want %d containing %q", c.name, code, body, c.status, c.want)
		}
	}
	if got := n.StateLen(scheduler.CollDeployments); got != 0 {
		t.Fatalf("%d deployments stored after refusals", got)
	}
	if code, body := apiDo(t, n.Node, http.MethodPost, "/v1/deployments", `{"name":"ok","instances":1,"ram_mb":64,"constraints":["node.region=eu"],"command":["true"]}`, nil); code/100 != 2 {
		t.Fatalf("a feasible deployment: HTTP %d %s", code, body)
	}
}
