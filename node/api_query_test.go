package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
	"github.com/rads-lang/constellation/scheduler"
)

// apiReq calls a node's local API and returns the status, headers and body; out (may be
// nil) receives a 2xx JSON answer.
func apiReq(t testing.TB, n *Node, method, path, body string, out any) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://unix"+path, strings.NewReader(body))
	resp, err := unixHTTP(n).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, resp.Header, string(b)
}

// answerText is an answer's error message (errors) or body.
func answerText(code int, body string) string {
	var ae api.APIError
	if code >= 400 && json.Unmarshal([]byte(body), &ae) == nil && ae.Error != "" {
		return ae.Error
	}
	return body
}

// listIndex is the change index a list answer carries (failing the test without one).
func listIndex(t testing.TB, h http.Header, path string) uint64 {
	t.Helper()
	idx, err := strconv.ParseUint(h.Get(api.IndexHeader), 10, 64)
	if err != nil || idx == 0 {
		t.Fatalf("GET %s: %s = %q; want a positive index", path, api.IndexHeader, h.Get(api.IndexHeader))
	}
	return idx
}

type blockResult struct {
	code  int
	index uint64
	body  string
	took  time.Duration
}

// blockingGet starts GET path?index=idx&wait=wait in the background.
func blockingGet(t *testing.T, n *Node, path string, idx uint64, wait string) <-chan blockResult {
	ch := make(chan blockResult, 1)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	url := fmt.Sprintf("%s%sindex=%d&wait=%s", path, sep, idx, wait)
	go func() {
		t0 := time.Now()
		req, _ := http.NewRequest("GET", "http://unix"+url, nil)
		resp, err := unixHTTP(n).Do(req)
		if err != nil {
			ch <- blockResult{code: -1, body: err.Error(), took: time.Since(t0)}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
		ch <- blockResult{resp.StatusCode, got, string(b), time.Since(t0)}
	}()
	return ch
}

// notYet fails the test when the blocking read answered before anything changed.
// quietBlockingGet starts a blocking read of path at an index that stays current for
// notYet's window (state that settles on its own, such as a starting instance, may
// move it a few times first).
func quietBlockingGet(t *testing.T, n *Node, path string) (uint64, <-chan blockResult) {
	t.Helper()
	for range 50 {
		_, h, _ := apiReq(t, n, "GET", path, "", nil)
		idx := listIndex(t, h, path)
		ch := blockingGet(t, n, path, idx, "30s")
		select {
		case <-ch:
			continue // moved on its own: take the new index
		case <-time.After(300 * time.Millisecond):
			return idx, ch
		}
	}
	t.Fatalf("GET %s: the index never stayed still for 300ms", path)
	return 0, nil
}

func notYet(t *testing.T, ch <-chan blockResult, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s answered before any change: %+v", what, r)
	case <-time.After(300 * time.Millisecond):
	}
}

func awaitBlock(t *testing.T, ch <-chan blockResult, what string, after uint64) blockResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.code != 200 || r.index <= after {
			t.Fatalf("%s: HTTP %d index %d (after %d): %s; want 200 with a higher index", what, r.code, r.index, after, r.body)
		}
		return r
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not answer after the change", what)
	}
	return blockResult{}
}

