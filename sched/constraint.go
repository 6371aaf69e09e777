package sched

import (
	"slices"
	"strconv"
	"strings"
)

// Op is a comparison operator of a constraint or affinity term.
type Op uint8

// Operators. A missing label never equals a value: it fails = and in, and passes != and
// not in.
const (
	OpEq    Op = iota + 1 // =  (== is accepted as a synonym)
	OpNe                  // !=
	OpIn                  // in (a,b)
	OpNotIn               // not in (a,b)
)

func (o Op) String() string {
	switch o {
	case OpEq:
		return "="
	case OpNe:
		return "!="
	case OpIn:
		return " in "
	case OpNotIn:
		return " not in "
	}
	return "?"
}

const (
	constraintForms = "node.name=VALUE, node.<label>=VALUE, node.<label>!=VALUE, node.<label> in (V1,V2), node.<label> not in (V1,V2)"
	termForms       = "KEY=VALUE, KEY!=VALUE, KEY in (V1,V2), KEY not in (V1,V2) over instance labels (service=cache; deployment and namespace are implicit labels), optionally followed by ;weight=1..100 (soft, default 50) or ;hard"

	maxKeyLen   = 63
	maxValueLen = 253
	maxValues   = 64
	maxExprLen  = 4096

	// DefaultTermWeight is the weight of an affinity term written without ;weight=.
	DefaultTermWeight = 50
	// MaxTermWeight bounds ;weight=.
	MaxTermWeight = 100
)

// Constraint is a hard filter on node attributes: node.name (the node's ID) or a node label.
// Parse one with ParseConstraint. The zero value matches nothing useful; do not use it.
type Constraint struct {
	Attr   string   // "name" for node.name, else the label key
	Op     Op       //
	Values []string // one value for = and !=, one or more for in and not in
}

// String returns the canonical form, which ParseConstraint parses back to an equal Constraint.
func (c Constraint) String() string { return "node." + c.Attr + formatOp(c.Op, c.Values) }

func formatOp(op Op, vals []string) string {
	switch op {
	case OpEq, OpNe:
		if len(vals) == 0 {
			return op.String()
		}
		return op.String() + vals[0]
	default:
		return op.String() + "(" + strings.Join(vals, ",") + ")"
	}
}

// Match reports whether node n satisfies c.
func (c Constraint) Match(n *Node) bool {
	var v string
	var ok bool
	if c.Attr == "name" {
		v, ok = n.ID, true
	} else {
		v, ok = n.Labels[c.Attr]
	}
	return matchValue(c.Op, c.Values, v, ok)
}

func matchValue(op Op, vals []string, v string, present bool) bool {
	switch op {
	case OpEq:
		return present && v == vals[0]
	case OpNe:
		return !present || v != vals[0]
	case OpIn:
		return present && slices.Contains(vals, v)
	case OpNotIn:
		return !present || !slices.Contains(vals, v)
	}
	return false
}

// ParseConstraint parses a node constraint:
//
//	node.name=n1            the node's ID (name) equals n1
//	node.region=us-east     label region equals us-east (== is a synonym for =)
//	node.name!=n3           label or name differs (a missing label differs from everything)
//	node.type in (database,cache)
//	node.type not in (database,cache)
//
// Everything after "node." up to the operator is the label key (letters, digits, '.', '_',
// '/', '-'; at most 63), except "name", which is the node's name; a label called "name" cannot
// be constrained. Spaces around operators and list items are ignored. Errors are *ParseError.
func ParseConstraint(s string) (Constraint, error) {
	fail := func(reason string) (Constraint, error) {
		return Constraint{}, &ParseError{Kind: "constraint", Expr: s, Reason: reason}
	}
	in := strings.TrimSpace(s)
	if in == "" {
		return fail("empty")
	}
	if len(in) > maxExprLen {
		return fail("longer than " + strconv.Itoa(maxExprLen) + " bytes")
	}
	rest, ok := strings.CutPrefix(in, "node.")
	if !ok {
		if k, _, _, err := parseExpr(in); err == "" {
			return fail("constraints name a node attribute: write node." + k + " (node.name or node.<label>)")
		}
		return fail("must start with node.")
	}
	key, op, vals, reason := parseExpr(rest)
	if reason != "" {
		return fail(reason)
	}
	return Constraint{Attr: key, Op: op, Values: vals}, nil
}

