package balance_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rads-lang/constellation/mesh/balance"
)

// One Balancer per service; Do picks, retries and hedges. Here ep-a refuses
// connections, so the GET is retried on ep-b.
func ExampleBalancer_Do() {
	b, err := balance.New(balance.Config{Policy: balance.RoundRobin})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	endpoints := []balance.Endpoint{
		{ID: "ep-a", Node: "node-1", Region: "us-east"},
		{ID: "ep-b", Node: "node-2", Region: "us-east"},
		{ID: "ep-c", Node: "node-3", Region: "eu-west", Down: "unhealthy: 3 failed checks"},
	}
	res, rep, err := b.Do(context.Background(), balance.CallInfo{Method: "GET", Region: "us-east", Timeout: 2 * time.Second}, endpoints,
		func(ctx context.Context, ep balance.Endpoint) (balance.Result, error) {
			if ep.ID == "ep-a" {
				return balance.Result{}, balance.NotReached(errors.New("connection refused"))
			}
			return balance.Result{Status: 200, Value: "hello from " + ep.ID}, nil
		})
	fmt.Println(res.Value, err)
	for _, a := range rep.Attempts {
		fmt.Println(a.Endpoint.ID, a.Outcome, a.Retry)
	}
	// Output:
	// hello from ep-b <nil>
	// ep-a connect_error false
	// ep-b ok true
}

// When no endpoint is usable the error names the reason for each.
func ExampleNoEndpointError() {
	b, _ := balance.New(balance.Config{})
	_, _, err := b.Pick(balance.Request{}, []balance.Endpoint{
		{ID: "ep-a", Node: "node-1", Down: "unhealthy: connection refused"},
		{ID: "ep-b", Node: "node-2", Down: "not checked yet"},
	})
	fmt.Println(errors.Is(err, balance.ErrNoEndpoint))
	fmt.Println(err)
	// Output:
	// true
	// no usable endpoint: ep-a@node-1 unhealthy: connection refused; ep-b@node-2 not checked yet
}