// TestBlockingLists: every list answer carries X-Constellation-Index; a read with the
// current index waits until the list's state changes (a local create, a deployment
// written on another node, a member's status from the failure detector) and then answers
// at once with a higher index; a wait with no change ends after ?wait= with the same
// index; bad parameters are 400s naming the parameter.
func TestBlockingLists(t *testing.T) {
	ns := startSchedCluster(t, 3, nil)
	n0 := ns[0].Node
	for _, p := range []string{"/v1/instances", "/v1/deployments", "/v1/nodes", "/v1/reservations", "/v1/quotas"} {
		code, h, body := apiReq(t, n0, "GET", p, "", nil)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		listIndex(t, h, p)
	}

	// A member's status changes without any write: the failure detector's verdict wakes
	// a blocking read of the nodes (waits of 20 s; the verdict comes in a few seconds).
	// First, before the other cases write anything that could wake it.
	victim := ns[2].ID().String()
	_, h, _ := apiReq(t, n0, "GET", "/v1/nodes", "", nil)
	idx := listIndex(t, h, "/v1/nodes")
	if err := ns[2].Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(25 * time.Second)
	for reads := 1; ; reads++ {
		r := <-blockingGet(t, n0, "/v1/nodes", idx, "20s")
		if r.code != 200 || time.Now().After(deadline) {
			t.Fatalf("nodes read %d: HTTP %d after %v: %s", reads, r.code, r.took, r.body)
		}
		var nodes []api.NodeInfo
		if err := json.Unmarshal([]byte(r.body), &nodes); err != nil {
			t.Fatal(err)
		}
		if st := statusIn(nodes, victim); st != api.StatusAlive {
			break // woken by the detector's verdict
		}
		idx = r.index
	}

	// A local create wakes a blocking read of the instances.
	_, h, _ = apiReq(t, n0, "GET", "/v1/instances", "", nil)
	idx = listIndex(t, h, "/v1/instances")
	ch := blockingGet(t, n0, "/v1/instances", idx, "30s")
	notYet(t, ch, "GET /v1/instances?index=current")
	if code, _, body := apiReq(t, n0, "POST", "/v1/instances", `{"name":"blk","command":["sleep","100"],"ram_mb":16}`, nil); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	r := awaitBlock(t, ch, "blocking instances read", idx)
	if !strings.Contains(r.body, `"name": "blk"`) {
		t.Fatalf("the answer after the create lacks it: %s", r.body)
	}

	// A deployment written on another node wakes a blocking read here (remote delta). The
	// deployments' index also follows instances and members, which still change on their
	// own after the create above (blk starting, n0's record counting it): wait for a
	// quiet index first, so the wake-up below is the deployment's.
	idx, ch = quietBlockingGet(t, n0, "/v1/deployments")
	deploy(t, ns[1], api.DeploymentSpec{Name: "far", Instances: 1, CPUPercent: 1, RAMMB: 16})
	r = awaitBlock(t, ch, "blocking deployments read", idx)
	if !strings.Contains(r.body, `"name": "far"`) {
		t.Fatalf("the answer after the remote deploy lacks it: %s", r.body)
	}

	// No change in the collection: the wait ends after ?wait= with the same index.
	_, h, _ = apiReq(t, n0, "GET", "/v1/reservations", "", nil)
	idx = listIndex(t, h, "/v1/reservations")
	r = <-blockingGet(t, n0, "/v1/reservations", idx, "200ms")
	if r.code != 200 || r.index != idx || r.took < 150*time.Millisecond || r.took > 10*time.Second {
		t.Fatalf("wait without change: HTTP %d index %d after %v; want 200, index %d, after ~200ms", r.code, r.index, r.took, idx)
	}
	// An index this node has not reached (another node's or run's) answers at once.
	r = <-blockingGet(t, n0, "/v1/reservations", 1<<40, "30s")
	if r.code != 200 || r.took > 5*time.Second {
		t.Fatalf("future index: HTTP %d after %v; want an answer at once", r.code, r.took)
	}

	for _, c := range []struct{ path, want string }{
		{"/v1/instances?index=abc", `invalid index "abc"`},
		{"/v1/nodes?index=-3", `invalid index "-3"`},
		{"/v1/deployments?index=3&wait=10", `invalid wait "10": a duration like 30s`},
		{"/v1/quotas?wait=10s", `needs index=N`},
		{"/v1/deployments/far?index=1&wait=soon", `invalid wait "soon"`},
	} {
		code, _, body := apiReq(t, n0, "GET", c.path, "", nil)
		if code != 400 || !strings.Contains(answerText(code, body), c.want) {
			t.Errorf("GET %s = %d %s; want 400 containing %q", c.path, code, body, c.want)
		}
	}

}

