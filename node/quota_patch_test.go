package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestQuotaPatchAndRemove: PATCH changes only the limits given (quota set --max-instances
// used to reset CPU and RAM to unlimited); DELETE removes the quota; a draining node shows
// as draining in the node list.
func TestQuotaPatchAndRemove(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	n := ns[0]
	if _, err := n.sched.SetQuota("team", api.QuotaSpec{MaxCPUCores: 4, MaxRAMGB: 8, MaxInstances: 10}); err != nil {
		t.Fatal(err)
	}
	var info api.QuotaInfo
	code, body := apiDo(t, n.Node, http.MethodPatch, "/v1/quotas/team", `{"max_instances":5}`, &info)
	if code != http.StatusOK || info.MaxInstances != 5 || info.MaxCPUCores != 4 || info.MaxRAMGB != 8 {
		t.Fatalf("PATCH max_instances: HTTP %d %s; want cpu 4 and ram 8 kept, instances 5", code, body)
	}
	if code, body := apiDo(t, n.Node, http.MethodPatch, "/v1/quotas/team", `{"max_instances":-1}`, nil); code != http.StatusBadRequest {
		t.Fatalf("PATCH a negative limit: HTTP %d %s; want 400", code, body)
	}
	if code, body := apiDo(t, n.Node, http.MethodDelete, "/v1/quotas/team", "", nil); code != http.StatusOK {
		t.Fatalf("DELETE: HTTP %d %s", code, body)
	}
	if code, _ := apiDo(t, n.Node, http.MethodGet, "/v1/quotas/team", "", nil); code != http.StatusNotFound {
		t.Fatalf("quota still there after DELETE: HTTP %d", code)
	}
	if code, _ := apiDo(t, n.Node, http.MethodDelete, "/v1/quotas/team", "", nil); code != http.StatusNotFound {
		t.Fatalf("second DELETE: HTTP %d; want 404", code)
	}
	if code, body := apiDo(t, n.Node, http.MethodPost, "/v1/nodes/n1/drain", "", nil); code != http.StatusOK {
		t.Fatalf("drain: HTTP %d %s", code, body)
	}
	testutil.WaitFor(t, 10*time.Second, "n1 listed as draining on n0", func() (bool, string) {
		_, raw := apiDo(t, n.Node, http.MethodGet, "/v1/nodes", "", nil)
		var nodes []api.NodeInfo
		if json.Unmarshal([]byte(raw), &nodes) != nil {
			return false, raw
		}
		for _, x := range nodes {
			if x.Name == "n1" {
				return x.Draining, strings.TrimSpace(raw)
			}
		}
		return false, raw
	})
}
