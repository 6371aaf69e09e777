package balance

import (
	"fmt"
	"testing"
	"time"
)

func TestRoundRobinUniform(t *testing.T) {
	b, _ := newTest(t, Config{Policy: RoundRobin})
	eps := endpoints(7)
	counts := map[string]int{}
	const total = 7 * 1000
	last := ""
	for i := 0; i < total; i++ {
		ep := pickDone(t, b, Request{}, eps, time.Millisecond, OK)
		if ep.ID == last {
			t.Fatalf("pick %d: %s twice in a row", i, ep.ID)
		}
		last = ep.ID
		counts[ep.ID]++
	}
	if x := chiSquare(counts, 7, total); x > chi2Crit999(6) {
		t.Fatalf("chi-square %.2f > %.2f: %v", x, chi2Crit999(6), counts)
	}
	for id, c := range counts {
		if c != 1000 {
			t.Fatalf("%s picked %d times, want exactly 1000 (rotation)", id, c)
		}
	}
}

func TestRoundRobinWeighted(t *testing.T) {
	b, _ := newTest(t, Config{Policy: RoundRobin})
	eps := []Endpoint{{ID: "a", Weight: 5}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}}
	counts := map[string]int{}
	seq := ""
	for i := 0; i < 700; i++ {
		ep := pickDone(t, b, Request{}, eps, time.Millisecond, OK)
		counts[ep.ID]++
		if i < 7 {
			seq += ep.ID
		}
	}
	if counts["a"] != 500 || counts["b"] != 100 || counts["c"] != 100 {
		t.Fatalf("weighted counts %v, want a=500 b=100 c=100", counts)
	}
	if seq != "aabacaa" { // nginx's smooth weighted round robin interleaves
		t.Fatalf("sequence %q, want aabacaa", seq)
	}
}

func TestRandomUniform(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		b, _ := newTest(t, Config{Policy: Random, Rand: seeded(seed)})
		eps := endpoints(10)
		counts := map[string]int{}
		const total = 20000
		for i := 0; i < total; i++ {
			counts[pickDone(t, b, Request{}, eps, time.Millisecond, OK).ID]++
		}
		if x := chiSquare(counts, 10, total); x > chi2Crit999(9) {
			t.Fatalf("seed %d: chi-square %.2f > %.2f: %v", seed, x, chi2Crit999(9), counts)
		}
	}
}

// A constant generator makes random pick the same endpoint every time: the
// chi-square check must be able to fail.
func TestChiSquareDetectsBias(t *testing.T) {
	counts := map[string]int{"ep0": 5300, "ep1": 4700, "ep2": 5000, "ep3": 5000}
	if x := chiSquare(counts, 4, 20000); x < chi2Crit999(3) {
		t.Fatalf("a 6%% bias went unnoticed: chi-square %.2f", x)
	}
}

