package share

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 12, 10, 0, 0, 0, time.UTC)

func loc(c string, at int) Local {
	return Local{Size: int64(len(c)), MTime: t0.Add(time.Duration(at) * time.Second), Hash: hashOf(c)}
}
func rem(c string, at int) Remote {
	return Remote{CID: "cid-" + c, Size: int64(len(c)), MTime: t0.Add(time.Duration(at) * time.Second), Writer: "beta"}
}
func syn(c string) Synced { return Synced{Hash: hashOf(c), CID: "cid-" + c, Size: int64(len(c))} }

// hashOf is a fake 64-hex hash of a content (the model's contents are short words).
func hashOf(c string) string { return fmt.Sprintf("%064x", []byte(c)) }

func ops(as []Action) string {
	var out []string
	for _, a := range as {
		s := string(a.Op) + " " + a.Path
		if a.Copy != "" {
			s += " -> " + a.Copy
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// TestPlanCases: the classification of one path and the step it gets, case by case.
func TestPlanCases(t *testing.T) {
	lc := ConflictName("f", "alpha", t0.Add(5*time.Second))
	rc := ConflictName("f", "beta", t0.Add(5*time.Second))
	if lc != "f.conflict-alpha-20260112T100005.000Z" {
		t.Fatalf("conflict name %q", lc)
	}
	withHash := rem("x", 1)
	withHash.Hash = hashOf("x")
	for _, tc := range []struct {
		name     string
		l        *Local
		r        *Remote
		b        *Synced
		policy   string
		readOnly bool
		want     string
		class    Class
	}{
		{name: "in sync", l: ptr(loc("a", 0)), r: ptr(rem("a", 0)), b: ptr(syn("a")), want: ""},
		{name: "local new", l: ptr(loc("a", 0)), want: "upload f", class: LocalNew},
		{name: "local new, read-only: reported", l: ptr(loc("a", 0)), readOnly: true, want: "report f", class: LocalNew},
		{name: "local modified", l: ptr(loc("b", 0)), r: ptr(rem("a", 0)), b: ptr(syn("a")), want: "upload f", class: LocalModified},
		{name: "local modified, read-only: overwritten", l: ptr(loc("b", 0)), r: ptr(rem("a", 0)), b: ptr(syn("a")), readOnly: true, want: "download f", class: LocalModified},
		{name: "local deleted", r: ptr(rem("a", 0)), b: ptr(syn("a")), want: "delete-remote f", class: LocalDeleted},
		{name: "local deleted, read-only: restored", r: ptr(rem("a", 0)), b: ptr(syn("a")), readOnly: true, want: "download f", class: LocalDeleted},
		{name: "remote new", r: ptr(rem("a", 0)), want: "download f", class: RemoteChanged},
		{name: "remote modified", l: ptr(loc("a", 0)), r: ptr(rem("b", 0)), b: ptr(syn("a")), want: "download f", class: RemoteChanged},
		{name: "remote deleted", l: ptr(loc("a", 0)), b: ptr(syn("a")), want: "delete-local f", class: RemoteChanged},
		{name: "deleted on both sides", b: ptr(syn("a")), want: "forget f", class: BothChanged},
		{name: "both new, same bytes", l: ptr(loc("x", 0)), r: &withHash, want: "adopt f", class: BothChanged},
		{name: "local deleted, remote modified: content kept", r: ptr(rem("b", 0)), b: ptr(syn("a")), want: "download f", class: BothChanged},
		{name: "remote deleted, local modified: content kept", l: ptr(loc("b", 0)), b: ptr(syn("a")), want: "upload f", class: BothChanged},
		{name: "both modified, lww, local newer", l: ptr(loc("b", 9)), r: ptr(rem("c", 5)), b: ptr(syn("a")), want: "upload f", class: BothChanged},
		{name: "both modified, lww, remote newer", l: ptr(loc("b", 5)), r: ptr(rem("c", 9)), b: ptr(syn("a")), want: "download f", class: BothChanged},
		{name: "both modified, lww, read-only: remote wins", l: ptr(loc("b", 9)), r: ptr(rem("c", 5)), b: ptr(syn("a")), readOnly: true, want: "download f", class: BothChanged},
		{name: "both modified, keep_both, local newer", l: ptr(loc("b", 9)), r: ptr(rem("c", 5)), b: ptr(syn("a")), policy: KeepBoth,
			want: "keep-remote f -> " + rc + "; upload f", class: BothChanged},
		{name: "both modified, keep_both, remote newer", l: ptr(loc("b", 5)), r: ptr(rem("c", 9)), b: ptr(syn("a")), policy: KeepBoth,
			want: "keep-local f -> " + lc + "; download f", class: BothChanged},
		{name: "both new, different, keep_both", l: ptr(loc("b", 5)), r: ptr(rem("c", 9)), policy: KeepBoth,
			want: "keep-local f -> " + lc + "; download f", class: BothChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Local: map[string]Local{}, Remote: map[string]Remote{}, Base: map[string]Synced{},
				Policy: tc.policy, Writable: !tc.readOnly, Self: "alpha"}
			if in.Policy == "" {
				in.Policy = LastWriteWins
			}
			if tc.l != nil {
				in.Local["f"] = *tc.l
			}
			if tc.r != nil {
				in.Remote["f"] = *tc.r
			}
			if tc.b != nil {
				in.Base["f"] = *tc.b
			}
			got := Plan(in)
			if ops(got) != tc.want {
				t.Fatalf("plan %q, want %q", ops(got), tc.want)
			}
			if len(got) > 0 && got[len(got)-1].Class != tc.class {
				t.Fatalf("class %s, want %s", got[len(got)-1].Class, tc.class)
			}
			in.Skip = map[string]bool{"f": true}
			if got := Plan(in); len(got) != 0 {
				t.Fatalf("a skipped path got steps: %s", ops(got))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// model is both sides of a share as contents (words) per path.
type model struct {
	local, remote map[string]string
	ltime, rtime  map[string]int
	base          map[string]string
}

func (m *model) input(policy string, writable, knowHashes bool) Input {
	in := Input{Local: map[string]Local{}, Remote: map[string]Remote{}, Base: map[string]Synced{}, Policy: policy, Writable: writable, Self: "alpha"}
	for p, c := range m.local {
		in.Local[p] = loc(c, m.ltime[p])
	}
	for p, c := range m.remote {
		r := rem(c, m.rtime[p])
		if knowHashes {
			r.Hash = hashOf(c)
		}
		in.Remote[p] = r
	}
	for p, c := range m.base {
		in.Base[p] = syn(c)
	}
	return in
}

// apply plays the plan's steps on the model (as the runner does on disk and in the DFS).
func (m *model) apply(t *rapid.T, plan []Action, writable bool) {
	for _, a := range plan {
		p := a.Path
		switch a.Op {
		case Upload:
			m.remote[p], m.rtime[p], m.base[p] = m.local[p], m.ltime[p], m.local[p]
		case Download:
			m.local[p], m.ltime[p], m.base[p] = m.remote[p], m.rtime[p], m.remote[p]
		case DeleteRemote:
			delete(m.remote, p)
			delete(m.base, p)
		case DeleteLocal:
			delete(m.local, p)
			delete(m.base, p)
		case Adopt:
			if m.local[p] != m.remote[p] {
				t.Fatalf("adopt of %s with different sides %q %q", p, m.local[p], m.remote[p])
			}
			m.base[p] = m.local[p]
		case Forget:
			delete(m.base, p)
		case KeepLocal:
			m.local[a.Copy], m.ltime[a.Copy] = m.local[p], m.ltime[p]
			if writable {
				m.remote[a.Copy], m.rtime[a.Copy], m.base[a.Copy] = m.local[p], m.ltime[p], m.local[p]
			}
		case KeepRemote:
			m.local[a.Copy], m.remote[a.Copy], m.base[a.Copy] = m.remote[p], m.remote[p], m.remote[p]
			m.ltime[a.Copy], m.rtime[a.Copy] = m.rtime[p], m.rtime[p]
		case Report:
		}
	}
}

// TestPlanProperties: from any local, DFS and base state, one plan applied brings both
// sides together (a read-only share may keep local-only files), a second plan has nothing
// left to do, and with keep_both no content changed on either side is lost.
func TestPlanProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		words := []string{"a", "b", "c", "dd"}
		paths := []string{"f", "g", "d/h"}
		m := &model{local: map[string]string{}, remote: map[string]string{}, base: map[string]string{},
			ltime: map[string]int{}, rtime: map[string]int{}}
		for _, p := range paths {
			if rapid.Bool().Draw(t, "hasBase "+p) {
				m.base[p] = rapid.SampledFrom(words).Draw(t, "base "+p)
			}
			for side, mm := range map[string]map[string]string{"local": m.local, "remote": m.remote} {
				switch rapid.IntRange(0, 2).Draw(t, side+" "+p) {
				case 0: // as synced
					if b, ok := m.base[p]; ok {
						mm[p] = b
					}
				case 1: // changed or created
					// mostly distinct per side (so a lost edit shows), sometimes equal bytes
					w := rapid.SampledFrom(words).Draw(t, side+" content "+p)
					if rapid.IntRange(0, 3).Draw(t, side+" same "+p) > 0 {
						w = side + ":" + p + ":" + w
					}
					mm[p] = w
				case 2: // deleted or absent
				}
			}
			m.ltime[p] = rapid.IntRange(0, 3).Draw(t, "ltime "+p)
			m.rtime[p] = rapid.IntRange(0, 3).Draw(t, "rtime "+p)
		}
		policy := rapid.SampledFrom([]string{LastWriteWins, KeepBoth}).Draw(t, "policy")
		writable := rapid.Bool().Draw(t, "writable")
		before := map[string]bool{}
		for p, c := range m.local {
			if b, ok := m.base[p]; !ok || b != c {
				before[c] = true
			}
		}
		for p, c := range m.remote {
			if b, ok := m.base[p]; !ok || b != c {
				before[c] = true
			}
		}
		onlyLocal := map[string]bool{}
		for p := range m.local {
			_, r := m.remote[p]
			_, b := m.base[p]
			onlyLocal[p] = !r && !b
		}
		plan := Plan(m.input(policy, writable, rapid.Bool().Draw(t, "knowHashes")))
		m.apply(t, plan, writable)
		for p := range union(m.local, m.remote) {
			l, hasL := m.local[p]
			r, hasR := m.remote[p]
			if !writable && hasL && !hasR && (onlyLocal[p] || strings.Contains(p, ".conflict-")) {
				continue // read-only: local-only files are left alone
			}
			if !writable && hasL && !hasR {
				if _, b := m.base[p]; !b {
					continue // read-only: kept locally when the DFS deleted a file edited here
				}
			}
			if hasL != hasR || l != r {
				t.Fatalf("%s differs after the plan %s: local %q (%v) remote %q (%v)", p, ops(plan), l, hasL, r, hasR)
			}
		}
		if again := Plan(m.input(policy, writable, true)); len(again) > 0 {
			for _, a := range again {
				if a.Op != Report {
					t.Fatalf("a second plan still has steps: %s (first: %s)", ops(again), ops(plan))
				}
			}
		}
		if policy == KeepBoth && writable {
			after := map[string]bool{}
			for _, c := range m.local {
				after[c] = true
			}
			for _, c := range m.remote {
				after[c] = true
			}
			for c := range before {
				if !after[c] {
					t.Fatalf("keep_both lost the content %q (plan %s)", c, ops(plan))
				}
			}
		}
	})
}

func union(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
