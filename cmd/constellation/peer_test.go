package main

import (
	"strings"
	"testing"
)

// TestPeerBadLiveness: an unknown failure-detector profile is refused before the node
// starts, naming the flag and the accepted values.
func TestPeerBadLiveness(t *testing.T) {
	_, err := runCLI(t, "peer", "--liveness", "edge", "--data-dir", t.TempDir())
	if err == nil {
		t.Fatal("peer --liveness edge started; want an error")
	}
	for _, want := range []string{"liveness", `"edge"`, "lan, wan, local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("peer --liveness edge: err = %v; want it to contain %s", err, want)
		}
	}
}