func TestIPHashStickyAndMinimalMovement(t *testing.T) {
	b, _ := newTest(t, Config{Policy: IPHash})
	eps := endpoints(10)
	const keys = 20000
	owner := make([]string, keys)
	counts := map[string]int{}
	for k := 0; k < keys; k++ {
		req := Request{Key: fmt.Sprintf("10.0.%d.%d", k/256, k%256)}
		owner[k] = pickDone(t, b, req, eps, time.Millisecond, OK).ID
		counts[owner[k]]++
		if again := pickDone(t, b, req, eps, time.Millisecond, OK).ID; again != owner[k] {
			t.Fatalf("key %s moved from %s to %s without change", req.Key, owner[k], again)
		}
	}
	if x := chiSquare(counts, 10, keys); x > chi2Crit999(9) {
		t.Fatalf("keys spread unevenly: chi-square %.2f: %v", x, counts)
	}
	// Another Balancer (another node) maps keys the same way.
	b2, _ := newTest(t, Config{Policy: IPHash, Rand: seeded(99)})
	for k := 0; k < 100; k++ {
		if got := pickDone(t, b2, Request{Key: fmt.Sprintf("10.0.%d.%d", k/256, k%256)}, eps, 0, OK).ID; got != owner[k] {
			t.Fatalf("key %d: node 2 picks %s, node 1 %s", k, got, owner[k])
		}
	}

	// Remove ep3: only its keys move.
	removed := append(append([]Endpoint{}, eps[:3]...), eps[4:]...)
	moved := 0
	for k := 0; k < keys; k++ {
		got := pickDone(t, b, Request{Key: fmt.Sprintf("10.0.%d.%d", k/256, k%256)}, removed, 0, OK).ID
		if got != owner[k] {
			moved++
			if owner[k] != "ep3" {
				t.Fatalf("key %d moved from %s (still present) to %s", k, owner[k], got)
			}
		}
	}
	if moved != counts["ep3"] {
		t.Fatalf("%d keys moved, want the %d of ep3", moved, counts["ep3"])
	}

	// Add ep10: about 1/11 of the keys move, all to ep10.
	added := append(append([]Endpoint{}, eps...), Endpoint{ID: "ep10"})
	moved = 0
	for k := 0; k < keys; k++ {
		got := pickDone(t, b, Request{Key: fmt.Sprintf("10.0.%d.%d", k/256, k%256)}, added, 0, OK).ID
		if got != owner[k] {
			moved++
			if got != "ep10" {
				t.Fatalf("key %d moved from %s to %s, not to the new endpoint", k, owner[k], got)
			}
		}
	}
	if frac := float64(moved) / keys; frac < 0.06 || frac > 0.12 {
		t.Fatalf("adding 1 of 11 endpoints moved %.3f of the keys, want about 0.09", frac)
	}

	// An unavailable owner sends its keys elsewhere, and they come back.
	down := append([]Endpoint{}, eps...)
	down[0].Down = "unhealthy"
	for k := 0; k < keys; k++ {
		if owner[k] != "ep0" {
			continue
		}
		key := fmt.Sprintf("10.0.%d.%d", k/256, k%256)
		if got := pickDone(t, b, Request{Key: key}, down, 0, OK).ID; got == "ep0" {
			t.Fatal("picked a down endpoint")
		}
		if got := pickDone(t, b, Request{Key: key}, eps, 0, OK).ID; got != "ep0" {
			t.Fatalf("key came back to %s, not ep0", got)
		}
	}
}

func TestIPHashWeighted(t *testing.T) {
	b, _ := newTest(t, Config{Policy: IPHash})
	eps := []Endpoint{{ID: "a", Weight: 3}, {ID: "b", Weight: 1}}
	counts := map[string]int{}
	for k := 0; k < 20000; k++ {
		counts[pickDone(t, b, Request{Key: fmt.Sprint(k)}, eps, 0, OK).ID]++
	}
	if f := float64(counts["a"]) / 20000; f < 0.72 || f > 0.78 {
		t.Fatalf("weight 3:1 gave a share of %.3f to a, want 0.75", f)
	}
}

func TestLeastConnFollowsInFlight(t *testing.T) {
	b, _ := newTest(t, Config{Policy: LeastConn})
	eps := endpoints(3)
	var held []Ticket
	inflight := map[string]int{}
	for i := 0; i < 30; i++ {
		ep, tk, err := b.Pick(Request{}, eps)
		if err != nil {
			t.Fatal(err)
		}
		for id, n := range inflight {
			if n < inflight[ep.ID] {
				t.Fatalf("picked %s with %d in flight while %s has %d", ep.ID, inflight[ep.ID], id, n)
			}
		}
		inflight[ep.ID]++
		held = append(held, tk)
	}
	// ep0's requests finish: the next picks all go to ep0 until it catches up.
	for _, tk := range held {
		if tk.t.st.id == "ep0" {
			tk.Done(time.Millisecond, OK)
		}
	}
	inflight["ep0"] = 0
	for i := 0; i < 10; i++ {
		ep, _, _ := b.Pick(Request{}, eps)
		if ep.ID != "ep0" {
			t.Fatalf("pick %d went to %s while ep0 has fewer in flight", i, ep.ID)
		}
	}
	if s := b.Status("ep0", "ep1"); s[0].InFlight != 10 || s[1].InFlight != 10 {
		t.Fatalf("status in flight %d/%d, want 10/10", s[0].InFlight, s[1].InFlight)
	}
}

