package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestJoinAndConvergence: four nodes joining one seed all end up listing every node alive,
// with the fields of the output contract of `nodes --json` and `status --json`.
func TestJoinAndConvergence(t *testing.T) {
	ns := startCluster(t, 4, func(i int, c *Config) {
		c.Labels = map[string]string{"idx": fmt.Sprint(i), "region": "eu"}
	})
	testutil.WaitFor(t, 20*time.Second, "every node sees every node alive", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })

	ids := map[string]string{} // name -> id
	for _, n := range ns {
		ids[n.cfg.Node] = n.ID().String()
	}
	for _, n := range ns {
		cl := unixHTTP(n.Node)
		// nodes --json: the raw JSON must carry every contract field.
		var raw []map[string]json.RawMessage
		getJSON(t, cl, "/v1/nodes", &raw)
		if len(raw) != len(ns) {
			t.Fatalf("%s: GET /v1/nodes has %d elements, want %d", n.cfg.Node, len(raw), len(ns))
		}
		for _, el := range raw {
			for _, f := range []string{"name", "id", "status", "addresses", "labels", "instances", "cpu_total", "ram_total_mb", "disk_total_mb", "last_seen"} {
				if _, ok := el[f]; !ok {
					t.Errorf("%s: GET /v1/nodes element lacks %q: %v", n.cfg.Node, f, el)
				}
			}
		}
		var infos []api.NodeInfo
		getJSON(t, cl, "/v1/nodes", &infos)
		for _, x := range infos {
			if ids[x.Name] != x.ID {
				t.Errorf("%s lists %s with id %s, want %s", n.cfg.Node, x.Name, x.ID, ids[x.Name])
			}
			if x.Status != api.StatusAlive {
				t.Errorf("%s lists %s as %s", n.cfg.Node, x.Name, x.Status)
			}
			if len(x.Addresses) == 0 || !strings.HasPrefix(x.Addresses[0], "/ip4/127.0.0.1/") {
				t.Errorf("%s lists %s with addresses %v, want loopback multiaddrs", n.cfg.Node, x.Name, x.Addresses)
			}
			if x.Labels["region"] != "eu" || x.Labels["idx"] != strings.TrimPrefix(x.Name, "n") {
				t.Errorf("%s lists %s with labels %v", n.cfg.Node, x.Name, x.Labels)
			}
			if x.CPUTotal <= 0 || x.RAMTotalMB == 0 || x.DiskTotalMB == 0 {
				t.Errorf("%s lists %s with resources cpu=%d ram=%d disk=%d, want > 0", n.cfg.Node, x.Name, x.CPUTotal, x.RAMTotalMB, x.DiskTotalMB)
			}
			if age := time.Since(x.LastSeen); x.LastSeen.IsZero() || age > time.Minute || age < -time.Minute {
				t.Errorf("%s lists %s last seen %v", n.cfg.Node, x.Name, x.LastSeen)
			}
			if x.Self != (x.Name == n.cfg.Node) {
				t.Errorf("%s lists %s with self=%v", n.cfg.Node, x.Name, x.Self)
			}
		}
		// status --json.
		var st map[string]json.RawMessage
		getJSON(t, cl, "/v1/status", &st)
		for _, f := range []string{"name", "id", "cluster", "addresses", "nodes_alive", "nodes_total"} {
			if _, ok := st[f]; !ok {
				t.Errorf("%s: GET /v1/status lacks %q", n.cfg.Node, f)
			}
		}
		var s api.StatusInfo
		getJSON(t, cl, "/v1/status", &s)
		if s.Name != n.cfg.Node || s.ID != ids[n.cfg.Node] || s.Cluster != "test" || s.NodesAlive != len(ns) || s.NodesTotal != len(ns) {
			t.Errorf("%s: status = %+v", n.cfg.Node, s)
		}
		if len(s.Addresses) == 0 {
			t.Errorf("%s: status has no addresses", n.cfg.Node)
		}
		for _, a := range s.Addresses {
			if !strings.HasSuffix(a, "/p2p/"+s.ID) {
				t.Errorf("%s: status address %q does not end in /p2p/<id>", n.cfg.Node, a)
			}
		}
	}
}