func statusIn(nodes []api.NodeInfo, id string) string {
	for _, x := range nodes {
		if x.ID == id {
			return x.Status
		}
	}
	return ""
}

// TestDeployDryRun: POST /v1/deployments?dry_run=1 answers the plan (each instance's node,
// or why it cannot be placed; kept and stopped instances of an existing deployment) and
// writes nothing.
func TestDeployDryRun(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	n0 := ns[0].Node

	var plan api.DeploymentPlan
	code, _, body := apiReq(t, n0, "POST", "/v1/deployments?dry_run=1", `{"name":"web","instances":4,"cpu_percent":1,"ram_mb":16,"command":["sleep","100"]}`, &plan)
	if code != 200 || plan.Place != 4 || plan.Unplaced != 0 || plan.Exists || len(plan.InstanceList) != 4 || plan.Namespace != "default" {
		t.Fatalf("dry run: %d %s", code, body)
	}
	perNode := map[string]int{}
	for i, x := range plan.InstanceList {
		if x.Action != api.PlanPlace || x.Slot != i || x.Name != fmt.Sprintf("web-%d", i) {
			t.Fatalf("plan line %d = %+v; want web-%d placed", i, x, i)
		}
		perNode[x.Node]++
	}
	if perNode["n0"] != 2 || perNode["n1"] != 2 {
		t.Fatalf("spread plan per node %v; want 2 and 2", perNode)
	}
	// Nothing was written.
	if code, _, _ := apiReq(t, n0, "GET", "/v1/deployments/web", "", nil); code != 404 {
		t.Fatalf("after a dry run GET /v1/deployments/web = %d; want 404", code)
	}
	// (The list's index may move meanwhile: it follows the members too, whose records
	// change on their own, e.g. their RTT table.)
	for _, coll := range []string{scheduler.CollDeployments, scheduler.CollClaims, scheduler.CollDeployStatus} {
		if got := n0.StateLen(coll); got != 0 {
			t.Fatalf("a dry run wrote %d %s records", got, coll)
		}
	}

	// Unplaceable: a constraint no node meets; the plan says why (still a 200).
	code, _, body = apiReq(t, n0, "POST", "/v1/deployments?dry_run=true", `{"name":"eu","instances":2,"command":["true"],"constraints":["node.region=eu"]}`, &plan)
	if code != 200 || plan.Unplaced != 2 || plan.Place != 0 || !strings.Contains(plan.InstanceList[0].Reason, "node.region=eu") {
		t.Fatalf("unplaceable dry run: %d %s", code, body)
	}

	// An existing deployment: scaling up keeps the running ones, down stops some.
	deploy(t, ns[0], api.DeploymentSpec{Name: "web", Instances: 2, CPUPercent: 1, RAMMB: 16})
	waitRunning(t, ns, ns[:1], "web", 2, 20*time.Second)
	code, _, body = apiReq(t, n0, "POST", "/v1/deployments?dry_run=1", `{"name":"web","instances":3,"cpu_percent":1,"ram_mb":16,"command":["sleep","1000"]}`, &plan)
	if code != 200 || !plan.Exists || plan.Keep != 2 || plan.Place != 1 || plan.InstanceList[2].Name != "web-2" {
		t.Fatalf("scale-up dry run: %d %s", code, body)
	}
	code, _, body = apiReq(t, n0, "POST", "/v1/deployments?dry_run=1", `{"name":"web","instances":1,"command":["sleep","1000"]}`, &plan)
	if code != 200 || plan.Keep != 1 || plan.Stop != 1 || plan.Place != 0 {
		t.Fatalf("scale-down dry run: %d %s", code, body)
	}
	if st := mustStatus(t, ns[0], "web"); st.Instances != 2 {
		t.Fatalf("a dry run changed the deployment: %+v", st)
	}

	for _, c := range []struct{ path, body, want string }{
		{"/v1/deployments?dry_run=maybe", `{"name":"x","instances":1,"command":["true"]}`, `invalid dry_run "maybe"`},
		{"/v1/deployments?dry_run=1", `{"name":"X!","instances":1,"command":["true"]}`, `invalid field "name"`},
		{"/v1/deployments?dry_run=1", `{"name":"x","instances":1,"command":["true"],"namespace":"Team"}`, `invalid field "namespace"`},
	} {
		code, _, body := apiReq(t, n0, "POST", c.path, c.body, nil)
		if code != 400 || !strings.Contains(answerText(code, body), c.want) {
			t.Errorf("POST %s %s = %d %s; want 400 containing %q", c.path, c.body, code, body, c.want)
		}
	}
}

