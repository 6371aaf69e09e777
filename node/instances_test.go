package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/internal/testutil"
)

func ptr(i int) *int { return &i }

func TestInstanceConfig(t *testing.T) {
	for _, c := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no reserve", func(c *Config) { c.ReserveCPUPercent, c.ReserveRAMMB, c.ReserveDiskMB = -1, -1, -1 }, ""},
		{"absurd cpu reserve", func(c *Config) { c.ReserveCPUPercent = 1e9 }, "reserve_cpu_percent"},
		{"relative code root", func(c *Config) { c.CodeRoots = []string{"apps"} }, "code_roots"},
		{"disk quota", func(c *Config) { c.DiskQuota = "zfs" }, "disk_quota"},
	} {
		cfg := Config{DataDir: t.TempDir(), Node: "n"}
		c.mod(&cfg)
		cfg.Defaults()
		err := cfg.Validate()
		var ce *ConfigError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: Validate = %v", c.name, err)
		case c.field != "" && (!errors.As(err, &ce) || ce.Field != c.field):
			t.Errorf("%s: Validate = %v; want a ConfigError on %s", c.name, err, c.field)
		}
	}
	cfg := Config{DataDir: t.TempDir(), Node: "n"}
	cfg.Defaults()
	if cfg.ReserveRAMMB != DefaultReserveRAMMB || cfg.ReserveDiskMB != DefaultReserveDiskMB || cfg.ReserveCPUPercent <= 0 || cfg.DiskQuota != "auto" {
		t.Errorf("defaults: %+v", cfg)
	}
}

// apiCall posts or gets JSON on a node's Unix socket and returns status and error body.
func apiCall(t *testing.T, n *Node, method, path, body string) (int, api.APIError, []byte) {
	t.Helper()
	cl := unixHTTP(n)
	req, _ := http.NewRequest(method, "http://unix"+path, strings.NewReader(body))
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var ae api.APIError
	_ = json.Unmarshal(buf.Bytes(), &ae)
	return resp.StatusCode, ae, buf.Bytes()
}

func TestInstanceCreateBadInput(t *testing.T) {
	n := startTestNode(t, nodeConfig(t, "solo"))
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"unknown field", `{"name":"a","command":["true"],"ram":5}`, 400, `unknown field "ram"`},
		{"wrong type", `{"name":"a","command":["true"],"ram_mb":"lots"}`, 400, `"ram_mb"`},
		{"two values", `{"name":"a","command":["true"]} {}`, 400, "more than one"},
		{"empty", ``, 400, "body is required"},
		{"no name", `{"command":["true"]}`, 400, "invalid instance name"},
		{"bad name", `{"name":"-x","command":["true"]}`, 400, "invalid instance name"},
		{"nothing to run", `{"name":"a"}`, 400, `"command"`},
		{"command and script", `{"name":"a","command":["true"],"script":"x.rads"}`, 400, "not both"},
		{"restart", `{"name":"a","command":["true"],"restart":"sometimes"}`, 400, "on-failure:N"},
		{"ram twice", `{"name":"a","command":["true"],"ram_mb":5,"ram_gb":1}`, 400, `"ram_gb"`},
		{"reserved env", `{"name":"a","command":["true"],"env":{"CONSTELLATION_API":"x"}}`, 400, "reserved"},
		{"unknown node", `{"name":"a","command":["true"],"node":"nope"}`, 404, "nope"},
	} {
		st, ae, raw := apiCall(t, n.Node, "POST", "/v1/instances", c.body)
		if st != c.status || !strings.Contains(ae.Error, c.want) {
			t.Errorf("%s: POST /v1/instances %s = %d %s; want %d containing %q", c.name, c.body, st, raw, c.status, c.want)
		}
	}
	if os.Geteuid() == 0 { // the sandbox refuses these (without root there is no runtime)
		for _, c := range []struct{ name, body, want string }{
			{"host root without the setting", `{"name":"a","command":["true"],"host_root":true}`, "--allow-host-root"},
			{"bad seccomp", `{"name":"a","command":["true"],"seccomp":"lenient"}`, `"seccomp"`},
		} {
			st, ae, raw := apiCall(t, n.Node, "POST", "/v1/instances", c.body)
			if st != 400 || !strings.Contains(ae.Error, c.want) {
				t.Errorf("%s: POST /v1/instances %s = %d %s; want 400 containing %q", c.name, c.body, st, raw, c.want)
			}
		}
	}
	// Operations on instances that do not exist, and bad operation input.
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/v1/instances/ghost", "", 404, "no instance"},
		{"POST", "/v1/instances/ghost/stop", "", 404, "no instance"},
		{"DELETE", "/v1/instances/ghost", "", 404, "no instance"},
		{"GET", "/v1/instances/-bad/stats", "", 400, "invalid instance name"},
		{"POST", "/v1/instances/ghost/explode", "", 404, "no API route"},
	} {
		st, ae, raw := apiCall(t, n.Node, c.method, c.path, c.body)
		if st != c.status || !strings.Contains(ae.Error, c.want) {
			t.Errorf("%s %s = %d %s; want %d containing %q", c.method, c.path, st, raw, c.status, c.want)
		}
	}
	// Nothing was created, and the resources answer has the seed's fields.
	st, _, raw := apiCall(t, n.Node, "GET", "/v1/instances", "")
	if st != 200 || strings.TrimSpace(string(raw)) != "[]" {
		t.Errorf("GET /v1/instances = %d %s; want []", st, raw)
	}
	st, _, raw = apiCall(t, n.Node, "GET", "/v1/resources", "")
	var res map[string]any
	if st != 200 || json.Unmarshal(raw, &res) != nil {
		t.Fatalf("GET /v1/resources = %d %s", st, raw)
	}
	for _, f := range []string{"cpu_total", "cpu_available", "ram_total_gb", "ram_available_gb", "disk_total_tb", "disk_available_tb", "nodes"} {
		if _, ok := res[f]; !ok {
			t.Errorf("resources lacks %q: %s", f, raw)
		}
	}
	if res["cpu_total"].(float64) < 1 || res["ram_total_gb"].(float64) <= 0 {
		t.Errorf("resources totals: %s", raw)
	}
}

