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
		if !ok || r.Deployment != "web" || r.Info().Deployment != "web" {
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

// TestMonitorPendingAndGossipDelay: a deployment nothing can place is reported pending
// (its replicas) by exactly one node, its owner; a placed one is reported 0; nodes that
// received the deployment by gossip observed its delay.
func TestMonitorPendingAndGossipDelay(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	deploy(t, ns[1], api.DeploymentSpec{Name: "web", Instances: 2, CPUPercent: 5, RAMMB: 16, Strategy: "spread"})
	waitRunning(t, ns, ns, "web", 2, 20*time.Second)
	// Every node runs web: a hard anti-affinity with it leaves nowhere to go.
	deploy(t, ns[0], api.DeploymentSpec{Name: "nowhere", Instances: 3, CPUPercent: 5, RAMMB: 16,
		AntiAffinity: []string{"service=web;hard"}})
	scrape := func(n *schedNode) string {
		resp, err := unixHTTP(n.Node).Get("http://unix/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	testutil.WaitFor(t, 20*time.Second, "pending reported once by the owner", func() (bool, string) {
		nowhere, web, delays := 0, 0, 0
		var why []string
		for _, n := range ns {
			exp := scrape(n)
			node := n.cfg.Node
			if strings.Contains(exp, fmt.Sprintf(`constellation_scheduler_pending_instances{deployment="nowhere",namespace="default",node="%s"} 3`, node)) {
				nowhere++
			}
			if strings.Contains(exp, fmt.Sprintf(`constellation_scheduler_pending_instances{deployment="web",namespace="default",node="%s"} 0`, node)) {
				web++
			}
			if strings.Contains(exp, `constellation_p2p_gossip_delay_seconds_count{node="`+node+`"}`) &&
				!strings.Contains(exp, `constellation_p2p_gossip_delay_seconds_count{node="`+node+`"} 0`) {
				delays++
			}
			why = append(why, fmt.Sprintf("%s: nowhere=%d web=%d delays=%d", node, nowhere, web, delays))
		}
		return nowhere == 1 && web == 1 && delays == 2, strings.Join(why, "; ")
	})
}
