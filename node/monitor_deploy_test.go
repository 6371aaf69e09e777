package node

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestMonitorDeploymentLabel: a deployment's instances carry the deployment in their
// record, in their constellation_instance_* series and in their log entries; a
// standalone instance keeps an empty deployment label.
func TestMonitorDeploymentLabel(t *testing.T) {
	ns := startSchedCluster(t, 1, nil)
	n := ns[0]
	if _, err := n.instances.Create(t.Context(), &api.CreateRequest{Name: "solo", Command: []string{"sleep", "1000"}}); err != nil {
		t.Fatal(err)
	}
	deploy(t, n, api.DeploymentSpec{Name: "web", Instances: 2, CPUPercent: 5, RAMMB: 16})
	p := waitRunning(t, ns, ns, "web", 2, 20*time.Second)
	names := p[n.cfg.Node]
	if len(names) != 2 {
		t.Fatalf("placed %v, want 2 web instances on n0", p)
	}
	for _, name := range names {
		r, ok := n.instances.Lookup(name)
		if !ok || r.Deployment != "web" {
			t.Fatalf("record of %s: deployment %q (found %v), want web", name, r.Deployment, ok)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "instance series labelled with the deployment", func() (bool, string) {
		resp, err := unixHTTP(n.Node).Get("http://unix/metrics")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		exp := string(b)
		for _, name := range names {
			want := fmt.Sprintf(`constellation_instance_up{deployment="web",instance="%s",namespace="default",node="n0"} 1`, name)
			if !strings.Contains(exp, want) {
				return false, "lacks " + want
			}
		}
		want := `constellation_instance_up{deployment="",instance="solo",namespace="default",node="n0"} 1`
		return strings.Contains(exp, want), "lacks " + want
	})
	// Log entries of a deployment's instance carry the deployment field.
	dep, nsName := n.instanceMeta(names[0])
	if dep != "web" || nsName != "default" {
		t.Fatalf("log meta of %s: deployment %q namespace %q, want web, default", names[0], dep, nsName)
	}
}
