package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestQueryOptionsAndMeta: blocking options and filters travel as the documented query
// parameters; the answer's index and next page come back in QueryMeta.
func TestQueryOptionsAndMeta(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		w.Header().Set(IndexHeader, "42")
		w.Header().Set(NextHeader, "web-10")
		w.Write([]byte(`[{"name":"web-2","namespace":"team-a"}]`))
	}))
	defer srv.Close()
	c := NewClient(t.TempDir(), srv.URL, "")
	rs, meta, err := c.ListInstances(context.Background(),
		InstanceFilter{Status: []string{"running", "failed"}, Node: "n1", Namespace: "team-a", Limit: 2, After: "web-1"},
		&QueryOptions{WaitIndex: 41, WaitTime: 30 * time.Second})
	if err != nil || len(rs) != 1 || rs[0].Namespace != "team-a" {
		t.Fatalf("ListInstances = %+v, %v", rs, err)
	}
	want := "/v1/instances?after=web-1&index=41&limit=2&namespace=team-a&node=n1&status=running%2Cfailed&wait=30s"
	if got != want {
		t.Fatalf("request %s; want %s", got, want)
	}
	if meta.LastIndex != 42 || meta.Next != "web-10" {
		t.Fatalf("meta %+v; want index 42, next web-10", meta)
	}
	_, _, _ = c.NodesQuery(context.Background(), nil) // only the request matters here
	if got != "/v1/nodes" {
		t.Fatalf("NodesQuery(nil) requested %s; want /v1/nodes without parameters", got)
	}
	if _, err := c.Drain(context.Background(), DrainRequest{}); err == nil || !strings.Contains(err.Error(), "node name or peer ID") {
		t.Fatalf("Drain without a node: %v", err)
	}
}