func TestP2CEWMAAvoidsSlowEndpoint(t *testing.T) {
	b, clk := newTest(t, Config{Policy: P2CEWMA})
	eps := endpoints(4)
	lat := map[string]time.Duration{"ep0": 10 * time.Millisecond, "ep1": 12 * time.Millisecond, "ep2": 9 * time.Millisecond, "ep3": 400 * time.Millisecond}
	counts := map[string]int{}
	for i := 0; i < 4000; i++ {
		ep, tk, err := b.Pick(Request{}, eps)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Millisecond) // 1000 requests/s
		tk.Done(lat[ep.ID], OK)
		if i >= 1000 {
			counts[ep.ID]++
		}
	}
	t.Logf("p2c_ewma shares after warm-up (ep3 is 40x slower): %v", counts)
	if share := float64(counts["ep3"]) / 3000; share > 0.02 {
		t.Fatalf("slow endpoint got %.3f of the traffic: %v", share, counts)
	}
	for _, id := range []string{"ep0", "ep1", "ep2"} {
		if counts[id] < 500 {
			t.Fatalf("%s got only %d of 3000: %v", id, counts[id], counts)
		}
	}
	// Round robin, for contrast, gives the slow endpoint its quarter.
	rr, _ := newTest(t, Config{Policy: RoundRobin})
	n := 0
	for i := 0; i < 400; i++ {
		if pickDone(t, rr, Request{}, eps, lat["ep3"], OK).ID == "ep3" {
			n++
		}
	}
	if n != 100 {
		t.Fatalf("round robin sent %d of 400 to ep3", n)
	}
}

// In-flight requests weigh in: a fast endpoint with many requests stuck is
// avoided too.
func TestP2CInFlightPenalty(t *testing.T) {
	b, _ := newTest(t, Config{Policy: P2CEWMA})
	eps := endpoints(2)
	for i := 0; i < 20; i++ {
		pickDone(t, b, Request{}, eps, 10*time.Millisecond, OK)
	}
	// Hold 5 requests on ep0.
	for held := 0; held < 5; held++ {
		if ep, _, _ := b.Pick(Request{Exclude: []string{"ep1"}}, eps); ep.ID != "ep0" {
			t.Fatalf("exclusion of ep1 picked %s", ep.ID)
		}
	}
	for i := 0; i < 20; i++ {
		if ep := pickDone(t, b, Request{}, eps, 10*time.Millisecond, OK); ep.ID != "ep1" {
			t.Fatalf("picked ep0 with 5 requests in flight")
		}
	}
}

func TestGeoProximityOrdering(t *testing.T) {
	b, _ := newTest(t, Config{Policy: GeoProximity})
	eps := []Endpoint{
		{ID: "far", Region: "eu-west", Zone: "eu-west-1a", RTT: 80 * time.Millisecond},
		{ID: "region", Region: "us-east", Zone: "us-east-1b", RTT: 2 * time.Millisecond},
		{ID: "zone-slow", Region: "us-east", Zone: "us-east-1a", RTT: 3 * time.Millisecond},
		{ID: "zone-near", Region: "us-east", Zone: "us-east-1a", RTT: 500 * time.Microsecond},
		{ID: "unknown", Region: "", Zone: ""},
	}
	req := Request{Region: "us-east", Zone: "us-east-1a"}
	want := []string{"zone-near", "zone-slow", "region", "far", "unknown"}
	for step, w := range want {
		for i := 0; i < 5; i++ {
			if got := pickDone(t, b, req, eps, 0, OK).ID; got != w {
				t.Fatalf("step %d: picked %s, want %s", step, got, w)
			}
		}
		for i := range eps {
			if eps[i].ID == w {
				eps[i].Down = "unhealthy"
			}
		}
	}
	// Equally near endpoints share the load.
	eq := []Endpoint{{ID: "x", Region: "r", RTT: time.Millisecond}, {ID: "y", Region: "r", RTT: 1100 * time.Microsecond}, {ID: "z", Region: "r", RTT: 9 * time.Millisecond}}
	counts := map[string]int{}
	var held []Ticket
	for i := 0; i < 10; i++ {
		ep, tk, _ := b.Pick(Request{Region: "r"}, eq)
		counts[ep.ID]++
		held = append(held, tk)
	}
	if counts["x"] != 5 || counts["y"] != 5 {
		t.Fatalf("near endpoints x and y should share: %v", counts)
	}
}