// TestInstanceNamespaceFiltersPages: instances carry a namespace (default "default";
// deployment instances get their deployment's); GET /v1/instances lists in natural name
// order and filters by status, node and namespace on the node, and pages with limit and
// after; bad filters are 400s listing what is valid.
func TestInstanceNamespaceFiltersPages(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	n0 := ns[0].Node
	mustNamespace(t, n0, "team-a", ns[1].Node)
	mustNamespace(t, n0, "team-b", ns[1].Node)
	create := func(body string) {
		t.Helper()
		if code, _, b := apiReq(t, n0, "POST", "/v1/instances", body, nil); code != 201 {
			t.Fatalf("create %s: %d %s", body, code, b)
		}
	}
	create(`{"name":"ft-10","command":["sleep","100"],"namespace":"team-a"}`)
	create(`{"name":"ft-2","command":["sleep","100"]}`)
	create(`{"name":"ft-1","command":["sleep","100"],"namespace":"team-a","node":"n1"}`)
	create(`{"name":"ft-3","command":["sleep","100"],"start":false}`)
	deploy(t, ns[1], api.DeploymentSpec{Name: "svc", Instances: 1, CPUPercent: 1, RAMMB: 16, Namespace: "team-b"})
	waitRunning(t, ns, ns[:1], "svc", 1, 20*time.Second)

	names := func(path string) (string, http.Header) {
		t.Helper()
		var rs []api.Instance
		code, h, body := apiReq(t, n0, "GET", path, "", &rs)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Name+"/"+r.Namespace)
		}
		return strings.Join(out, " "), h
	}
	testutil.WaitFor(t, 10*time.Second, "every instance listed on n0", func() (bool, string) {
		got, _ := names("/v1/instances")
		return got == "ft-1/team-a ft-2/default ft-3/default ft-10/team-a svc-0/team-b", got
	})
	for _, c := range []struct{ query, want string }{
		{"namespace=team-a", "ft-1/team-a ft-10/team-a"},
		{"namespace=team-b", "svc-0/team-b"},
		{"status=created", "ft-3/default"},
		{"status=created,running&namespace=default", "ft-2/default ft-3/default"},
		{"node=n1&namespace=team-a", "ft-1/team-a"},
		{"node=" + ns[1].ID().String() + "&status=running&namespace=team-a", "ft-1/team-a"},
		{"limit=2", "ft-1/team-a ft-2/default"},
		{"limit=2&after=ft-2", "ft-3/default ft-10/team-a"},
		{"limit=2&after=ft-10", "svc-0/team-b"},
		{"after=ft-3&namespace=team-a", "ft-10/team-a"},
	} {
		if got, _ := names("/v1/instances?" + c.query); got != c.want {
			t.Errorf("GET /v1/instances?%s = %s; want %s", c.query, got, c.want)
		}
	}
	// The pages chain through X-Constellation-Next.
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		got, h := names("/v1/instances?limit=2&after=" + after)
		all = append(all, got)
		if after = h.Get(api.NextHeader); after == "" {
			break
		}
	}
	if got := strings.Join(all, " "); got != "ft-1/team-a ft-2/default ft-3/default ft-10/team-a svc-0/team-b" {
		t.Fatalf("pages of 2 = %q", got)
	}

	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/v1/instances?status=running,sleeping", "", 400, `invalid status "sleeping": one or more of created, starting, running, stopped, exited, failed, oom_killed`},
		{"GET", "/v1/instances?namespace=Team_A", "", 400, `invalid namespace "Team_A"`},
		{"GET", "/v1/instances?limit=0", "", 400, `invalid limit "0"`},
		{"GET", "/v1/instances?limit=many", "", 400, `invalid limit "many"`},
		{"GET", "/v1/instances?after=../x", "", 400, `invalid after "../x"`},
		{"GET", "/v1/instances?node=nowhere", "", 404, `no node "nowhere"`},
		{"POST", "/v1/instances", `{"name":"bad-ns","command":["true"],"namespace":"-x"}`, 400, `invalid field "namespace" "-x"`},
		{"POST", "/v1/instances", `{"name":"bad-ns","command":["true"],"namespace":"n","node":"n1"}`, 404, `namespace n does not exist`},
		{"POST", "/v1/instances", `{"name":"in-b","command":["true"],"namespace":"team-b","node":"n1"}`, 201, `"namespace": "team-b"`},
	} {
		code, _, body := apiReq(t, n0, c.method, c.path, c.body, nil)
		if code != c.status || !strings.Contains(answerText(code, body), c.want) {
			t.Errorf("%s %s %s = %d %s; want %d containing %q", c.method, c.path, c.body, code, body, c.status, c.want)
		}
	}
}

