package balancemetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rads-lang/constellation/mesh/balance"
)

func TestCollector(t *testing.T) {
	b, err := balance.New(balance.Config{Breaker: balance.BreakerConfig{FailureThreshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	eps := []balance.Endpoint{{ID: "a"}, {ID: "b"}}
	_, tk, _ := b.Pick(balance.Request{Exclude: []string{"b"}}, eps)
	tk.Done(time.Millisecond, balance.ConnectError) // opens a's breaker
	_, held, _ := b.Pick(balance.Request{}, eps)    // b, in flight
	defer held.Done(time.Millisecond, balance.OK)

	reg := prometheus.NewRegistry()
	reg.MustRegister(New(func(yield func(string, *balance.Balancer) bool) { yield("default/pay", b) }))
	want := `
# HELP constellation_mesh_endpoint_breaker_state Circuit breaker state of an endpoint as seen by this node: 1 for the current state.
# TYPE constellation_mesh_endpoint_breaker_state gauge
constellation_mesh_endpoint_breaker_state{endpoint="a",service="default/pay",state="closed"} 0
constellation_mesh_endpoint_breaker_state{endpoint="a",service="default/pay",state="half_open"} 0
constellation_mesh_endpoint_breaker_state{endpoint="a",service="default/pay",state="open"} 1
constellation_mesh_endpoint_breaker_state{endpoint="b",service="default/pay",state="closed"} 1
constellation_mesh_endpoint_breaker_state{endpoint="b",service="default/pay",state="half_open"} 0
constellation_mesh_endpoint_breaker_state{endpoint="b",service="default/pay",state="open"} 0
# HELP constellation_mesh_endpoint_in_flight Requests from this node in flight to the endpoint.
# TYPE constellation_mesh_endpoint_in_flight gauge
constellation_mesh_endpoint_in_flight{endpoint="a",service="default/pay"} 0
constellation_mesh_endpoint_in_flight{endpoint="b",service="default/pay"} 1
# HELP constellation_mesh_endpoint_breaker_opens_total Times an endpoint's circuit breaker opened on this node.
# TYPE constellation_mesh_endpoint_breaker_opens_total counter
constellation_mesh_endpoint_breaker_opens_total{endpoint="a",service="default/pay"} 1
constellation_mesh_endpoint_breaker_opens_total{endpoint="b",service="default/pay"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"constellation_mesh_endpoint_breaker_state", "constellation_mesh_endpoint_in_flight", "constellation_mesh_endpoint_breaker_opens_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "constellation_mesh_retry_budget_remaining"); err != nil || n != 1 {
		t.Fatalf("budget series %d, %v", n, err)
	}
	problems, err := testutil.CollectAndLint(New(func(yield func(string, *balance.Balancer) bool) { yield("default/pay", b) }))
	if err != nil || len(problems) > 0 {
		t.Fatal(problems, err)
	}
}