func TestLocalityPreference(t *testing.T) {
	eps := []Endpoint{
		{ID: "remote", Node: "n2", Region: "eu", Zone: "eu-1"},
		{ID: "region", Node: "n3", Region: "us", Zone: "us-2"},
		{ID: "zone", Node: "n4", Region: "us", Zone: "us-1"},
		{ID: "local", Node: "n1", Region: "us", Zone: "us-1", Local: true},
	}
	req := Request{Region: "us", Zone: "us-1"}
	for _, p := range Policies {
		b, _ := newTest(t, Config{Policy: p})
		for _, want := range []string{"local", "zone", "region"} {
			for i := 0; i < 4; i++ {
				if got := pickDone(t, b, req, eps, time.Millisecond, OK).ID; got != want {
					t.Fatalf("%s: picked %s, want %s", p, got, want)
				}
			}
			// The tier's endpoint fails its health check: next tier.
			for i := range eps {
				if eps[i].ID == want {
					eps[i].Down = "unhealthy"
				}
			}
		}
		for i := range eps {
			eps[i].Down = ""
		}
	}
	b, _ := newTest(t, Config{Policy: RoundRobin, DisableLocality: true})
	seen := map[string]bool{}
	for i := 0; i < 8; i++ {
		seen[pickDone(t, b, req, eps, 0, OK).ID] = true
	}
	if len(seen) != 4 {
		t.Fatalf("locality disabled: picked only %v", seen)
	}
}

func TestExcludePrefersOthers(t *testing.T) {
	b, _ := newTest(t, Config{Policy: IPHash})
	eps := endpoints(3)
	first := pickDone(t, b, Request{Key: "k"}, eps, 0, OK).ID
	second := pickDone(t, b, Request{Key: "k", Exclude: []string{first}}, eps, 0, OK).ID
	if second == first {
		t.Fatal("exclusion ignored")
	}
	third := pickDone(t, b, Request{Key: "k", Exclude: []string{"ep0", "ep1", "ep2"}}, eps, 0, OK).ID
	if third != first {
		t.Fatalf("with every endpoint excluded the key's owner %s should be used, got %s", first, third)
	}
}

func TestNoEndpointReasons(t *testing.T) {
	b, clk := newTest(t, Config{Breaker: BreakerConfig{FailureThreshold: 1, Timeout: 10 * time.Second}, Outlier: OutlierConfig{Disabled: true}})
	_, _, err := b.Pick(Request{}, nil)
	if err == nil || err.Error() != "no endpoints registered" {
		t.Fatalf("empty candidates: %v", err)
	}
	eps := []Endpoint{{ID: "a", Node: "n1", Down: "unhealthy (3 failed checks)"}, {ID: "b", Node: "n2"}}
	pickDone(t, b, Request{}, eps, time.Millisecond, ConnectError)
	clk.Advance(2 * time.Second)
	_, _, err = b.Pick(Request{}, eps)
	want := "no usable endpoint: a@n1 unhealthy (3 failed checks); b@n2 breaker open (half-opens in 8s)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !errorsIs(err, ErrNoEndpoint) {
		t.Fatal("errors.Is(err, ErrNoEndpoint) is false")
	}
}
