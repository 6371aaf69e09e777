package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// TestMonitorMeshTraceByDuration: a mesh call from n0 to an endpoint on n1 that takes
// 1.2 s is found from n2 by GET /v1/monitor/traces?min_duration=1s; its caller span (n0)
// and server span (n1) share one trace ID; a faster call is not listed.
func TestMonitorMeshTraceByDuration(t *testing.T) {
	ns := meshCluster(t, nil)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(1200 * time.Millisecond)
		}
		fmt.Fprint(w, "done")
	}))
	t.Cleanup(slow.Close)
	register(t, ns[1], api.MeshRegisterRequest{Name: "checkout", Port: slow.Listener.Addr().(*net.TCPAddr).Port})
	waitHealthy(t, ns[0], "", "checkout", 1)
	call := func(path string) string {
		res, err := ns[0].Mesh().Call(httptest.NewRequest("POST", "/v1/mesh/call", nil), api.MeshCallRequest{Service: "checkout", Path: path})
		if err != nil || res.TraceID == "" {
			t.Fatalf("call %s: %+v %v", path, res, err)
		}
		return res.TraceID
	}
	fast := call("/fast")
	slowID := call("/slow")

	cl := unixHTTP(ns[2].Node)
	var list api.TraceList
	waitFor(t, 10*time.Second, "the slow trace listed from n2 with spans on n0 and n1", func() bool {
		r := get(t, cl, "http://unix/v1/monitor/traces?service=checkout&min_duration=1s&since=5m")
		if r.code != 200 {
			t.Fatalf("traces: %d %s", r.code, r.body)
		}
		list = api.TraceList{}
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatal(err)
		}
		for _, tr := range list.Traces {
			if tr.TraceID == slowID {
				return tr.Spans >= 2 && slices.Contains(tr.Nodes, "n0") && slices.Contains(tr.Nodes, "n1")
			}
		}
		return false
	})
	for _, tr := range list.Traces {
		if tr.TraceID == fast {
			t.Fatalf("the fast trace %s is listed with min_duration=1s: %+v", fast, tr)
		}
		if tr.TraceID == slowID && tr.DurationMs < 1000 {
			t.Fatalf("slow trace duration %.1f ms, want >= 1000", tr.DurationMs)
		}
	}
	// The trace view from n2: the caller's client span and the server's span, one trace ID.
	r := get(t, cl, "http://unix/v1/monitor/traces/"+slowID)
	var tr api.Trace
	if r.code != 200 || json.Unmarshal(r.body, &tr) != nil {
		t.Fatalf("trace %s: %d %s", slowID, r.code, r.body)
	}
	var client, server bool
	for _, sp := range tr.Spans {
		if sp.TraceID != slowID {
			t.Fatalf("span %+v of another trace in trace %s", sp, slowID)
		}
		client = client || sp.Node == "n0" && sp.Kind == "client" && sp.DurationMs >= 1000
		server = server || sp.Node == "n1" && sp.Kind == "server" && sp.DurationMs >= 1000
	}
	if !client || !server {
		t.Fatalf("trace %s spans %+v: want a client span on n0 and a server span on n1, each >= 1 s", slowID, tr.Spans)
	}
}
