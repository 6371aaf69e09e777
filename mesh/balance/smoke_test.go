package balance

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	eps := []Endpoint{{ID: "a"}, {ID: "b"}}
	res, rep, err := b.Do(context.Background(), CallInfo{Method: "GET"}, eps, func(ctx context.Context, ep Endpoint) (Result, error) {
		return Result{Status: 200, Value: ep.ID}, nil
	})
	if err != nil || res.Status != 200 || len(rep.Attempts) != 1 {
		t.Fatal(res, rep, err)
	}
}
