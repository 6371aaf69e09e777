package sched

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := DefaultBackoff()
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	tests := []struct {
		failures int
		lo, hi   time.Duration
	}{
		{0, 0, 0},
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{20, 150 * time.Second, 5 * time.Minute},
		{1 << 30, 150 * time.Second, 5 * time.Minute},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.Delay(tt.failures, rng)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("Delay(%d) = %v; want in [%v, %v]", tt.failures, d, tt.lo, tt.hi)
			}
			seen[d] = true
		}
		if tt.failures > 0 && len(seen) < 50 {
			t.Errorf("Delay(%d) took only %d distinct values in 200 draws: no jitter?", tt.failures, len(seen))
		}
	}
	if got := b.AvoidNodes(map[string]int{"n2": 3, "n1": 5, "n3": 2}); !reflect.DeepEqual(got, []string{"n1", "n2"}) {
		t.Errorf("AvoidNodes = %v; want [n1 n2]", got)
	}
	for _, bad := range []Backoff{{}, {Base: time.Second, Max: time.Millisecond, AvoidAfter: 1}, {Base: 1, Max: 2}} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v; want ErrInvalid", bad, err)
		}
	}
}