// putRecord writes an instance record into n's document as if its owner had (tests only).
func putRecord(t *testing.T, n *Node, r instances.Record) {
	t.Helper()
	b, err := instances.EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.st.Update(func(tx *state.Tx) error { return tx.Put(instances.Coll, r.Name, b) }); err != nil {
		t.Fatal(err)
	}
}

// TestInstanceForwardErrors: operations on another node's instance travel to that node and
// its answer (here: an error) comes back with the same status; an unreachable owner is a
// 503 naming the node.
func TestInstanceForwardErrors(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	testutil.WaitFor(t, 10*time.Second, "both alive", func() (bool, string) {
		return memberStatus(a.Node, b.ID().String()) == api.StatusAlive && memberStatus(b.Node, a.ID().String()) == api.StatusAlive, ""
	})
	// A record naming b for an instance b does not run: b answers 404 itself.
	putRecord(t, a.Node, instances.Record{Name: "phantom", ID: "1", Node: b.cfg.Node, NodeID: b.ID().String(), Status: api.InstanceRunning, CreatedAt: time.Now()})
	testutil.WaitFor(t, 10*time.Second, "b has the phantom record", func() (bool, string) {
		_, ok := b.instances.Lookup("phantom")
		return ok, ""
	})
	st, ae, raw := apiCall(t, a.Node, "GET", "/v1/instances/phantom/stats", "")
	if st != 404 || ae.Code != "not_found" || !strings.Contains(ae.Error, "not on node "+b.cfg.Node) {
		t.Errorf("forwarded stats = %d %s; want 404 from node %s", st, raw, b.cfg.Node)
	}
	// Bad input is judged by the owner too, with the same answer as locally.
	st, ae, raw = apiCall(t, a.Node, "POST", "/v1/instances/phantom/stop", `{"grace_s":"soon"}`)
	if st != 404 || !strings.Contains(ae.Error, "not on node") {
		t.Errorf("forwarded stop = %d %s; want 404 from the owner", st, raw)
	}
	// A create for b is forwarded and validated there.
	st, ae, raw = apiCall(t, a.Node, "POST", "/v1/instances", `{"name":"x","node":"`+b.cfg.Node+`","command":["true"],"restart":"sometimes"}`)
	if st != 400 || !strings.Contains(ae.Error, "restart") {
		if !(st == 503 && strings.Contains(ae.Error, "unavailable")) { // not root: b cannot run instances
			t.Errorf("forwarded create = %d %s; want 400 naming restart", st, raw)
		}
	}
	// An owner that is no member: unavailable, naming it.
	k, _, _ := crypto.GenerateEd25519Key(nil)
	stranger, _ := peer.IDFromPrivateKey(k)
	putRecord(t, a.Node, instances.Record{Name: "lost", ID: "2", Node: "gone", NodeID: stranger.String(), Status: api.InstanceRunning, CreatedAt: time.Now()})
	st, ae, raw = apiCall(t, a.Node, "POST", "/v1/instances/lost/stop", "")
	if st != 503 || ae.Code != "unavailable" || !strings.Contains(ae.Error, "gone") {
		t.Errorf("stop on an unreachable node = %d %s; want 503 naming node gone", st, raw)
	}
	// show still answers from the replicated record, with the owner's status.
	st, _, raw = apiCall(t, a.Node, "GET", "/v1/instances/lost", "")
	var rec api.Instance
	if st != 200 || json.Unmarshal(raw, &rec) != nil || rec.NodeStatus == api.StatusAlive || rec.Status != api.InstanceRunning {
		t.Errorf("show of a dead node's instance = %d %s; want its record with the node's status", st, raw)
	}
	// Both nodes list what the document holds, with node_status.
	testutil.WaitFor(t, 10*time.Second, "b lists phantom and lost", func() (bool, string) {
		rs := b.instances.List()
		return len(rs) == 2, ""
	})
}