func getJSON(t *testing.T, cl *http.Client, path string, out any) {
	t.Helper()
	resp, err := cl.Get("http://unix" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// TestFailureDetection: a killed node is marked dead by every other node within 10 s, each
// of which streams node_suspect and node_dead for it; a node that leaves gracefully is
// `left` (never dead) with a node_leave event.
func TestFailureDetection(t *testing.T) {
	ns := startCluster(t, 4, nil)
	testutil.WaitFor(t, 20*time.Second, "convergence", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })

	victim, rest := ns[3], ns[:3]
	vid := victim.ID().String()
	if err := victim.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "every node marks the killed node dead", func() (bool, string) {
		return allSee(rest, []*testNode{victim}, api.StatusDead)
	})
	for _, o := range rest {
		evs := readEvents(t, o.Node, 5*time.Second, func(evs []api.Event) bool {
			return hasNodeEvent(evs, api.EventNodeSuspect, vid) && hasNodeEvent(evs, api.EventNodeDead, vid)
		})
		if !hasNodeEvent(evs, api.EventNodeSuspect, vid) || !hasNodeEvent(evs, api.EventNodeDead, vid) {
			t.Errorf("%s streamed %s; want node_suspect and node_dead for %s", o.cfg.Node, eventTypes(evs), victim.cfg.Node)
		}
	}

	// Graceful leave.
	leaver, stay := rest[2], rest[:2]
	lid := leaver.ID().String()
	if err := leaver.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := leaver.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "every node marks the leaver left", func() (bool, string) {
		return allSee(stay, []*testNode{leaver}, api.StatusLeft)
	})
	// It must stay left (not turn dead) while the detector keeps running.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if ok, why := allSee(stay, []*testNode{leaver}, api.StatusLeft); !ok {
			t.Fatalf("after a graceful leave: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, o := range stay {
		evs := readEvents(t, o.Node, 3*time.Second, func(evs []api.Event) bool { return hasNodeEvent(evs, api.EventNodeLeave, lid) })
		if !hasNodeEvent(evs, api.EventNodeLeave, lid) {
			t.Errorf("%s streamed %s; want node_leave for %s", o.cfg.Node, eventTypes(evs), leaver.cfg.Node)
		}
		if hasNodeEvent(evs, api.EventNodeDead, lid) || hasNodeEvent(evs, api.EventNodeSuspect, lid) {
			t.Errorf("%s streamed suspect/dead for the node that left gracefully: %s", o.cfg.Node, eventTypes(evs))
		}
	}
}

func eventTypes(evs []api.Event) string {
	var s []string
	for _, e := range evs {
		x := e.Type
		if e.Node != nil {
			x += "(" + e.Node.Name + ")"
		}
		s = append(s, x)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestRestartResumesState: a node restarted on the same data dir keeps its identity, has
// the cluster's records before any peer connects, and rejoins through the addresses it
// learned from state (no --join).
func TestRestartResumesState(t *testing.T) {
	ns := startCluster(t, 3, nil)
	testutil.WaitFor(t, 20*time.Second, "convergence", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	if err := ns[0].PutState("test", map[string][]byte{"k": []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "state replicated", func() (bool, string) {
		v, ok := ns[2].GetState("test", "k")
		return ok && string(v) == "v1", fmt.Sprintf("n2 has %q", v)
	})

	old := ns[2]
	oldID := old.ID()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "peers see n2 left", func() (bool, string) { return allSee(ns[:2], []*testNode{old}, api.StatusLeft) })

	cfg := old.cfg
	cfg.Join = nil // rejoin from the addresses in the persisted records
	re, err := newTestNode(t, cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if re.ID() != oldID {
		t.Fatalf("restarted node has id %s, want the persisted %s", re.ID(), oldID)
	}
	// Before Start: the persisted state is there.
	if v, ok := re.GetState("test", "k"); !ok || string(v) != "v1" {
		t.Fatalf("before start: test/k = %q, %v; want v1 from disk", v, ok)
	}
	var names []string
	for _, x := range re.Nodes() {
		names = append(names, x.Name)
	}
	if !slices.Equal(names, []string{"n0", "n1", "n2"}) {
		t.Fatalf("before start: nodes = %v; want n0 n1 n2 from disk", names)
	}
	if err := re.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := []*testNode{ns[0], ns[1], re}
	testutil.WaitFor(t, 20*time.Second, "rejoin without --join", func() (bool, string) { return allSee(all, all, api.StatusAlive) })
	// New writes after the restart flow both ways.
	if err := re.PutState("test", map[string][]byte{"k2": []byte("from-restarted")}); err != nil {
		t.Fatal(err)
	}
	if err := ns[1].PutState("test", map[string][]byte{"k3": []byte("to-restarted")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "writes after restart replicate", func() (bool, string) {
		a, _ := ns[0].GetState("test", "k2")
		b, _ := re.GetState("test", "k3")
		return string(a) == "from-restarted" && string(b) == "to-restarted", fmt.Sprintf("n0 k2=%q, n2 k3=%q", a, b)
	})
}