// ParseConstraints parses each expression with ParseConstraint and returns the first error.
func ParseConstraints(exprs []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(exprs))
	for _, e := range exprs {
		c, err := ParseConstraint(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Term is an affinity or anti-affinity term over the labels of instances already running on
// a node: a node "matches" when at least one instance on it (including instances placed
// earlier in the same plan) has labels satisfying Key Op Values. Every instance carries the
// implicit labels deployment=<its deployment> and namespace=<its namespace> on top of its
// deployment's labels.
//
// A soft term (the default) adds Weight (affinity) or subtracts it (anti-affinity) from a
// matching node's affinity score; a hard term filters: hard affinity keeps only matching
// nodes, hard anti-affinity removes them. See Place for how scores combine.
type Term struct {
	Key    string
	Op     Op
	Values []string
	Weight int  // 1..MaxTermWeight for soft terms; ignored when Hard
	Hard   bool // filter instead of score
}

// String returns the canonical form, which ParseTerm parses back to an equal Term.
func (t Term) String() string {
	s := t.Key + formatOp(t.Op, t.Values)
	switch {
	case t.Hard:
		s += ";hard"
	case t.Weight != DefaultTermWeight:
		s += ";weight=" + strconv.Itoa(t.Weight)
	}
	return s
}

// Matches reports whether labels (with the implicit deployment and namespace labels
// already merged in) satisfy the term.
func (t Term) Matches(labels map[string]string) bool {
	v, ok := labels[t.Key]
	return matchValue(t.Op, t.Values, v, ok)
}

// ParseTerm parses an affinity or anti-affinity term:
//
//	service=cache            soft, weight 50
//	service=cache;weight=80  soft, weight 80 (1..100)
//	service=db-replica;hard  hard: a filter, not a preference
//	tier in (web,api)        also !=, not in
//
// Keys follow the rules of ParseConstraint; values may not contain ';'. Errors are
// *ParseError.
func ParseTerm(s string) (Term, error) {
	fail := func(reason string) (Term, error) {
		return Term{}, &ParseError{Kind: "affinity", Expr: s, Reason: reason}
	}
	in := strings.TrimSpace(s)
	if in == "" {
		return fail("empty")
	}
	if len(in) > maxExprLen {
		return fail("longer than " + strconv.Itoa(maxExprLen) + " bytes")
	}
	expr, opts, hasOpts := strings.Cut(in, ";")
	if strings.HasPrefix(expr, "node.") {
		return fail("affinity terms match instance labels (e.g. service=cache); use a constraint for node attributes")
	}
	key, op, vals, reason := parseExpr(expr)
	if reason != "" {
		return fail(reason)
	}
	t := Term{Key: key, Op: op, Values: vals, Weight: DefaultTermWeight}
	if hasOpts {
		o := strings.TrimSpace(opts)
		if o == "hard" {
			t.Hard = true
		} else if w, ok := strings.CutPrefix(o, "weight="); ok {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || n < 1 || n > MaxTermWeight {
				return fail("weight must be an integer from 1 to " + strconv.Itoa(MaxTermWeight))
			}
			t.Weight = n
		} else {
			return fail("after ';' expected weight=N or hard")
		}
	}
	return t, nil
}

// ParseTerms parses each expression with ParseTerm and returns the first error.
func ParseTerms(exprs []string) ([]Term, error) {
	out := make([]Term, 0, len(exprs))
	for _, e := range exprs {
		t, err := ParseTerm(e)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '/' || c == '-'
}

// parseExpr parses `KEY OP VALUE(S)`; reason is empty on success.
func parseExpr(s string) (key string, op Op, vals []string, reason string) {
	i := 0
	for i < len(s) && isKeyByte(s[i]) {
		i++
	}
	key = s[:i]
	switch {
	case key == "":
		return "", 0, nil, "missing key before the operator"
	case len(key) > maxKeyLen:
		return "", 0, nil, "key longer than " + strconv.Itoa(maxKeyLen) + " characters"
	}
	rest := strings.TrimLeft(s[i:], " \t")
	switch {
	case strings.HasPrefix(rest, "!="):
		op, rest = OpNe, rest[2:]
	case strings.HasPrefix(rest, "=="):
		op, rest = OpEq, rest[2:]
	case strings.HasPrefix(rest, "="):
		op, rest = OpEq, rest[1:]
	case hasWord(rest, "in"):
		op, rest = OpIn, rest[2:]
	case hasWord(rest, "not"):
		rest = strings.TrimLeft(rest[3:], " \t")
		if !hasWord(rest, "in") {
			return "", 0, nil, "expected in after not"
		}
		op, rest = OpNotIn, rest[2:]
	case rest == "":
		return "", 0, nil, "missing operator after " + strconv.Quote(key)
	default:
		if i < len(s) && !isKeyByte(s[i]) && s[i] != ' ' && s[i] != '\t' {
			return "", 0, nil, "unexpected " + strconv.QuoteRune(rune(s[i])) + " in key (keys are letters, digits, '.', '_', '/', '-')"
		}
		return "", 0, nil, "unknown operator (use =, !=, in or not in)"
	}
	rest = strings.TrimSpace(rest)
	if op == OpEq || op == OpNe {
		if rest == "" {
			return "", 0, nil, "missing value after " + strings.TrimSpace(op.String())
		}
		if r := badValue(rest); r != "" {
			return "", 0, nil, r
		}
		return key, op, []string{rest}, ""
	}
	if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
		return "", 0, nil, "in needs a parenthesised list, e.g. (a,b)"
	}
	items := strings.Split(rest[1:len(rest)-1], ",")
	if len(items) > maxValues {
		return "", 0, nil, "more than " + strconv.Itoa(maxValues) + " values"
	}
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			return "", 0, nil, "empty value in list"
		}
		if strings.ContainsAny(it, "()") {
			return "", 0, nil, "unexpected parenthesis in list value " + strconv.Quote(it)
		}
		if r := badValue(it); r != "" {
			return "", 0, nil, r
		}
		if !slices.Contains(vals, it) {
			vals = append(vals, it)
		}
	}
	return key, op, vals, ""
}

// hasWord reports whether s starts with the word w followed by a space, tab or '('.
func hasWord(s, w string) bool {
	if !strings.HasPrefix(s, w) || len(s) == len(w) {
		return false
	}
	c := s[len(w)]
	return c == ' ' || c == '\t' || c == '('
}

func badValue(v string) string {
	if len(v) > maxValueLen {
		return "value longer than " + strconv.Itoa(maxValueLen) + " characters"
	}
	if strings.ContainsAny(v, ",=\n;") {
		return "value " + strconv.Quote(v) + " contains ',', '=', ';' or a newline"
	}
	return ""
}
