package sched

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	tests := []struct {
		in   string
		want Constraint
	}{
		{"node.region=us-east", Constraint{"region", OpEq, []string{"us-east"}}},
		{"  node.region == us-east ", Constraint{"region", OpEq, []string{"us-east"}}},
		{"node.name!=n3", Constraint{"name", OpNe, []string{"n3"}}},
		{"node.type in (database,cache)", Constraint{"type", OpIn, []string{"database", "cache"}}},
		{"node.type in(database, cache, database)", Constraint{"type", OpIn, []string{"database", "cache"}}},
		{"node.type not in (gpu)", Constraint{"type", OpNotIn, []string{"gpu"}}},
		{"node.topology.kubernetes.io/zone=a", Constraint{"topology.kubernetes.io/zone", OpEq, []string{"a"}}},
		{"node.gpu=true", Constraint{"gpu", OpEq, []string{"true"}}},
		{"node.in=x", Constraint{"in", OpEq, []string{"x"}}},
		{"node.desc=two words", Constraint{"desc", OpEq, []string{"two words"}}},
	}
	for _, tt := range tests {
		got, err := ParseConstraint(tt.in)
		if err != nil {
			t.Errorf("ParseConstraint(%q) error %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseConstraint(%q) = %#v; want %#v", tt.in, got, tt.want)
		}
		back, err := ParseConstraint(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("round trip of %q via %q = %#v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestParseConstraintErrors(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"", "empty"},
		{"region=us-east", "write node.region"},
		{"labels.x", "must start with node."},
		{"node.", "missing key"},
		{"node.=x", "missing key"},
		{"node.region", "missing operator"},
		{"node.region=", "missing value"},
		{"node.region!=", "missing value"},
		{"node.region~us", "unexpected '~'"},
		{"node.region >= 3", "unknown operator"},
		{"node.region in us-east", "parenthesised list"},
		{"node.region in (a,,b)", "empty value"},
		{"node.region in ()", "empty value"},
		{"node.region in ((a))", "parenthesis"},
		{"node.region not (a)", "expected in after not"},
		{"node.region=a,b", "contains ','"},
		{"node.region=a=b", "contains ','"},
		{"node." + strings.Repeat("k", 64) + "=v", "key longer"},
		{"node.k=" + strings.Repeat("v", 254), "value longer"},
	}
	for _, tt := range tests {
		_, err := ParseConstraint(tt.in)
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrParse) {
			t.Errorf("ParseConstraint(%q) error = %v; want *ParseError", tt.in, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.reason) || !strings.Contains(msg, "accepted forms: node.name=VALUE") ||
			!strings.Contains(msg, tt.in) && tt.in != "" {
			t.Errorf("ParseConstraint(%q) error %q; want it to name the input, %q and the accepted forms", tt.in, msg, tt.reason)
		}
	}
}

func TestConstraintMatch(t *testing.T) {
	n := &Node{ID: "n1", Labels: map[string]string{"region": "us-east", "type": "database"}}
	bare := &Node{ID: "n2"}
	tests := []struct {
		expr       string
		n1, n2bare bool
	}{
		{"node.region=us-east", true, false},
		{"node.region!=us-east", false, true}, // a missing label differs
		{"node.name=n1", true, false},
		{"node.name!=n1", false, true},
		{"node.type in (cache,database)", true, false},
		{"node.type not in (cache,database)", false, true},
		{"node.type in (cache)", false, false},
	}
	for _, tt := range tests {
		c, err := ParseConstraint(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Match(n); got != tt.n1 {
			t.Errorf("%s on n1 = %v; want %v", tt.expr, got, tt.n1)
		}
		if got := c.Match(bare); got != tt.n2bare {
			t.Errorf("%s on unlabelled node = %v; want %v", tt.expr, got, tt.n2bare)
		}
	}
}

func TestParseTerm(t *testing.T) {
	tests := []struct {
		in   string
		want Term
	}{
		{"service=cache", Term{Key: "service", Op: OpEq, Values: []string{"cache"}, Weight: 50}},
		{"service=cache;weight=80", Term{Key: "service", Op: OpEq, Values: []string{"cache"}, Weight: 80}},
		{"service = db-replica ; hard", Term{Key: "service", Op: OpEq, Values: []string{"db-replica"}, Weight: 50, Hard: true}},
		{"tier in (web,api);weight=1", Term{Key: "tier", Op: OpIn, Values: []string{"web", "api"}, Weight: 1}},
		{"deployment!=web", Term{Key: "deployment", Op: OpNe, Values: []string{"web"}, Weight: 50}},
	}
	for _, tt := range tests {
		got, err := ParseTerm(tt.in)
		if err != nil {
			t.Errorf("ParseTerm(%q) error %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTerm(%q) = %#v; want %#v", tt.in, got, tt.want)
		}
		back, err := ParseTerm(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("round trip of %q via %q = %#v, %v", tt.in, got.String(), back, err)
		}
	}
	bad := []struct{ in, reason string }{
		{"", "empty"},
		{"node.region=us", "use a constraint"},
		{"service", "missing operator"},
		{"service=cache;weight=0", "weight must be"},
		{"service=cache;weight=101", "weight must be"},
		{"service=cache;weight=x", "weight must be"},
		{"service=cache;soft", "expected weight=N or hard"},
		{"=cache", "missing key"},
	}
	for _, tt := range bad {
		_, err := ParseTerm(tt.in)
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), "KEY=VALUE") {
			t.Errorf("ParseTerm(%q) error = %v; want a parse error containing %q and the accepted forms", tt.in, err, tt.reason)
		}
	}
}

func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{"node.region=us-east", "node.type in (a,b)", "node.x not in (y)", "node.name!=n3", "service=cache;weight=80", "a in ((", "node.=", ";hard"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := ParseConstraint(s); err == nil {
			back, err := ParseConstraint(c.String())
			if err != nil || !reflect.DeepEqual(back, c) {
				t.Fatalf("constraint %q: canonical %q reparses to %#v, %v", s, c.String(), back, err)
			}
		} else if !errors.Is(err, ErrParse) {
			t.Fatalf("constraint %q: error %v is not ErrParse", s, err)
		}
		if tm, err := ParseTerm(s); err == nil {
			back, err := ParseTerm(tm.String())
			if err != nil || !reflect.DeepEqual(back, tm) {
				t.Fatalf("term %q: canonical %q reparses to %#v, %v", s, tm.String(), back, err)
			}
		} else if !errors.Is(err, ErrParse) {
			t.Fatalf("term %q: error %v is not ErrParse", s, err)
		}
	})
}
