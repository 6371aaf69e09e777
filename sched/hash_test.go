package sched

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestOwnerStableAndDistributed(t *testing.T) {
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i)
	}
	if got := NewRendezvous(nil).Owner("x"); got != "" {
		t.Fatalf("Rendezvous.Owner with no nodes = %q", got)
	}
	if got := Owner("x", nil); got != "" {
		t.Fatalf("Owner with no nodes = %q", got)
	}
	counts := map[string]int{}
	const keys = 20000
	for k := range keys {
		key := fmt.Sprintf("deploy-%d", k)
		o := Owner(key, ids)
		rev := slices.Clone(ids)
		slices.Reverse(rev)
		if o2 := Owner(key, append(rev, ids[3])); o2 != o {
			t.Fatalf("Owner(%s) depends on order/duplicates: %s vs %s", key, o, o2)
		}
		if r := NewRendezvous(rev).Owner(key); r != o {
			t.Fatalf("Rendezvous.Owner(%s) = %s; Owner %s", key, r, o)
		}
		if r := Rank(key, ids); r[0] != o || len(r) != len(ids) {
			t.Fatalf("Rank(%s)[0] = %s; Owner %s", key, r[0], o)
		}
		counts[o]++
	}
	// Chi-square against uniform, 9 degrees of freedom: p=0.001 critical value 27.9.
	var chi float64
	exp := float64(keys) / float64(len(ids))
	for _, id := range ids {
		d := float64(counts[id]) - exp
		chi += d * d / exp
	}
	if chi > 27.9 {
		t.Errorf("owner distribution %v has chi-square %.1f; want < 27.9", counts, chi)
	}
	if w1, w2 := Weight("a", "n1"), Weight("a", "n1"); w1 != w2 {
		t.Fatal("Weight not stable")
	}
	// Pinned values: a change to the hash silently moves every deployment between versions.
	if got := Weight("web", "n1"); got != 0xdb5666408acc2adf {
		t.Errorf("Weight(web, n1) = %#x; want 0xdb5666408acc2adf (the hash function changed?)", got)
	}
}

func TestRendezvousMinimalMovement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 30).Draw(t, "nodes")
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("n%d-%d", i, rapid.IntRange(0, 1000).Draw(t, "salt"))
		}
		ids = slices.Compact(slices.Sorted(slices.Values(ids)))
		gone := rapid.IntRange(0, len(ids)-1).Draw(t, "gone")
		rest := slices.Delete(slices.Clone(ids), gone, gone+1)
		joined := append(slices.Clone(ids), "newcomer")
		for k := range 200 {
			key := fmt.Sprintf("d%d", k)
			before := Owner(key, ids)
			after := Owner(key, rest)
			if before != ids[gone] && after != before {
				t.Fatalf("key %s moved from %s to %s when unrelated %s left", key, before, after, ids[gone])
			}
			if before == ids[gone] && after != Rank(key, ids)[1] {
				t.Fatalf("key %s of departed node went to %s, not its second choice %s", key, after, Rank(key, ids)[1])
			}
			if j := Owner(key, joined); j != before && j != "newcomer" {
				t.Fatalf("key %s moved from %s to %s when newcomer joined", key, before, j)
			}
		}
	})
}

func TestRankMovementFraction(t *testing.T) {
	// With 20 nodes, removing one moves about 1/20 of 10,000 keys.
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i)
	}
	moved := 0
	for k := range 10000 {
		key := fmt.Sprint("k", k)
		if Owner(key, ids) != Owner(key, ids[1:]) {
			moved++
		}
	}
	if math.Abs(float64(moved)-500) > 100 {
		t.Errorf("removing 1 of 20 nodes moved %d of 10000 keys; want about 500", moved)
	}
	if !reflect.DeepEqual(Rank("k", []string{"b", "a", "b"}), Rank("k", []string{"a", "b"})) {
		t.Error("Rank does not deduplicate")
	}
}
