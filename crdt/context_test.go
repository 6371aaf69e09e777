package crdt

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestCausalContextCompaction(t *testing.T) {
	tests := []struct {
		name      string
		add       []Dot
		wantVV    VersionVector
		wantCloud int
	}{
		{"contiguous", []Dot{{1, 1}, {1, 2}, {1, 3}}, VersionVector{1: 3}, 0},
		{"gap stays in cloud", []Dot{{1, 1}, {1, 3}, {1, 4}}, VersionVector{1: 1}, 2},
		{"gap filled compacts", []Dot{{1, 1}, {1, 3}, {1, 4}, {1, 2}}, VersionVector{1: 4}, 0},
		{"reverse order", []Dot{{2, 5}, {2, 4}, {2, 3}, {2, 2}, {2, 1}}, VersionVector{2: 5}, 0},
		{"duplicates", []Dot{{1, 2}, {1, 2}, {1, 1}, {1, 1}}, VersionVector{1: 2}, 0},
		{"two replicas", []Dot{{1, 1}, {2, 2}, {2, 1}, {1, 3}}, VersionVector{1: 1, 2: 2}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c CausalContext
			for _, d := range tc.add {
				c.Add(d)
			}
			if got := c.Version(); fmt.Sprint(got) != fmt.Sprint(tc.wantVV) {
				t.Fatalf("Version() = %v; want %v", got, tc.wantVV)
			}
			if c.CloudLen() != tc.wantCloud {
				t.Fatalf("CloudLen() = %d; want %d", c.CloudLen(), tc.wantCloud)
			}
			for _, d := range tc.add {
				if !c.Contains(d) {
					t.Fatalf("Contains(%v) = false", d)
				}
			}
			if c.Contains(Dot{1, 100}) {
				t.Fatal("Contains(absent) = true")
			}
		})
	}
}

func TestCausalContextMergeMatchesAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		var a, b, all CausalContext
		for i := 0; i < 50; i++ {
			d := Dot{ReplicaID(r.IntN(3) + 1), uint64(r.IntN(20) + 1)}
			if r.IntN(2) == 0 {
				a.Add(d)
			} else {
				b.Add(d)
			}
			all.Add(d)
		}
		a.Merge(&b)
		if !a.Equal(&all) {
			t.Fatalf("merge %v/%v != adds %v/%v", a.vv, a.cloud, all.vv, all.cloud)
		}
	}
}

// TestChurnMetadataBounded runs a long add/remove churn over 5 replicas and
// checks that removed entries leave nothing behind and that the causal
// context compacts to a plain version vector once replicas have synced.
func TestChurnMetadataBounded(t *testing.T) {
	ft := newFakeTime()
	const replicas, rounds, keys = 5, 2000, 20
	docs := make([]*Document, replicas)
	for i := range docs {
		docs[i] = newDoc(t, ReplicaID(i+1), ft)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var sizes []int
	for round := 0; round < rounds; round++ {
		src := docs[r.IntN(replicas)]
		key := fmt.Sprint("k", r.IntN(keys))
		var d *Delta
		switch r.IntN(4) {
		case 0:
			d = must(t)(src.PutLWW("c", key, []byte("value")))
		case 1:
			d = must(t)(src.AddToSet("s", key, fmt.Sprint("e", r.IntN(5))))
		case 2:
			d = must(t)(src.RemoveFromSet("s", key, fmt.Sprint("e", r.IntN(5))))
		default:
			d = must(t)(src.Remove("c", key))
		}
		for _, dst := range docs {
			if dst != src && r.IntN(10) > 0 { // 10% loss
				join(t, dst, d)
			}
		}
		if round%200 == 199 {
			// Anti-entropy ring, then measure.
			for i := range docs {
				j := (i + 1) % replicas
				join(t, docs[j], docs[i].DeltaFor(docs[j].Version()))
			}
			for i := range docs {
				j := (i + 1) % replicas
				join(t, docs[j], docs[i].DeltaFor(docs[j].Version()))
			}
			sizes = append(sizes, len(stateBytes(t, docs[0])))
		}
	}
	// Finally: remove everything everywhere and sync.
	for _, c := range []string{"c", "s"} {
		for _, k := range docs[0].Keys(c) {
			d := must(t)(docs[0].Remove(c, k))
			for _, dst := range docs[1:] {
				join(t, dst, d)
			}
		}
	}
	for pass := 0; pass < 2; pass++ {
		for i := range docs {
			for j := range docs {
				if i != j {
					join(t, docs[j], docs[i].DeltaFor(docs[j].Version()))
				}
			}
		}
	}
	for _, d := range docs {
		if n := len(d.colls); n != 0 {
			t.Fatalf("replica %v: %d collections left after removing everything", d.ID(), n)
		}
		ctx := d.Context()
		if ctx.CloudLen() != 0 || len(ctx.vv) != replicas {
			t.Fatalf("replica %v: context vv=%d cloud=%d; want %d entries and empty cloud", d.ID(), len(ctx.vv), ctx.CloudLen(), replicas)
		}
		if d.applied.CloudLen() != 0 {
			t.Fatalf("replica %v: applied cloud %d", d.ID(), d.applied.CloudLen())
		}
		if !sameState(t, d, docs[0]) {
			t.Fatal("replicas diverged")
		}
	}
	// The encoded state after removing everything is a handful of bytes:
	// two version vectors of 5 entries, regardless of the 2000 operations.
	if n := len(stateBytes(t, docs[0])); n > 2*replicas*20+32 {
		t.Fatalf("empty state after churn = %d bytes; want O(replicas)", n)
	}
	// During churn the state size tracks live entries, not history: the last
	// measurement is not larger than a generous bound per live key/element.
	maxLive := keys + keys*5
	for i, s := range sizes {
		if s > maxLive*60+400 {
			t.Fatalf("state size at checkpoint %d = %d bytes; exceeds bound for %d live items", i, s, maxLive)
		}
	}
	t.Logf("state bytes at checkpoints: %v", sizes)
}
