package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// fakeNode is a local API that records the requests it gets. The deployment "web" goes
// through three states, one every 150 ms, each with a higher index; its GET answers
// blocking reads as a node does.
type fakeNode struct {
	mu       sync.Mutex // guards reqs, version
	reqs     []string   // "METHOD path?query body"
	version  uint64
	changed  chan struct{}
	statuses []api.DeploymentStatus
}

func newFakeNode(t *testing.T) (*fakeNode, string) {
	f := &fakeNode{version: 1, changed: make(chan struct{}), statuses: []api.DeploymentStatus{
		{Name: "web", Instances: 3},
		{Name: "web", Instances: 3, Placed: 3, Running: 1},
		{Name: "web", Instances: 3, Placed: 3, Running: 3},
	}}
	srv := httptest.NewTLSServer(f) // a TCP API is TLS, its certificate pinned
	t.Cleanup(srv.Close)
	t.Setenv("CONSTELLATION_API_FINGERPRINT", api.Fingerprint(srv.Certificate().Raw))
	return f, strings.TrimPrefix(srv.URL, "https://")
}

// advance moves web to its next state.
func (f *fakeNode) advance() {
	f.mu.Lock()
	f.version++
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeNode) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	line := r.Method + " " + r.URL.RequestURI()
	if len(body) > 0 {
		line += " " + string(body)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, line)
	f.mu.Unlock()
	answer := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/deployments" && r.URL.Query().Get("dry_run") == "1":
		var spec api.DeploymentSpec
		_ = json.Unmarshal(body, &spec)
		p := api.DeploymentPlan{Name: spec.Name, Namespace: "default", Instances: spec.Instances, Owner: "n0", Place: 1,
			InstanceList: []api.PlanInstance{{Name: spec.Name + "-0", Action: api.PlanPlace, Node: "n1"}}}
		if spec.Instances > 1 {
			p.Unplaced, p.Message = 1, "no node satisfies node.region=eu"
			p.InstanceList = append(p.InstanceList, api.PlanInstance{Name: spec.Name + "-1", Slot: 1, Action: api.PlanUnplaced, Reason: p.Message})
		}
		answer(p)
	case r.Method == "POST" && r.URL.Path == "/v1/deployments":
		w.WriteHeader(http.StatusCreated)
		answer(f.statuses[0])
	case r.Method == "GET" && r.URL.Path == "/v1/deployments/web":
		after, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
		for {
			f.mu.Lock()
			v, ch := f.version, f.changed
			f.mu.Unlock()
			if v > after {
				w.Header().Set(api.IndexHeader, strconv.FormatUint(v, 10))
				answer(f.statuses[min(v, 3)-1])
				return
			}
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
		}
	case r.Method == "GET" && r.URL.Path == "/v1/instances":
		w.Header().Set(api.IndexHeader, "7")
		answer([]api.Instance{{Name: "ft-1", Namespace: "team-a", Node: "n1", Status: "running"}})
	case r.Method == "DELETE" || r.URL.Path == "/v1/nodes/n1/drain":
		answer(api.DrainResult{Node: "n1"})
	default:
		http.NotFound(w, r)
	}
}

// TestDeployWaitsWithBlockingReads: deploy follows its deployment with blocking reads:
// one request per change (each passing the previous answer's index), not a poll loop.
func TestDeployWaitsWithBlockingReads(t *testing.T) {
	f, addr := newFakeNode(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			time.Sleep(150 * time.Millisecond)
			f.advance()
		}
	}()
	out, err := runCLI(t, "deploy", "web", "--instances", "3", "--api", addr, "--", "sleep", "1000")
	<-done
	if err != nil || !strings.Contains(out, "deployment web: 3/3 running") {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	var gets []string
	for _, r := range f.requests() {
		if strings.HasPrefix(r, "GET /v1/deployments/web") {
			gets = append(gets, r)
		}
	}
	// One blocking read per change: the first without an index, each next one passing a
	// strictly higher index (a poll loop would repeat an index), and no more reads than the
	// changes allow (3 states; one more read may come when the last answer raced the final
	// change on a slow machine).
	last := uint64(0)
	for i, g := range gets {
		idx := uint64(0)
		if _, q, ok := strings.Cut(g, "?index="); ok {
			idx, _ = strconv.ParseUint(q, 10, 64)
		}
		if (i == 0) != (idx == 0) || (i > 0 && idx <= last) {
			t.Fatalf("deploy read the deployment with\n%s\nwant a first read without an index, then strictly increasing indexes (blocking reads, no polling)", strings.Join(gets, "\n"))
		}
		last = idx
	}
	if len(gets) < 2 || len(gets) > 4 {
		t.Fatalf("deploy made %d reads for 3 states:\n%s", len(gets), strings.Join(gets, "\n"))
	}
}

// TestCLIUsesServerSideAPI: list passes its filters to the node, rm sends its grace period
// in the query with no body, drain uses /v1/nodes/{node}/drain, deploy --dry-run prints
// the plan and fails when an instance would be left unplaced.
func TestCLIUsesServerSideAPI(t *testing.T) {
	f, addr := newFakeNode(t)
	out, err := runCLI(t, "list", "--status", "running,failed", "--node", "n1", "--namespace", "team-a", "--api", addr)
	if err != nil || !strings.Contains(out, "NAMESPACE") || !strings.Contains(out, "team-a") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "rm", "ft-1", "--grace", "5s", "--api", addr); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if _, err := runCLI(t, "drain", "n1", "--cancel", "--api", addr); err != nil {
		t.Fatalf("drain: %v", err)
	}
	out, err = runCLI(t, "deploy", "one", "--instances", "1", "--dry-run", "--api", addr, "--", "sleep", "1")
	if err != nil || !strings.Contains(out, "1 to place") || !strings.Contains(out, "one-0") || !strings.Contains(out, "n1") {
		t.Fatalf("deploy --dry-run: %v\n%s", err, out)
	}
	out, err = runCLI(t, "deploy", "two", "--instances", "2", "--dry-run", "--api", addr, "--", "sleep", "1")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 instance(s) of two could not be placed: no node satisfies node.region=eu") ||
		!strings.Contains(out, "unplaced") {
		t.Fatalf("deploy --dry-run with an unplaced instance: %v\n%s", err, out)
	}
	got := strings.Join(f.requests(), "\n")
	for _, want := range []string{
		"GET /v1/instances?namespace=team-a&node=n1&status=running%2Cfailed\n",
		"DELETE /v1/instances/ft-1?grace=5s\n",
		`POST /v1/nodes/n1/drain {"cancel":true}`,
		`POST /v1/deployments?dry_run=1 {"name":"one"`,
	} {
		if !strings.Contains(got+"\n", want) {
			t.Errorf("requests lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "POST /v1/deployments {") {
		t.Errorf("a dry run created the deployment:\n%s", got)
	}
}
