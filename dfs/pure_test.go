package dfs

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rads-lang/constellation/internal/state"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"/cluster/config.json", true}, {"/a", true}, {"/ü/日本", true}, {"/a b/c", true},
		{"", false}, {"a", false}, {"/", false}, {"/a/", false}, {"//a", false}, {"/a//b", false},
		{"/a/../b", false}, {"/a/./b", false}, {"/..", false}, {"/a\x00b", false}, {"/a\nb", false},
		{"/\xc3\x28", false}, {"/" + strings.Repeat("x", 255), true}, {"/" + strings.Repeat("x", 256), false},
		{strings.Repeat("/d", MaxDepth), true}, {strings.Repeat("/d", MaxDepth+1), false},
		{"/" + strings.Repeat("abcdefgh/", 600) + "x", false},
	} {
		err := CheckPath(tc.p)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadPath)) {
			t.Errorf("CheckPath(%q) = %v; want ok=%v", tc.p, err, tc.ok)
		}
	}
	for in, want := range map[string]string{"/": "/", "/a/": "/a", "/a/b": "/a/b"} {
		if got, err := CleanPrefix(in); err != nil || got != want {
			t.Errorf("CleanPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestPlace(t *testing.T) {
	cands := []Candidate{{"n1", "z1", 100}, {"n2", "z1", 100}, {"n3", "z2", 100}, {"n4", "z3", 100}, {"n5", "", 0}}
	for _, tc := range []struct {
		name  string
		r     int
		check func([]string) error
	}{
		{"spread over zones first", 3, func(h []string) error {
			zones := map[string]bool{}
			for _, id := range h {
				for _, c := range cands {
					if c.ID == id {
						zones[c.Zone] = true
					}
				}
			}
			if len(h) != 3 || len(zones) != 3 {
				return fmt.Errorf("%v covers %d zones", h, len(zones))
			}
			return nil
		}},
		{"no node without room", 5, func(h []string) error {
			if len(h) != 4 || containsStr(h, "n5") {
				return fmt.Errorf("%v", h)
			}
			return nil
		}},
		{"zero", 0, func(h []string) error {
			if len(h) != 0 {
				return fmt.Errorf("%v", h)
			}
			return nil
		}},
	} {
		h := Place("bafykey", cands, tc.r)
		if err := tc.check(h); err != nil {
			t.Errorf("%s: Place = %v", tc.name, err)
		}
		if again := Place("bafykey", append([]Candidate(nil), cands[3], cands[1], cands[0], cands[2], cands[4]), tc.r); fmt.Sprint(again) != fmt.Sprint(h) {
			t.Errorf("%s: order of candidates changed the choice: %v vs %v", tc.name, h, again)
		}
	}
	// weight: a node with 3x the room wins about 3x as often
	wins := map[string]int{}
	for i := 0; i < 4000; i++ {
		h := Place(fmt.Sprintf("k%d", i), []Candidate{{"big", "", 300}, {"small", "", 100}}, 1)
		wins[h[0]]++
	}
	if r := float64(wins["big"]) / float64(wins["small"]); r < 2.5 || r > 3.6 {
		t.Errorf("big/small wins = %v (%v); want about 3", r, wins)
	}
	// stability: removing a node moves only the keys it held
	moved := 0
	all := []Candidate{{"a", "", 1}, {"b", "", 1}, {"c", "", 1}, {"d", "", 1}}
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("k%d", i)
		before := Place(k, all, 1)[0]
		after := Place(k, all[:3], 1)[0]
		if before != after && before != "d" {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys moved between surviving nodes", moved)
	}
	for _, tc := range []struct{ r, ack, want int }{{3, 0, 2}, {2, 0, 2}, {1, 0, 1}, {5, 0, 3}, {3, 1, 1}, {3, 9, 3}, {0, 0, 0}} {
		if got := AckCount(tc.r, tc.ack); got != tc.want {
			t.Errorf("AckCount(%d, %d) = %d; want %d", tc.r, tc.ack, got, tc.want)
		}
	}
}

func ver(w string, wall int64, n uint64) Version {
	return Version{CID: "c-" + w, Writer: w, WriterID: w, Number: n, HLC: Stamp{Wall: wall}}
}

func TestResolve(t *testing.T) {
	a1 := EntryRecord{Path: "/f", Cur: ver("a", 10, 1)}
	bSawA := EntryRecord{Path: "/f", Cur: ver("b", 20, 2), Seen: []Seen{{"a", Stamp{Wall: 10}}}}
	bConc := EntryRecord{Path: "/f", Cur: ver("b", 5, 1)}
	aLater := EntryRecord{Path: "/f", Cur: ver("a", 30, 3)}
	bDel := EntryRecord{Path: "/f", Cur: Version{Writer: "b", WriterID: "b", Deleted: true, Number: 2, HLC: Stamp{Wall: 20}}, Seen: []Seen{{"a", Stamp{Wall: 10}}}}
	for _, tc := range []struct {
		name   string
		es     []EntryRecord
		policy string
		want   string
	}{
		{"one writer", []EntryRecord{a1}, KeepBoth, "/f=a"},
		{"a later write that saw the other is no conflict", []EntryRecord{a1, bSawA}, KeepBoth, "/f=b"},
		{"concurrent, lww", []EntryRecord{a1, bConc}, LastWriteWins, "/f=a"},
		{"concurrent, keep_both", []EntryRecord{bConc, a1}, KeepBoth, "/f=a /f.conflict-b-19700101T000000.000Z=b"},
		{"delete after seeing", []EntryRecord{a1, bDel}, KeepBoth, ""},
		{"write concurrent with a delete, keep_both", []EntryRecord{aLater, bDel}, KeepBoth, "/f=a"},
		{"withdrawn", []EntryRecord{a1, {Path: "/f", Cur: ver("b", 40, 2), Withdrawn: true}}, KeepBoth, "/f=a"},
	} {
		_, vis := Resolve(tc.es, tc.policy)
		var got []string
		for _, v := range vis {
			got = append(got, v.Path+"="+v.Entry.Cur.Writer)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: Resolve = %q; want %q", tc.name, strings.Join(got, " "), tc.want)
		}
	}
}

// FuzzCheckPath: the path rules never panic, and an accepted path is its own clean form.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/../b", "//", "/ü", "/a/", "a", "/.conflict-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) == nil {
			if c, err := CleanPrefix(p); err != nil || c != p {
				t.Fatalf("CheckPath accepts %q but CleanPrefix gives %q, %v", p, c, err)
			}
			if strings.Contains(p, "//") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}

// FuzzDecodeRecords: the record decoders (input from peers through the replicated
// document) never panic and refuse what the resolver could not use.
func FuzzDecodeRecords(f *testing.F) {
	for _, v := range []any{
		EntryRecord{Path: "/a", Cur: ver("w", 1, 1), Seen: []Seen{{"x", Stamp{Wall: 1}}}, History: []Version{ver("w", 0, 1)}},
		TreeRecord{Prefix: "/t", Replication: 3},
		PinRecord{Root: "bafy", NodeID: "n"},
		SnapshotRecord{Name: "s", Files: []SnapFile{{Path: "/a", CID: "bafy"}}},
	} {
		b, err := state.Encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeEntry(b); err == nil {
			if CheckPath(e.Path) != nil || e.Cur.WriterID == "" {
				t.Fatalf("decodeEntry accepted %+v", e)
			}
			Resolve([]EntryRecord{e, e}, KeepBoth)
			Resolve([]EntryRecord{e, e}, committedPolicy)
		}
		if tr, err := decodeTree(b); err == nil {
			if _, err := CleanPrefix(tr.Prefix); err != nil {
				t.Fatalf("decodeTree accepted %+v", tr)
			}
		}
		_, _ = decodePin(b)
		_, _ = decodeSnapshot(b)
		var req PinRequest
		_ = state.Decode(b, &req)
	})
}
