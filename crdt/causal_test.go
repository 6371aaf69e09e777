package crdt

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
)

// TestAddWinsSetAgainstHappenedBefore checks the add-wins set against an
// oracle built from happened-before: with causal delivery, element e is in
// the set at a replica iff some add(e) the replica knows of is not in the
// causal past of any remove of e (or of the whole entry) it knows of.
func TestAddWinsSetAgainstHappenedBefore(t *testing.T) {
	const replicas, nops = 5, 3000
	rng := rand.New(rand.NewPCG(7, 8))
	ft := newFakeTime()
	type hop struct {
		dot     Dot
		key     string
		elem    string // "" for Remove(key)
		add     bool
		past    VersionVector // happened-before: what the issuer knew
		payload *Delta
		killers []*hop // removes with this add in their causal past
	}
	docs := make([]*Document, replicas)
	known := make([]VersionVector, replicas)
	for i := range docs {
		docs[i] = newDoc(t, ReplicaID(i+1), ft)
		known[i] = VersionVector{}
	}
	var all []*hop
	oracle := func(r int, key string) []string {
		kn := known[r]
		in := func(o *hop, v VersionVector) bool { return o.dot.Counter <= v[o.dot.Replica] }
		set := map[string]bool{}
		for _, a := range all {
			if !a.add || a.key != key || !in(a, kn) {
				continue
			}
			alive := true
			for _, rm := range a.killers {
				if in(rm, kn) {
					alive = false
					break
				}
			}
			if alive {
				set[a.elem] = true
			}
		}
		var out []string
		for e := range set {
			out = append(out, e)
		}
		sort.Strings(out)
		return out
	}
	check := func(r int, key, when string) {
		got, want := docs[r].SetMembers("s", key), oracle(r, key)
		if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Fatalf("%s: replica %d key %s: members %v; happened-before oracle %v", when, r+1, key, got, want)
		}
	}
	type msg struct {
		to int
		op *hop
	}
	var pending []msg
	deliverable := func(m msg) bool {
		kn := known[m.to]
		if m.op.dot.Counter != kn[m.op.dot.Replica]+1 {
			return false
		}
		for r, n := range m.op.past {
			if r != m.op.dot.Replica && kn[r] < n {
				return false
			}
		}
		return true
	}
	deliver := func(i int) {
		m := pending[i]
		pending[i] = pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		join(t, docs[m.to], m.op.payload)
		known[m.to][m.op.dot.Replica] = m.op.dot.Counter
		check(m.to, m.op.key, "after delivery")
	}
	for done := 0; done < nops; {
		ft.t = ft.t.Add(1)
		if len(pending) > 0 && rng.IntN(2) == 0 {
			i := rng.IntN(len(pending))
			if deliverable(pending[i]) {
				deliver(i)
			}
			continue
		}
		done++
		r := rng.IntN(replicas)
		o := &hop{key: fmt.Sprint("k", rng.IntN(3)), elem: fmt.Sprint("e", rng.IntN(4)), past: known[r].Clone()}
		var d *Delta
		switch p := rng.IntN(10); {
		case p < 5:
			o.add = true
			d = must(t)(docs[r].AddToSet("s", o.key, o.elem))
		case p < 9:
			d = must(t)(docs[r].RemoveFromSet("s", o.key, o.elem))
		default:
			o.elem = ""
			d = must(t)(docs[r].Remove("s", o.key))
		}
		o.dot, o.payload = d.ops[0].it.dot, d
		known[r][o.dot.Replica] = o.dot.Counter
		if !o.add {
			for _, a := range all {
				if a.add && a.key == o.key && (o.elem == "" || o.elem == a.elem) && a.dot.Counter <= o.past[a.dot.Replica] {
					a.killers = append(a.killers, o)
				}
			}
		}
		all = append(all, o)
		check(r, o.key, "after local op")
		for j := range docs {
			if j != r {
				pending = append(pending, msg{to: j, op: o})
			}
		}
	}
	for len(pending) > 0 {
		for i := 0; i < len(pending); i++ {
			if deliverable(pending[i]) {
				deliver(i)
				i--
			}
		}
	}
	for r := range docs {
		for k := 0; k < 3; k++ {
			check(r, fmt.Sprint("k", k), "final")
		}
		if !sameState(t, docs[r], docs[0]) {
			t.Fatalf("replica %d diverged", r+1)
		}
	}
}
