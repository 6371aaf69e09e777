package liveness_test

import (
	"fmt"
	"time"

	"github.com/rads-lang/constellation/p2p/liveness"
)

// Two detectors exchange packets directly, driven by a virtual clock; then
// b stops answering and a declares it dead.
func Example() {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a, _ := liveness.New("a", uint64(start.UnixMilli()), liveness.DefaultConfig())
	b, _ := liveness.New("b", uint64(start.UnixMilli()), liveness.DefaultConfig())
	a.AddMember("b", start)
	b.AddMember("a", start)
	nodes := map[string]*liveness.Detector{"a": a, "b": b}
	bAlive := true

	// deliver hands packets over at once (a perfect network).
	var deliver func(from string, pkts []liveness.Packet, now time.Time)
	deliver = func(from string, pkts []liveness.Packet, now time.Time) {
		for _, p := range pkts {
			if p.To == "b" && !bAlive {
				continue
			}
			replies, err := nodes[p.To].Handle(from, p.Data, now)
			if err != nil {
				panic(err)
			}
			deliver(p.To, replies, now)
		}
	}
	for now := start; now.Before(start.Add(10 * time.Second)); now = now.Add(10 * time.Millisecond) {
		if now.Equal(start.Add(3 * time.Second)) {
			bAlive = false // b crashes
			fmt.Println("b stops")
		}
		for _, id := range []string{"a", "b"} {
			if id == "b" && !bAlive {
				continue
			}
			d := nodes[id]
			if next, ok := d.NextDeadline(); ok && !next.After(now) {
				deliver(id, d.Tick(now), now)
			}
		}
		for _, e := range a.Events() {
			fmt.Printf("a: %s is %s after %.1fs\n", e.ID, e.State, e.At.Sub(start.Add(3*time.Second)).Seconds())
		}
	}
	m, _ := a.Status("b")
	fmt.Println("a sees b", m.State)
	// Output:
	// b stops
	// a: b is suspect after 0.5s
	// a: b is dead after 2.0s
	// a sees b dead
}