// TestDuplicateNameResolved: two nodes create the same name at once (both pass their local
// checks before either record arrives). The older create wins on every node; the other
// node removes its instance and stops writing the name.
func TestDuplicateNameResolved(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	ctx := t.Context()
	req := func() *api.CreateRequest { return &api.CreateRequest{Name: "dup", Command: []string{"sleep", "1000"}} }
	if _, err := a.instances.Create(ctx, req()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // b's create is strictly younger
	if _, err := b.instances.Create(ctx, req()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(b.log.String(), "\n") {
				if strings.Contains(l, "dup") || strings.Contains(l, "conflict") {
					t.Log(l)
				}
			}
		}
	}()
	testutil.WaitFor(t, 15*time.Second, "one dup, on a, everywhere", func() (bool, string) {
		_, errA := a.rt(t).Get("dup")
		_, errB := b.rt(t).Get("dup")
		recA, okA := a.instances.Lookup("dup")
		recB, okB := b.instances.Lookup("dup")
		win := a.ID().String()
		return errA == nil && errB != nil && okA && okB && recA.NodeID == win && recB.NodeID == win,
			fmt.Sprintf("a runs: %v, b runs: %v, a's record on %s, b's record on %s", errA == nil, errB == nil, recA.Node, recB.Node)
	})
	if t.Failed() {
		t.Logf("b's log:\n%s", b.log)
	}
	// It stays that way: b does not write the name again.
	time.Sleep(300 * time.Millisecond)
	if rec, _ := b.instances.Lookup("dup"); rec.NodeID != a.ID().String() {
		t.Errorf("after resolution b's record of dup names %s; want a", rec.Node)
	}
}

// TestInstanceEvents: every node reports status changes of every instance as "instance"
// events, derived from the replicated records.
func TestInstanceEvents(t *testing.T) {
	ns := startSchedCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	ch, cancel := b.events.Subscribe(0, true)
	defer cancel()
	if _, err := a.instances.Create(t.Context(), &api.CreateRequest{Name: "ev", Command: []string{"sleep", "1"}}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "b has the record", func() (bool, string) { _, ok := b.instances.Lookup("ev"); return ok, "" })
	if err := a.rt(t).Exit("ev", 3); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "b sees ev failed", func() (bool, string) {
		r, _ := b.instances.Lookup("ev")
		return r.Status == api.InstanceFailed, r.Status
	})
	st, _, raw := apiCall(t, a.Node, "DELETE", "/v1/instances/ev?grace_s=0", "")
	if st != 200 {
		t.Fatalf("rm ev = %d %s", st, raw)
	}
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "removed" {
		select {
		case e := <-ch:
			if e.Type != api.EventInstance {
				continue
			}
			var ie api.InstanceEvent
			if err := json.Unmarshal(e.Data, &ie); err != nil || ie.Name != "ev" || e.Node == nil || e.Node.Name != a.cfg.Node {
				t.Fatalf("instance event %+v (%s): %v", e, e.Data, err)
			}
			if ie.Status == api.InstanceFailed && (ie.ExitCode == nil || *ie.ExitCode != 3) {
				t.Errorf("failed event without exit code 3: %s", e.Data)
			}
			got = append(got, ie.Status)
		case <-deadline:
			t.Fatalf("instance events on b: %v; want ... failed, removed", got)
		}
	}
	if !slices.Contains(got, api.InstanceFailed) || slices.Contains(got[:len(got)-1], "removed") {
		t.Errorf("instance events on b: %v; want a failed event before removed", got)
	}
}

// TestStaleRecordsRemoved: a record naming this node for an instance it does not run (state
// lost, record back from a peer) is removed; records of instances it runs stay.
func TestStaleRecordsRemoved(t *testing.T) {
	n := startSchedCluster(t, 1, nil)[0]
	if _, err := n.instances.Create(t.Context(), &api.CreateRequest{Name: "real", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	putRecord(t, n.Node, instances.Record{Name: "ghost", ID: "g", Node: n.cfg.Node, NodeID: n.ID().String(), Status: api.InstanceRunning})
	putRecord(t, n.Node, instances.Record{Name: "elsewhere", ID: "e", Node: "other", NodeID: "12D3KooWOther", Status: api.InstanceRunning})
	n.instances.Reconcile()
	if _, ok := n.instances.Lookup("ghost"); ok {
		t.Error("stale record of ghost still there")
	}
	if _, ok := n.instances.Lookup("real"); !ok {
		t.Error("record of the running instance real was removed")
	}
	if _, ok := n.instances.Lookup("elsewhere"); !ok {
		t.Error("another node's record was removed")
	}
}
