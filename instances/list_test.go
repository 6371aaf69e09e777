package instances

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

func TestNaturalCompare(t *testing.T) {
	sorted := []string{"a", "a1", "a01", "a2", "a9", "a10", "a10b", "b", "ft-1", "ft-2", "ft-10", "ft-10-1", "ft-10-2", "ft-100"}
	shuffled := slices.Clone(sorted)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, naturalCompare)
	if !slices.Equal(shuffled, sorted) {
		t.Fatalf("natural sort = %v; want %v", shuffled, sorted)
	}
	for _, a := range sorted {
		for _, b := range sorted {
			if (naturalCompare(a, b) == 0) != (a == b) || sign(naturalCompare(a, b)) != -sign(naturalCompare(b, a)) {
				t.Fatalf("naturalCompare(%q, %q) = %d, reverse %d: not a total order", a, b, naturalCompare(a, b), naturalCompare(b, a))
			}
		}
	}
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func TestListQueryPage(t *testing.T) {
	var rs []Record
	for _, n := range []string{"w-1", "w-2", "w-3", "w-10", "w-11"} {
		rs = append(rs, Record{Name: n, Status: "running", Node: "n1"})
	}
	rs[2].Status, rs[3].Namespace = "failed", "team-a"
	for _, c := range []struct {
		query, want, next string
	}{
		{"", "w-1 w-2 w-3 w-10 w-11", ""},
		{"limit=2", "w-1 w-2", "w-2"},
		{"limit=2&after=w-2", "w-3 w-10", "w-10"},
		{"limit=2&after=w-10", "w-11", ""},
		{"limit=5", "w-1 w-2 w-3 w-10 w-11", ""},
		{"status=failed", "w-3", ""},
		{"namespace=default&limit=3", "w-1 w-2 w-3", "w-3"},
		{"namespace=team-a", "w-10", ""},
		{"node=n2", "", ""},
		{"after=w-4", "w-10 w-11", ""}, // a name that no longer exists still marks a place
	} {
		q, _ := url.ParseQuery(c.query)
		lq, err := parseListQuery(q)
		if err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		page, next := lq.page(rs)
		var names []string
		for _, r := range page {
			names = append(names, r.Name)
		}
		if got := strings.Join(names, " "); got != c.want || next != c.next {
			t.Errorf("%q = %q next %q; want %q next %q", c.query, got, next, c.want, c.next)
		}
	}
}

// TestRecordNamespace: the namespace is field 27 of the record; a record written by a node
// that predates it shows the default namespace, and such a node decodes new records.
func TestRecordNamespace(t *testing.T) {
	b, err := EncodeRecord(Record{Name: "w", Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRecord(b)
	if err != nil || r.Namespace != "team-a" || r.Info().Namespace != "team-a" {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	var old struct {
		Name string `cbor:"1,keyasint,omitempty"`
	}
	if err := state.Decode(b, &old); err != nil || old.Name != "w" {
		t.Fatalf("a record without field 27 decodes the new one: %+v, %v", old, err)
	}
	legacy, _ := state.Encode(old)
	if r, err := DecodeRecord(legacy); err != nil || r.Info().Namespace != api.DefaultNamespace {
		t.Fatalf("a legacy record shows namespace %q (%v); want %q", r.Info().Namespace, err, api.DefaultNamespace)
	}
}