// TestNodeDrainAndDeleteWithoutBody: POST /v1/nodes/{node}/drain (optional {"cancel":
// true}) next to the older POST /v1/drain; DELETE takes no body (the grace period is
// ?grace=5s).
func TestNodeDrainAndDeleteWithoutBody(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	n0 := ns[0].Node
	if code, _, b := apiReq(t, n0, "POST", "/v1/instances", `{"name":"gone","command":["sleep","100"],"node":"n1"}`, nil); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/nodes/n1/drain", ``, 200, `"draining": true`},
		{"POST", "/v1/nodes/" + ns[1].ID().String() + "/drain", `{"cancel":true}`, 200, `"draining": false`},
		{"POST", "/v1/nodes/n1/drain", `{}`, 200, `"draining": true`},
		{"POST", "/v1/drain", `{"node":"n1","cancel":true}`, 200, `"draining": false`},
		{"POST", "/v1/nodes/nowhere/drain", ``, 404, `neither a node name`},
		{"POST", "/v1/nodes/n1/drain", `{"node":"n0"}`, 400, `unknown field "node"`},
		{"DELETE", "/v1/instances/gone", `{"grace_s":1}`, 400, `takes no request body; give the stop grace period as a query parameter, e.g. ?grace=5s`},
		{"DELETE", "/v1/instances/gone?grace=soon", ``, 400, `invalid grace "soon"`},
		{"DELETE", "/v1/instances/gone?grace=2h", ``, 400, `between 0s and 1h`},
		{"DELETE", "/v1/instances/gone?grace=1s&grace_s=1", ``, 400, `not both`},
		{"DELETE", "/v1/deployments/x", `{}`, 400, `takes no request body`},
		{"DELETE", "/v1/reservations/x", `{}`, 400, `takes no request body`},
		{"DELETE", "/v1/instances/gone?grace=0s", ``, 200, `"status": "removed"`},
	} {
		code, _, body := apiReq(t, n0, c.method, c.path, c.body, nil)
		if code != c.status || !strings.Contains(answerText(code, body), c.want) {
			t.Errorf("%s %s %s = %d %s; want %d containing %q", c.method, c.path, c.body, code, body, c.status, c.want)
		}
	}
}
