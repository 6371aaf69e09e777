package sched

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestReconcile(t *testing.T) {
	run := func(idx int, node string, wall int64, ready bool) Running {
		return Running{ID: InstanceID("web", idx), Index: idx, Node: node, Created: Stamp{Wall: wall}, Ready: ready}
	}
	tests := []struct {
		name    string
		desired int
		in      []Running
		keep    []string // nodes of kept instances, by index
		stop    []string // "id@node"
		missing []int
	}{
		{"nothing to do", 2, []Running{run(0, "a", 1, true), run(1, "b", 1, true)}, []string{"a", "b"}, nil, nil},
		{"older duplicate wins", 2, []Running{run(0, "a", 5, true), run(0, "b", 3, true), run(1, "c", 1, true)},
			[]string{"b", "c"}, []string{"web-0@a"}, nil},
		{"ready beats older", 1, []Running{run(0, "a", 5, true), run(0, "b", 3, false)}, []string{"a"}, []string{"web-0@b"}, nil},
		{"scale down stops high indexes", 1, []Running{run(0, "a", 1, true), run(1, "b", 1, true), run(2, "c", 1, true)},
			[]string{"a"}, []string{"web-1@b", "web-2@c"}, nil},
		{"missing indexes", 4, []Running{run(1, "a", 1, true), run(1, "b", 2, true)}, []string{"a"}, []string{"web-1@b"}, []int{0, 2, 3}},
		{"negative index stopped", 1, []Running{{ID: "web-x", Index: -1, Node: "a"}}, nil, []string{"web-x@a"}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Reconcile("web", tt.desired, tt.in)
			var keep, stop []string
			for _, k := range r.Keep {
				keep = append(keep, k.Node)
			}
			for _, s := range r.Stop {
				stop = append(stop, s.ID+"@"+s.Node)
			}
			if !reflect.DeepEqual(keep, tt.keep) || !reflect.DeepEqual(stop, tt.stop) || !reflect.DeepEqual(r.Missing, tt.missing) {
				t.Fatalf("Reconcile = keep %v stop %v missing %v; want %v %v %v", keep, stop, r.Missing, tt.keep, tt.stop, tt.missing)
			}
		})
	}
	// Same stamps: the rendezvous winner among the nodes keeps it.
	in := []Running{run(0, "a", 1, true), run(0, "b", 1, true), run(0, "c", 1, true)}
	if got, want := Reconcile("web", 1, in).Keep[0].Node, Rank("web", []string{"a", "b", "c"})[0]; got != want {
		t.Fatalf("tie kept %s; want rendezvous winner %s", got, want)
	}
}

func TestReconcileProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		desired := rapid.IntRange(0, 10).Draw(t, "desired")
		n := rapid.IntRange(0, 30).Draw(t, "running")
		var in []Running
		for k := range n {
			idx := rapid.IntRange(-1, 12).Draw(t, "index")
			in = append(in, Running{
				ID: fmt.Sprintf("web-%d", idx), Index: idx, Node: fmt.Sprintf("n%d", rapid.IntRange(0, 5).Draw(t, "node")),
				Created: Stamp{Wall: int64(rapid.IntRange(0, 3).Draw(t, "wall")), Logical: uint32(k)},
				Ready:   rapid.Bool().Draw(t, "ready"),
			})
		}
		r := Reconcile("web", desired, in)
		if len(r.Keep)+len(r.Stop) != len(in) {
			t.Fatalf("keep %d + stop %d != %d inputs", len(r.Keep), len(r.Stop), len(in))
		}
		seen := map[int]bool{}
		for _, k := range r.Keep {
			if k.Index < 0 || k.Index >= desired || seen[k.Index] {
				t.Fatalf("kept %+v: out of range or duplicate index", k)
			}
			seen[k.Index] = true
		}
		for i := range desired {
			if seen[i] == slices.Contains(r.Missing, i) {
				t.Fatalf("index %d: kept %v, missing %v", i, seen[i], r.Missing)
			}
		}
		if len(r.Keep) > desired {
			t.Fatalf("kept %d > desired %d", len(r.Keep), desired)
		}
		// Order independence.
		shuf := slices.Clone(in)
		rng := rand.New(rand.NewPCG(uint64(n), uint64(desired)))
		rng.Shuffle(len(shuf), func(i, j int) { shuf[i], shuf[j] = shuf[j], shuf[i] })
		if r2 := Reconcile("web", desired, shuf); !reflect.DeepEqual(r, r2) {
			t.Fatalf("order changed the result:\n%+v\n%+v", r, r2)
		}
	})
}

func TestParseInstanceID(t *testing.T) {
	tests := []struct {
		in  string
		dep string
		idx int
		ok  bool
	}{
		{"web-3", "web", 3, true},
		{"my-app-12", "my-app", 12, true},
		{"web-0", "web", 0, true},
		{"web-03", "", 0, false},
		{"web-", "", 0, false},
		{"-3", "", 0, false},
		{"web", "", 0, false},
		{"web-x", "", 0, false},
		{"web-+1", "", 0, false},
	}
	for _, tt := range tests {
		dep, idx, ok := ParseInstanceID(tt.in)
		if dep != tt.dep || idx != tt.idx || ok != tt.ok {
			t.Errorf("ParseInstanceID(%q) = %q, %d, %v; want %q, %d, %v", tt.in, dep, idx, ok, tt.dep, tt.idx, tt.ok)
		}
		if ok && InstanceID(dep, idx) != tt.in {
			t.Errorf("InstanceID(%q, %d) = %q", dep, idx, InstanceID(dep, idx))
		}
	}
}
