package crdt

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestClockNow(t *testing.T) {
	base := time.Unix(1000, 0)
	type step struct {
		wall time.Time // injected wall clock for this call
		want Timestamp // expected Now() (Replica filled in)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"wall advances", []step{
			{base, Timestamp{Wall: base.UnixNano()}},
			{base.Add(time.Second), Timestamp{Wall: base.Add(time.Second).UnixNano()}},
		}},
		{"same wall increments logical", []step{
			{base, Timestamp{Wall: base.UnixNano()}},
			{base, Timestamp{Wall: base.UnixNano(), Logical: 1}},
			{base, Timestamp{Wall: base.UnixNano(), Logical: 2}},
		}},
		{"wall goes backwards: stays monotonic", []step{
			{base, Timestamp{Wall: base.UnixNano()}},
			{base.Add(-time.Hour), Timestamp{Wall: base.UnixNano(), Logical: 1}},
			{base.Add(-time.Minute), Timestamp{Wall: base.UnixNano(), Logical: 2}},
			{base.Add(time.Nanosecond), Timestamp{Wall: base.UnixNano() + 1}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var now time.Time
			c := NewClock(7, func() time.Time { return now }, 0)
			var prev Timestamp
			for i, s := range tc.steps {
				now = s.wall
				got := c.Now()
				want := s.want
				want.Replica = 7
				if got != want {
					t.Fatalf("step %d: Now() = %v; want %v", i, got, want)
				}
				if i > 0 && !prev.Less(got) {
					t.Fatalf("step %d: %v not after %v", i, got, prev)
				}
				prev = got
			}
		})
	}
}

func TestClockLogicalOverflow(t *testing.T) {
	now := time.Unix(5, 0)
	c := NewClock(1, func() time.Time { return now }, 0)
	if err := c.Observe(Timestamp{Wall: now.UnixNano(), Logical: math.MaxUint32 - 1, Replica: 2}); err != nil {
		t.Fatal(err)
	}
	got := c.Now()
	if want := (Timestamp{Wall: now.UnixNano(), Logical: math.MaxUint32, Replica: 1}); got != want {
		t.Fatalf("Now() = %v; want %v", got, want)
	}
	got2 := c.Now()
	if want := (Timestamp{Wall: now.UnixNano() + 1, Logical: 0, Replica: 1}); got2 != want {
		t.Fatalf("Now() at logical overflow = %v; want %v (wall advanced by 1ns)", got2, want)
	}
}

func TestClockObserve(t *testing.T) {
	base := time.Unix(1000, 0)
	tests := []struct {
		name      string
		maxOffset time.Duration
		remote    Timestamp
		wantErr   bool
		wantNext  Timestamp // Now() after Observe (Replica 1)
	}{
		{"remote behind", 0, Timestamp{Wall: base.Add(-time.Second).UnixNano(), Logical: 9, Replica: 2}, false,
			Timestamp{Wall: base.UnixNano(), Logical: 1, Replica: 1}},
		{"remote ahead within offset", 0, Timestamp{Wall: base.Add(400 * time.Millisecond).UnixNano(), Logical: 3, Replica: 2}, false,
			Timestamp{Wall: base.Add(400 * time.Millisecond).UnixNano(), Logical: 4, Replica: 1}},
		{"remote exactly at default offset", 0, Timestamp{Wall: base.Add(500 * time.Millisecond).UnixNano(), Replica: 2}, false,
			Timestamp{Wall: base.Add(500 * time.Millisecond).UnixNano(), Logical: 1, Replica: 1}},
		{"far future rejected (default 500ms)", 0, Timestamp{Wall: base.Add(501 * time.Millisecond).UnixNano(), Replica: 2}, true,
			Timestamp{Wall: base.UnixNano(), Logical: 1, Replica: 1}},
		{"custom offset rejects", 100 * time.Millisecond, Timestamp{Wall: base.Add(200 * time.Millisecond).UnixNano(), Replica: 2}, true,
			Timestamp{Wall: base.UnixNano(), Logical: 1, Replica: 1}},
		{"max int64 wall rejected", 0, Timestamp{Wall: math.MaxInt64, Replica: 2}, true,
			Timestamp{Wall: base.UnixNano(), Logical: 1, Replica: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock(1, func() time.Time { return base }, tc.maxOffset)
			c.Now() // (base, 0)
			err := c.Observe(tc.remote)
			var oe *ClockOffsetError
			if tc.wantErr != errors.As(err, &oe) {
				t.Fatalf("Observe(%v) = %v; want error %v", tc.remote, err, tc.wantErr)
			}
			if oe != nil && (oe.Remote != tc.remote || oe.LocalWall != base.UnixNano()) {
				t.Fatalf("error fields = %+v", oe)
			}
			if got := c.Now(); got != tc.wantNext {
				t.Fatalf("Now() after Observe = %v; want %v", got, tc.wantNext)
			}
		})
	}
}

func TestTimestampCompare(t *testing.T) {
	tests := []struct {
		a, b Timestamp
		want int
	}{
		{Timestamp{1, 0, 1}, Timestamp{2, 0, 1}, -1},
		{Timestamp{2, 0, 1}, Timestamp{1, 5, 9}, 1},
		{Timestamp{2, 1, 1}, Timestamp{2, 2, 0}, -1},
		{Timestamp{2, 2, 3}, Timestamp{2, 2, 2}, 1},
		{Timestamp{2, 2, 2}, Timestamp{2, 2, 2}, 0},
	}
	for _, tc := range tests {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v.Compare(%v) = %d; want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestReplicaIDFromBytes(t *testing.T) {
	a, b := ReplicaIDFromBytes([]byte("peer-a")), ReplicaIDFromBytes([]byte("peer-b"))
	if a == 0 || b == 0 || a == b {
		t.Fatalf("ids %v %v", a, b)
	}
	if ReplicaIDFromBytes([]byte("peer-a")) != a {
		t.Fatal("not stable")
	}
}
