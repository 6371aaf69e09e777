package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/sandbox"
	"github.com/rads-lang/constellation/sched"
	"github.com/rads-lang/constellation/scheduler"
)

// placement returns, per node name, the running instances of deployment dep according to
// the fake runtimes (the ground truth: what actually runs).
func placement(ns []*schedNode, dep string) map[string][]string {
	out := map[string][]string{}
	for _, n := range ns {
		f := n.fake()
		if f == nil {
			continue
		}
		select {
		case <-n.Done():
			continue // a killed node's fake keeps its last state
		default:
		}
		for _, name := range f.running() {
			if strings.HasPrefix(name, dep+"-") {
				out[n.cfg.Node] = append(out[n.cfg.Node], name)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func total(p map[string][]string) int {
	c := 0
	for _, v := range p {
		c += len(v)
	}
	return c
}

// waitRunning waits until dep runs exactly want instances (ground truth) and every
// observer's deployment status says so.
func waitRunning(t testing.TB, ns []*schedNode, observers []*schedNode, dep string, want int, timeout time.Duration) map[string][]string {
	t.Helper()
	var p map[string][]string
	testutil.WaitFor(t, timeout, fmt.Sprintf("%s runs %d instances", dep, want), func() (bool, string) {
		p = placement(ns, dep)
		if total(p) != want {
			return false, fmt.Sprintf("running %v", p)
		}
		for _, o := range observers {
			st, err := o.sched.DeploymentStatus(dep)
			if err != nil {
				return false, err.Error()
			}
			if st.Running != want || st.Placed != want {
				return false, fmt.Sprintf("%s reports placed %d running %d (%s)", o.cfg.Node, st.Placed, st.Running, st.Message)
			}
		}
		return true, ""
	})
	return p
}

func deploy(t testing.TB, n *schedNode, spec api.DeploymentSpec) {
	t.Helper()
	if spec.Command == nil && spec.Script == "" {
		spec.Command = []string{"sleep", "1000"}
	}
	if _, _, err := n.sched.Deploy(spec); err != nil {
		t.Fatalf("Deploy(%s): %v", spec.Name, err)
	}
}

// TestDeploySpreadConstraintsScale: spread over 3 nodes puts one replica on each;
// constraints hold; scale up keeps the spread, scale down stops the extra; the instances
// appear in every node's instance list; undeploy stops everything.
func TestDeploySpreadConstraintsScale(t *testing.T) {
	ns := startSchedCluster(t, 3, func(i int) map[string]string {
		return map[string]string{"region": map[bool]string{true: "us-east", false: "eu"}[i < 2]}
	})
	deploy(t, ns[0], api.DeploymentSpec{Name: "web", Instances: 3, CPUPercent: 5, RAMMB: 16, Strategy: "spread"})
	p := waitRunning(t, ns, ns, "web", 3, 20*time.Second)
	for _, n := range ns {
		if len(p[n.cfg.Node]) != 1 {
			t.Fatalf("spread over 3 nodes: %v, want one per node", p)
		}
	}
	// Every node lists the instances with their node (the instances collection).
	for _, n := range ns {
		testutil.WaitFor(t, 10*time.Second, "list shows web-*", func() (bool, string) {
			got := 0
			for _, r := range n.instances.List() {
				if strings.HasPrefix(r.Name, "web-") && r.Status == api.InstanceRunning && r.Node != "" {
					got++
				}
			}
			return got == 3, fmt.Sprintf("%s lists %d running web instances", n.cfg.Node, got)
		})
	}

	// Constraints: only nodes in us-east (n0, n1).
	deploy(t, ns[1], api.DeploymentSpec{Name: "api", Instances: 4, CPUPercent: 5, RAMMB: 16,
		Constraints: []string{"node.region=us-east"}})
	p = waitRunning(t, ns, ns[:1], "api", 4, 20*time.Second)
	if len(p["n2"]) != 0 || len(p["n0"]) != 2 || len(p["n1"]) != 2 {
		t.Fatalf("api with node.region=us-east placed %v; want 2 on n0, 2 on n1, none on n2", p)
	}
	// Anti-affinity (hard) with web's service: nowhere to go except... every node runs web,
	// so nothing is placed and the status says why.
	deploy(t, ns[2], api.DeploymentSpec{Name: "lonely", Instances: 1, CPUPercent: 5, RAMMB: 16,
		AntiAffinity: []string{"service=web;hard"}})
	testutil.WaitFor(t, 10*time.Second, "lonely explains why it is unplaced", func() (bool, string) {
		for _, d := range ns[0].sched.Deployments() {
			if d.Name == "lonely" {
				return d.Placed == 0 && strings.Contains(d.Message, "anti-affinity"), fmt.Sprintf("%+v", d)
			}
		}
		return false, "no lonely"
	})

	// Scale up then down.
	if _, err := ns[2].sched.Scale("web", 6); err != nil {
		t.Fatal(err)
	}
	p = waitRunning(t, ns, ns, "web", 6, 20*time.Second)
	for _, n := range ns {
		if len(p[n.cfg.Node]) != 2 {
			t.Fatalf("web scaled to 6 over 3 nodes: %v, want two per node", p)
		}
	}
	if _, err := ns[1].sched.Scale("web", 2); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, ns, "web", 2, 20*time.Second)

	// Undeploy.
	if err := ns[0].sched.Undeploy("web"); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, ns, nil, "web", 0, 20*time.Second)
	if err := ns[1].sched.Undeploy("web"); !errors.Is(err, scheduler.ErrDeploymentNotFound) {
		testutil.WaitFor(t, 5*time.Second, "undeploy replicated", func() (bool, string) {
			_, err := ns[1].sched.DeploymentStatus("web")
			return errors.Is(err, scheduler.ErrDeploymentNotFound), fmt.Sprint(err)
		})
	}
}

// TestDeployNodeKill: a killed node's replicas run elsewhere, placed by the owner (which
// may be the killed node itself: the next rendezvous winner takes over).
func TestDeployNodeKill(t *testing.T) {
	ns := startSchedCluster(t, 4, nil)
	deploy(t, ns[0], api.DeploymentSpec{Name: "svc", Instances: 8, CPUPercent: 5, RAMMB: 16})
	p := waitRunning(t, ns, ns, "svc", 8, 20*time.Second)
	// Kill the owner of the deployment: ownership and re-placement both move.
	owner := mustStatus(t, ns[0], "svc").Owner
	var victim *schedNode
	var rest []*schedNode
	for _, n := range ns {
		if n.cfg.Node == owner {
			victim = n
		} else {
			rest = append(rest, n)
		}
	}
	if victim == nil {
		t.Fatalf("owner %q is not a node", owner)
	}
	lost := len(p[victim.cfg.Node])
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	p = waitRunning(t, rest, rest, "svc", 8, 30*time.Second)
	if len(p[victim.cfg.Node]) != 0 {
		t.Fatalf("instances still counted on the killed node: %v", p)
	}
	t.Logf("killed %s (owner, %d instances); now %v", victim.cfg.Node, lost, p)
}

func mustStatus(t testing.TB, n *schedNode, name string) api.DeploymentStatus {
	t.Helper()
	st, err := n.sched.DeploymentStatus(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDeployDrain: drain moves a node's instances away, make-before-break: at every
// observation the deployment runs at least its desired count.
func TestDeployDrain(t *testing.T) {
	ns := startSchedCluster(t, 3, nil)
	deploy(t, ns[0], api.DeploymentSpec{Name: "app", Instances: 3, CPUPercent: 5, RAMMB: 16})
	waitRunning(t, ns, ns, "app", 3, 20*time.Second)
	var mu sync.Mutex
	minSeen := 3
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			c := total(placement(ns, "app"))
			mu.Lock()
			minSeen = min(minSeen, c)
			mu.Unlock()
		}
	}()
	res, err := ns[1].sched.Drain(api.DrainRequest{Node: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ToMove != 1 || !res.Draining {
		t.Fatalf("drain result %+v; want 1 to move", res)
	}
	testutil.WaitFor(t, 20*time.Second, "n2 drained", func() (bool, string) {
		p := placement(ns, "app")
		return len(p["n2"]) == 0 && total(p) == 3, fmt.Sprint(p)
	})
	close(stop)
	<-done
	if minSeen < 3 {
		t.Fatalf("during the drain only %d instances ran at some point; want make-before-break (>= 3)", minSeen)
	}
	// A draining node receives nothing new.
	if _, err := ns[0].sched.Scale("app", 6); err != nil {
		t.Fatal(err)
	}
	p := waitRunning(t, ns, ns[:1], "app", 6, 20*time.Second)
	if len(p["n2"]) != 0 {
		t.Fatalf("draining n2 got instances: %v", p)
	}
}

// TestDeployPartitionHeal: both sides of a partition keep the deployment at its count
// (each re-places the other side's instances); after the heal, duplicates stop and the
// deployment runs its desired count again.
func TestDeployPartitionHeal(t *testing.T) {
	ns := startSchedCluster(t, 4, nil)
	deploy(t, ns[0], api.DeploymentSpec{Name: "db", Instances: 4, CPUPercent: 5, RAMMB: 16})
	waitRunning(t, ns, ns, "db", 4, 20*time.Second)
	side := map[peer.ID]int{}
	for i, n := range ns {
		side[n.ID()] = i % 2
	}
	halves := [2][]*schedNode{{ns[0], ns[2]}, {ns[1], ns[3]}}
	for i, n := range ns {
		mine := i % 2
		n.Host().SetPartition(func(p peer.ID) bool { s, ok := side[p]; return ok && s != mine })
	}
	// Each side ends up running 4 instances on its own nodes.
	for _, h := range halves {
		waitRunning(t, h, h, "db", 4, 40*time.Second)
	}
	for _, n := range ns {
		n.Host().SetPartition(nil)
	}
	healed := time.Now()
	var merged time.Time // every node alive everywhere again
	testutil.WaitFor(t, 40*time.Second, "heal: 4 running in total", func() (bool, string) {
		if merged.IsZero() {
			if ok, _ := allSee(testNodes(ns), testNodes(ns), api.StatusAlive); ok {
				merged = time.Now()
			}
		}
		p := placement(ns, "db")
		return total(p) == 4 && !merged.IsZero(), fmt.Sprint(p)
	})
	t.Logf("heal: membership converged after %v, duplicates stopped %v later", merged.Sub(healed).Round(time.Millisecond), time.Since(merged).Round(time.Millisecond))
	waitRunning(t, ns, ns, "db", 4, 20*time.Second)
}

func testNodes(ns []*schedNode) []*testNode {
	out := make([]*testNode, len(ns))
	for i, n := range ns {
		out[i] = n.testNode
	}
	return out
}

// TestQuotaConcurrentDeploys: deployments in one namespace created on different nodes at
// the same time never exceed the namespace's quota (bounded-counter rights), and the
// refusals say quota.
func TestQuotaConcurrentDeploys(t *testing.T) {
	ns := startSchedCluster(t, 3, nil)
	if _, err := ns[0].sched.SetQuota("team", api.QuotaSpec{MaxInstances: 5, MaxCPUCores: 10}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "quota replicated", func() (bool, string) {
		for _, n := range ns {
			if _, ok := n.GetState(scheduler.CollQuotas, "team"); !ok {
				return false, n.cfg.Node
			}
		}
		return true, ""
	})
	var wg sync.WaitGroup
	for i, n := range ns {
		wg.Add(1)
		go func(i int, n *schedNode) {
			defer wg.Done()
			deploy(t, n, api.DeploymentSpec{Name: fmt.Sprintf("job%d", i), Namespace: "team", Instances: 4, CPUPercent: 5, RAMMB: 16})
		}(i, n)
	}
	wg.Wait()
	count := func() int {
		c := 0
		for i := range ns {
			c += total(placement(ns, fmt.Sprintf("job%d", i)))
		}
		return c
	}
	testutil.WaitFor(t, 20*time.Second, "5 instances of the namespace run", func() (bool, string) {
		c := count()
		if c > 5 {
			t.Fatalf("namespace team runs %d instances; quota is 5", c)
		}
		return c == 5, fmt.Sprint(c)
	})
	// It stays at 5 while the owners keep retrying.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if c := count(); c > 5 {
			t.Fatalf("namespace team runs %d instances; quota is 5", c)
		}
	}
	info, ok := ns[1].sched.Quota("team")
	if !ok || info.GrantableInstances != 0 || info.LimitInstances != 5 {
		t.Fatalf("quota info %+v; want limit 5, nothing grantable", info)
	}
	// Freeing capacity lets the waiting instances in.
	if err := ns[2].sched.Undeploy("job0"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "job1 and job2 use the freed quota", func() (bool, string) {
		a, b := total(placement(ns, "job1")), total(placement(ns, "job2"))
		return a+b == 5, fmt.Sprintf("job1 %d job2 %d", a, b)
	})
}

// TestReservations: a reservation holds capacity on one node until it expires, is used
// by create --reservation, or is released.
func TestReservations(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	r, err := ns[0].sched.Reserve(t.Context(), api.ReservationRequest{CPUCores: 0.5, RAMMB: 64, DurationSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.Node == "" || r.Status != "active" {
		t.Fatalf("reservation %+v", r)
	}
	holder := ns[0]
	if r.Node != holder.cfg.Node {
		holder = ns[1]
	}
	// The holder's admission counts it.
	if cpu, _, _ := holder.sched.Reserved(); cpu != 50 {
		t.Fatalf("holder's reservations hold %v cpu_percent; want 50", cpu)
	}
	// It expires everywhere, and the holder removes it.
	testutil.WaitFor(t, 10*time.Second, "reservation expired and removed", func() (bool, string) {
		for _, n := range ns {
			if len(n.sched.Reservations()) != 0 {
				return false, n.cfg.Node + " still lists it"
			}
			if _, ok := n.GetState(scheduler.CollReservations, r.ID); ok {
				return false, n.cfg.Node + " still has the record"
			}
		}
		return true, ""
	})
	if cpu, _, _ := holder.sched.Reserved(); cpu != 0 {
		t.Fatalf("after expiry the reservations still hold %v cpu_percent", cpu)
	}

	// create --reservation, from the other node: runs on the holder with its resources.
	r, err = ns[1].sched.Reserve(t.Context(), api.ReservationRequest{CPUCores: 0.25, RAMGB: 0.125, DurationSeconds: 3600, Node: "n0"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != "n0" || r.RAMMB != 128 {
		t.Fatalf("pinned reservation %+v", r)
	}
	testutil.WaitFor(t, 5*time.Second, "reservation replicated", func() (bool, string) {
		_, ok := ns[1].GetState(scheduler.CollReservations, r.ID)
		return ok, ""
	})
	var rec api.Instance
	code, body := apiDo(t, ns[1].Node, http.MethodPost, "/v1/instances",
		fmt.Sprintf(`{"name":"batch","command":["sleep","100"],"reservation":%q}`, r.ID), &rec)
	if code != http.StatusCreated {
		t.Fatalf("create --reservation: HTTP %d %s", code, body)
	}
	if rec.Node != "n0" || rec.CPUPercent != 25 || rec.RAMMB != 128 {
		t.Fatalf("created %+v; want on n0 with 25%% CPU and 128 MB", rec)
	}
	testutil.WaitFor(t, 5*time.Second, "used reservation gone", func() (bool, string) {
		return len(ns[1].sched.Reservations()) == 0, fmt.Sprint(ns[1].sched.Reservations())
	})
	// Release.
	r, err = ns[0].sched.Reserve(t.Context(), api.ReservationRequest{RAMMB: 32, DurationSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	code, body = apiDo(t, ns[1].Node, http.MethodDelete, "/v1/reservations/"+r.ID, "", nil)
	if code == http.StatusNotFound { // not replicated yet
		time.Sleep(200 * time.Millisecond)
		code, body = apiDo(t, ns[1].Node, http.MethodDelete, "/v1/reservations/"+r.ID, "", nil)
	}
	if code != http.StatusOK {
		t.Fatalf("release: HTTP %d %s", code, body)
	}
	testutil.WaitFor(t, 5*time.Second, "released everywhere", func() (bool, string) {
		for _, n := range ns {
			if len(n.sched.Reservations()) != 0 {
				return false, n.cfg.Node
			}
		}
		return true, ""
	})
}

// apiDo calls a node's local API; out (may be nil) receives a 2xx JSON answer.
func apiDo(t testing.TB, n *Node, method, path, body string, out any) (int, string) {
	t.Helper()
	code, _, b := apiReq(t, n, method, path, body, out)
	return code, b
}

// TestDeployPreemption: when nothing else fits, a placement evicts instances at least 10
// priority levels lower; the evicted are placed again where possible (here: nowhere,
// and the deployment says why).
func TestDeployPreemption(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	v, _ := ns[0].GetState(instances.CollResources, ns[0].ID().String())
	r, err := instances.DecodeResources(v)
	if err != nil || r.CPUCapacity < 20 {
		t.Fatalf("resource record %s: %v", v, err)
	}
	half := float64(int(r.CPUCapacity/2*100)) / 100 // cpu_percent: two per node fill it
	low, high := api.Priority(20), api.Priority(90)
	deploy(t, ns[0], api.DeploymentSpec{Name: "low", Instances: 4, CPUPercent: half, RAMMB: 16, Priority: &low})
	waitRunning(t, ns, ns[:1], "low", 4, 20*time.Second)
	deploy(t, ns[1], api.DeploymentSpec{Name: "high", Instances: 1, CPUPercent: half, RAMMB: 16, Priority: &high})
	waitRunning(t, ns, ns[:1], "high", 1, 20*time.Second)
	testutil.WaitFor(t, 10*time.Second, "low runs 3 and explains the fourth", func() (bool, string) {
		st := mustStatus(t, ns[1], "low")
		return total(placement(ns, "low")) == 3 && st.Running == 3 && st.Message != "", fmt.Sprintf("%v %+v", placement(ns, "low"), st)
	})
	// Equal priorities never preempt each other.
	same := api.Priority(90)
	deploy(t, ns[0], api.DeploymentSpec{Name: "peer", Instances: 1, CPUPercent: half, RAMMB: 16, Priority: &same})
	time.Sleep(500 * time.Millisecond)
	if n := total(placement(ns, "high")); n != 1 {
		t.Fatalf("high runs %d after an equal-priority deployment; want 1", n)
	}
	if n := total(placement(ns, "peer")) + total(placement(ns, "low")); n > 4 {
		t.Fatalf("overcommitted: peer+low = %d", n)
	}
}

// TestDeployRestartBackoffAndReschedule: a failing instance is restarted with backoff on
// its node; after AvoidAfter failures in a row there it is placed on another node.
func TestDeployRestartBackoffAndReschedule(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	for _, n := range ns {
		n.sched.SetBackoff(sched.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond, AvoidAfter: 3})
	}
	deploy(t, ns[0], api.DeploymentSpec{Name: "flaky", Instances: 1, CPUPercent: 5, RAMMB: 16})
	p := waitRunning(t, ns, ns, "flaky", 1, 20*time.Second)
	var first *schedNode
	for _, n := range ns {
		if len(p[n.cfg.Node]) == 1 {
			first = n
		}
	}
	name := p[first.cfg.Node][0]
	for i := 1; i <= 3; i++ {
		testutil.WaitFor(t, 10*time.Second, "running on the first node", func() (bool, string) {
			in, err := first.fake().Get(name)
			return err == nil && in.State == sandbox.StateRunning, fmt.Sprint(in.State, err)
		})
		if err := first.fake().Exit(name, 3); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			testutil.WaitFor(t, 10*time.Second, "restarted in place", func() (bool, string) {
				in, err := first.fake().Get(name)
				return err == nil && in.State == sandbox.StateRunning && in.Restarts == i, fmt.Sprint(in.State, in.Restarts, err)
			})
		}
	}
	testutil.WaitFor(t, 20*time.Second, "rescheduled to the other node", func() (bool, string) {
		p := placement(ns, "flaky")
		return total(p) == 1 && len(p[first.cfg.Node]) == 0, fmt.Sprint(p)
	})
	c, ok := ns[0].GetState(scheduler.CollClaims, name)
	if !ok || !strings.Contains(string(c), first.cfg.Node) {
		t.Fatalf("claim %s after reschedule; want %s in avoid", c, first.cfg.Node)
	}
}

// TestSchedAPI: the local API's scheduling routes, strict decoding and errors naming the
// field.
func TestSchedAPI(t *testing.T) {
	ns := startSchedCluster(t, 1, nil)
	n := ns[0].Node
	cases := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/deployments", `{"name":"web","instances":1,"command":["true"],"replicas":2}`, 400, `unknown field "replicas"`},
		{"POST", "/v1/deployments", `{"name":"web","instances":"two","command":["true"]}`, 400, `"instances"`},
		{"POST", "/v1/deployments", `{"name":"Web!","instances":1,"command":["true"]}`, 400, `"name"`},
		{"POST", "/v1/deployments", `{"name":"web","instances":1}`, 400, `"command"`},
		{"POST", "/v1/deployments", `{"name":"web","instances":1,"command":["true"],"strategy":"fastest"}`, 400, `"strategy"`},
		{"POST", "/v1/deployments", `{"name":"web","instances":1,"command":["true"],"constraints":["region=eu"]}`, 400, `"constraints"`},
		{"POST", "/v1/deployments", `{"name":"web","instances":1,"command":["true"],"priority":"urgent"}`, 400, `priority`},
		{"POST", "/v1/deployments", `{"name":"web","instances":1,"command":["true"],"ram_mb":1,"ram_gb":1}`, 400, `"ram_gb"`},
		{"POST", "/v1/deployments", `{"name":"web","instances":2,"cpu_percent":1,"ram_gb":0.25,"command":["sleep","9"],"priority":"high","constraints":["node.name=n0"]}`, 201, `"priority": 75`},
		{"POST", "/v1/deployments/web/scale", `{}`, 400, `"instances"`},
		{"POST", "/v1/deployments/nope/scale", `{"instances":1}`, 404, `no such deployment`},
		{"POST", "/v1/deployments/web/scale", `{"instances":3}`, 200, `"instances": 3`},
		{"GET", "/v1/deployments", ``, 200, `"name": "web"`},
		{"GET", "/v1/deployments/web", ``, 200, `"ram_mb": 256`},
		{"POST", "/v1/drain", `{"node":"nowhere"}`, 404, `neither a node name`},
		{"POST", "/v1/drain", `{}`, 400, `"node"`},
		{"POST", "/v1/reservations", `{"cpu_cores":1}`, 400, `"duration_seconds"`},
		{"POST", "/v1/reservations", `{"duration_seconds":60}`, 400, `at least one`},
		{"POST", "/v1/reservations", `{"ram_mb":8,"duration_seconds":60,"priority":"high"}`, 201, `"priority": 75`},
		{"DELETE", "/v1/reservations/rsv-none", ``, 404, `no such reservation`},
		{"PUT", "/v1/quotas/team", `{"max_cpu_cores":-1}`, 400, `"max_cpu_cores"`},
		{"PUT", "/v1/quotas/team", `{"max_cpu_cores":2,"allow_cpu_burst":true,"max_burst_percent":50}`, 400, `"max_burst_percent"`},
		{"PUT", "/v1/quotas/Team", `{"max_instances":1}`, 400, `namespace`},
		{"PUT", "/v1/quotas/team", `{"max_cpu_cores":2,"max_ram_gb":4,"max_instances":5,"allow_cpu_burst":true,"max_burst_percent":150}`, 200, `"limit_cpu_cores": 3`},
		{"GET", "/v1/quotas/team", ``, 200, `"max_instances": 5`},
		{"GET", "/v1/quotas/other", ``, 404, `no quota`},
		{"DELETE", "/v1/deployments/web", ``, 200, `undeployed`},
		{"DELETE", "/v1/deployments/web", ``, 404, `no such deployment`},
	}
	for _, c := range cases {
		code, body := apiDo(t, n, c.method, c.path, c.body, nil)
		text := body
		if code >= 400 {
			var ae api.APIError
			_ = json.Unmarshal([]byte(body), &ae)
			text = ae.Error
		}
		if code != c.status || !strings.Contains(text, c.want) {
			t.Errorf("%s %s %s = HTTP %d %s; want %d containing %q", c.method, c.path, c.body, code, body, c.status, c.want)
		}
		if code >= 400 && !strings.Contains(body, `"code"`) {
			t.Errorf("%s %s: error without code: %s", c.method, c.path, body)
		}
	}
}

// TestSpreadByRegion12Nodes: 12 labelled nodes (8 under -race) in 4 regions; a spread_by=region deployment
// of 8 puts two in each region and at most one per node; a constrained one stays in its
// region.
func TestSpreadByRegion12Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("12 nodes")
	}
	regions := []string{"us-east", "us-west", "eu", "ap"}
	// 12 nodes, 3 per region: spread must pick 2 of the 3 in each region and never 2 on one
	// node. 20 nodes in one process (about one core of libp2p upkeep when idle) saw members
	// dead in CI whenever another package's tests shared the 2 cores.
	count := 12
	if schedRaceEnabled {
		count = 8 // under the race detector on 2 cores failure detection cannot keep up
	}
	// Many nodes in one process on 2 shared cores: the LAN detector's 200 ms probe timeout
	// suspects busy nodes and the view flaps; this test is about spread, not detection, so
	// it uses the WAN profile (long timeouts; see p2p/liveness profiles).
	ns := startSchedClusterWait(t, count, func(i int, c *Config) {
		c.Labels = map[string]string{"region": regions[i%4]}
		c.Liveness = "wan"
	}, true)
	deploy(t, ns[7], api.DeploymentSpec{Name: "edge", Instances: 8, CPUPercent: 1, RAMMB: 16, SpreadBy: "region"})
	p := waitRunning(t, ns, ns[:2], "edge", 8, 30*time.Second)
	perRegion := map[string]int{}
	for i, n := range ns {
		if len(p[n.cfg.Node]) > 1 {
			t.Fatalf("spread put %d on %s: %v", len(p[n.cfg.Node]), n.cfg.Node, p)
		}
		perRegion[regions[i%4]] += len(p[n.cfg.Node])
	}
	for _, r := range regions {
		if perRegion[r] != 2 {
			t.Fatalf("per region %v; want 2 each", perRegion)
		}
	}
	deploy(t, ns[3], api.DeploymentSpec{Name: "eu-only", Instances: 10, CPUPercent: 1, RAMMB: 16, Constraints: []string{"node.region=eu"}})
	p = waitRunning(t, ns, ns[:1], "eu-only", 10, 30*time.Second)
	for i, n := range ns {
		if regions[i%4] != "eu" && len(p[n.cfg.Node]) > 0 {
			t.Fatalf("eu-only on %s (%s): %v", n.cfg.Node, regions[i%4], p)
		}
	}
}

// TestQuotaPartition: a partitioned side without rights admits nothing of the namespace;
// the side holding them admits up to the limit; after the heal the total is still within it.
func TestQuotaPartition(t *testing.T) {
	ns := startSchedCluster(t, 4, nil)
	if _, err := ns[0].sched.SetQuota("part", api.QuotaSpec{MaxInstances: 4}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "quota replicated", func() (bool, string) {
		for _, n := range ns {
			if _, ok := n.GetState(scheduler.CollQuotas, "part"); !ok {
				return false, n.cfg.Node
			}
		}
		return true, ""
	})
	side := map[peer.ID]int{}
	for i, n := range ns {
		side[n.ID()] = i % 2
	}
	halves := [2][]*schedNode{{ns[0], ns[2]}, {ns[1], ns[3]}}
	for i, n := range ns {
		mine := i % 2
		n.Host().SetPartition(func(p peer.ID) bool { s, ok := side[p]; return ok && s != mine })
	}
	testutil.WaitFor(t, 20*time.Second, "each side judges the other dead", func() (bool, string) {
		for _, h := range halves {
			for _, o := range h {
				for _, x := range ns {
					if side[x.ID()] != side[o.ID()] && memberStatus(o.Node, x.ID().String()) != api.StatusDead {
						return false, o.cfg.Node + " still sees " + x.cfg.Node
					}
				}
			}
		}
		return true, ""
	})
	deploy(t, ns[0], api.DeploymentSpec{Name: "left", Namespace: "part", Instances: 3, CPUPercent: 1, RAMMB: 16})
	deploy(t, ns[1], api.DeploymentSpec{Name: "right", Namespace: "part", Instances: 3, CPUPercent: 1, RAMMB: 16})
	count := func() (int, int) { return total(placement(ns, "left")), total(placement(ns, "right")) }
	testutil.WaitFor(t, 20*time.Second, "the side with rights runs its 3", func() (bool, string) {
		l, r := count()
		return l == 3, fmt.Sprintf("left %d right %d", l, r)
	})
	testutil.WaitFor(t, 20*time.Second, "the side without rights reports quota", func() (bool, string) {
		st := mustStatus(t, ns[1], "right")
		return strings.Contains(st.Message, "quota"), st.Message
	})
	if l, r := count(); l+r > 4 || r != 0 {
		t.Fatalf("during the partition left %d right %d; want 3 and 0 (limit 4, rights on the left)", l, r)
	}
	for _, n := range ns {
		n.Host().SetPartition(nil)
	}
	testutil.WaitFor(t, 30*time.Second, "heal: the right side gets the last right", func() (bool, string) {
		l, r := count()
		if l+r > 4 {
			t.Fatalf("after the heal left %d right %d > 4", l, r)
		}
		return l+r == 4, fmt.Sprintf("left %d right %d", l, r)
	})
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if l, r := count(); l+r > 4 {
			t.Fatalf("after the heal left %d right %d > 4", l, r)
		}
	}
}

// TestQuotaBurst: instances beyond the base CPU quota but within max_burst_percent are
// admitted at priority 0 (preempted first); beyond the burst they wait.
func TestQuotaBurst(t *testing.T) {
	ns := startSchedCluster(t, 1, nil)
	if _, err := ns[0].sched.SetQuota("burst", api.QuotaSpec{MaxCPUCores: 0.1, AllowCPUBurst: true, MaxBurstPercent: 200}); err != nil {
		t.Fatal(err)
	}
	deploy(t, ns[0], api.DeploymentSpec{Name: "b", Namespace: "burst", Instances: 5, CPUPercent: 5, RAMMB: 16})
	testutil.WaitFor(t, 10*time.Second, "4 of 5 run (0.2 cores of burst)", func() (bool, string) {
		st := mustStatus(t, ns[0], "b")
		return total(placement(ns, "b")) == 4 && strings.Contains(st.Message, "quota"), fmt.Sprintf("%v %s", placement(ns, "b"), st.Message)
	})
	burst := 0
	for _, c := range ns[0].sched.Claims() {
		if c.Deployment == "b" && c.Burst {
			burst++
			if c.Priority != 0 {
				t.Errorf("burst claim %s has priority %d; want 0", c.Instance, c.Priority)
			}
		}
	}
	if burst != 2 {
		t.Fatalf("%d burst claims; want 2 (0.1 cores base = 2 instances, 2 more in burst)", burst)
	}
}
