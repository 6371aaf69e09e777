package main

import (
	"context"
	"testing"
)

// TestBenchFSRuns: `bench fs` measures on a small run and reports every figure.
func TestBenchFSRuns(t *testing.T) {
	res, err := runBenchFS(context.Background(), &benchFSOptions{writes: 5, sizeMB: 2, workDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 8 { // latency p50, p99; put, get, plain copy, plain copy into a file, two ratios
		t.Fatalf("%d results: %+v", len(res), res)
	}
	for _, r := range res {
		if r.Value <= 0 {
			t.Errorf("%s = %v", r.Name, r.Value)
		}
	}
}
