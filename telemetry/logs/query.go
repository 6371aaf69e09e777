package logs

import (
	"bytes"
	"fmt"
	"strings"
)

// Query language (see doc.go):
//
//	query   = or
//	or      = and { "OR" and }
//	and     = unary { ["AND"] unary }          juxtaposition is AND
//	unary   = ("NOT" | "-") unary | primary
//	primary = "(" or ")" | PHRASE | FIELD (":" | "=") (WORD | PHRASE) | WORD
//
// Keywords are upper case (lower-case "and" is a term). A WORD matches an entry whose
// message or a field value holds it as a whole word, case-insensitively ("err*" matches
// words starting with err); a PHRASE ("user logged in") matches a case-insensitive
// substring of the message or a field value; field:value compares the field's value
// case-insensitively ("*" at the end: prefix).

// QueryError is a query that does not parse; Pos is the byte offset (0-based).
type QueryError struct {
	Pos int
	Msg string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("log query: %s at position %d", e.Msg, e.Pos+1)
}

// MaxQueryBytes bounds a query's text.
const MaxQueryBytes = 4096

// maxDepth bounds nesting (parentheses and NOT).
const maxDepth = 64

type nodeKind int

const (
	kAll nodeKind = iota // the empty query
	kAnd
	kOr
	kNot
	kTerm   // a word (prefix when pre)
	kPhrase // a substring
	kField  // field = value (prefix when pre)
)

// Query is a parsed log query. The zero Query (and Parse("")) matches every entry.
type Query struct {
	root *qnode
	text string
}

type qnode struct {
	kind  nodeKind
	kids  []*qnode
	field string // kField: the field name (lower case)
	val   []byte // lower case
	pre   bool   // prefix match
}

// String is the query's text.
func (q *Query) String() string { return q.text }

type token struct {
	kind  int // tWord, tPhrase, tField, tLParen, tRParen, tAnd, tOr, tNot, tEOF
	pos   int
	text  string
	field string
}

const (
	tEOF = iota
	tWord
	tPhrase
	tField
	tLParen
	tRParen
	tAnd
	tOr
	tNot
)

func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			out = append(out, token{kind: tLParen, pos: i})
			i++
		case c == ')':
			out = append(out, token{kind: tRParen, pos: i})
			i++
		case c == '"':
			p, n, err := readPhrase(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, token{kind: tPhrase, pos: i, text: p})
			i = n
		case c == '-' && (i+1 < len(s) && s[i+1] != ' ') && (i == 0 || isSpaceOrParen(s[i-1])):
			out = append(out, token{kind: tNot, pos: i})
			i++
		default:
			start := i
			for i < len(s) && !isSpaceOrParen(s[i]) && s[i] != '"' && s[i] != ':' && s[i] != '=' {
				i++
			}
			w := s[start:i]
			if i < len(s) && (s[i] == ':' || s[i] == '=') {
				if w == "" {
					return nil, &QueryError{start, fmt.Sprintf("%q without a field name before it (write field%cvalue)", s[i], s[i])}
				}
				op := i
				i++
				t := token{kind: tField, pos: start, field: strings.ToLower(w)}
				if i < len(s) && s[i] == '"' {
					p, n, err := readPhrase(s, i)
					if err != nil {
						return nil, err
					}
					t.text, i = p, n
				} else {
					vs := i
					for i < len(s) && !isSpaceOrParen(s[i]) && s[i] != '"' {
						i++
					}
					t.text = s[vs:i]
				}
				if t.text == "" {
					return nil, &QueryError{op, fmt.Sprintf("field %q has no value after %q (write %s%cvalue or %s%c\"two words\")", w, s[op], w, s[op], w, s[op])}
				}
				out = append(out, t)
				continue
			}
			switch w {
			case "AND", "&&":
				out = append(out, token{kind: tAnd, pos: start})
			case "OR", "||":
				out = append(out, token{kind: tOr, pos: start})
			case "NOT", "!":
				out = append(out, token{kind: tNot, pos: start})
			default:
				out = append(out, token{kind: tWord, pos: start, text: w})
			}
		}
	}
	return append(out, token{kind: tEOF, pos: len(s)}), nil
}

func isSpaceOrParen(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == ')'
}

// readPhrase reads a quoted phrase starting at s[i] == '"' (backslash escapes '"' and '\').
func readPhrase(s string, i int) (string, int, error) {
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
				b.WriteByte(s[j+1])
				j++
				continue
			}
			b.WriteByte('\\')
		case '"':
			if b.Len() == 0 {
				return "", 0, &QueryError{i, "empty phrase \"\""}
			}
			return b.String(), j + 1, nil
		default:
			b.WriteByte(s[j])
		}
	}
	return "", 0, &QueryError{i, "unbalanced quote: the phrase starting here has no closing '\"'"}
}

type parser struct {
	toks  []token
	i     int
	depth int
}

// Parse parses a query. The empty query matches everything.
func Parse(s string) (*Query, error) {
	if len(s) > MaxQueryBytes {
		return nil, &QueryError{MaxQueryBytes, fmt.Sprintf("query of %d bytes: at most %d", len(s), MaxQueryBytes)}
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	q := &Query{text: s}
	if toks[0].kind == tEOF {
		q.root = &qnode{kind: kAll}
		return q, nil
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, &QueryError{t.pos, "unbalanced ')': no '(' opens it"}
		}
		return nil, &QueryError{t.pos, "unexpected token"}
	}
	q.root = n
	return q, nil
}

// MustParse is Parse for queries known to be valid (tests, constants).
func MustParse(s string) *Query {
	q, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return q
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) or() (*qnode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	kids := []*qnode{l}
	for p.peek().kind == tOr {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		kids = append(kids, r)
	}
	if len(kids) == 1 {
		return l, nil
	}
	return &qnode{kind: kOr, kids: kids}, nil
}

func (p *parser) and() (*qnode, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	kids := []*qnode{l}
	for {
		t := p.peek()
		if t.kind == tAnd {
			p.next()
		} else if t.kind == tEOF || t.kind == tOr || t.kind == tRParen {
			break
		}
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		kids = append(kids, r)
	}
	if len(kids) == 1 {
		return l, nil
	}
	return &qnode{kind: kAnd, kids: kids}, nil
}

func (p *parser) unary() (*qnode, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, &QueryError{p.peek().pos, fmt.Sprintf("nesting deeper than %d", maxDepth)}
	}
	t := p.next()
	switch t.kind {
	case tNot:
		k, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &qnode{kind: kNot, kids: []*qnode{k}}, nil
	case tLParen:
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, &QueryError{t.pos, "unbalanced '(': no ')' closes it"}
		}
		return n, nil
	case tPhrase:
		return &qnode{kind: kPhrase, val: []byte(strings.ToLower(t.text))}, nil
	case tField:
		v, pre := strings.ToLower(t.text), false
		if len(v) > 1 && strings.HasSuffix(v, "*") {
			v, pre = v[:len(v)-1], true
		}
		return &qnode{kind: kField, field: t.field, val: []byte(v), pre: pre}, nil
	case tWord:
		w := strings.ToLower(t.text)
		pre := false
		if len(w) > 1 && strings.HasSuffix(w, "*") {
			w, pre = w[:len(w)-1], true
		}
		toks := tokenize(nil, []byte(w))
		if len(toks) == 0 {
			return nil, &QueryError{t.pos, fmt.Sprintf("term %q has no letters or digits; quote it to search for it as text", t.text)}
		}
		if len(toks) > 1 || string(toks[0]) != w {
			// "user-123", "a.b": a phrase of its words
			return &qnode{kind: kPhrase, val: []byte(w)}, nil
		}
		return &qnode{kind: kTerm, val: []byte(w), pre: pre}, nil
	case tEOF:
		return nil, &QueryError{t.pos, "the query ends where a term, phrase, field:value or '(' was expected"}
	case tRParen:
		return nil, &QueryError{t.pos, "unbalanced ')' or empty parentheses"}
	default:
		return nil, &QueryError{t.pos, "AND/OR without a term before it"}
	}
}

// isWordByte: words are runs of letters, digits and '_' (bytes >= 0x80 are letters).
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80
}

// tokenize appends the words of b (as they are, not lowered) to out.
func tokenize(out [][]byte, b []byte) [][]byte {
	i := 0
	for i < len(b) {
		for i < len(b) && !isWordByte(b[i]) {
			i++
		}
		s := i
		for i < len(b) && isWordByte(b[i]) {
			i++
		}
		if i > s {
			out = append(out, b[s:i])
		}
	}
	return out
}

// lowerInto lowers ASCII letters of b into dst (reused) and returns it.
func lowerInto(dst, b []byte) []byte {
	dst = append(dst[:0], b...)
	for i, c := range dst {
		if c-'A' < 26 {
			dst[i] = c + 32
		}
	}
	return dst
}

// matcher evaluates a query against views; it keeps scratch buffers (one per goroutine).
type matcher struct {
	q    *Query
	low  [][]byte // lowered strings of the current view: message, then field values
	set  bool
	buf  []byte
	fbuf []byte // a lowered field value
}

func newMatcher(q *Query) *matcher { return &matcher{q: q} }

func (m *matcher) match(v *view) bool {
	m.set = false
	return m.eval(m.q.root, v)
}

// texts returns the view's searchable texts lowered: the message and every field value.
func (m *matcher) texts(v *view) [][]byte {
	if m.set {
		return m.low
	}
	m.set = true
	n := len(v.message)
	for _, f := range v.fields {
		n += len(f[1])
	}
	if cap(m.buf) < n {
		m.buf = make([]byte, 0, n*2)
	}
	m.buf = m.buf[:0]
	m.low = m.low[:0]
	add := func(s []byte) {
		st := len(m.buf)
		m.buf = append(m.buf, s...)
		for i := st; i < len(m.buf); i++ {
			if c := m.buf[i]; c-'A' < 26 {
				m.buf[i] = c + 32
			}
		}
		m.low = append(m.low, m.buf[st:])
	}
	add(v.message)
	for _, f := range v.fields {
		add(f[1])
	}
	return m.low
}

func (m *matcher) eval(n *qnode, v *view) bool {
	switch n.kind {
	case kAll:
		return true
	case kAnd:
		for _, k := range n.kids {
			if !m.eval(k, v) {
				return false
			}
		}
		return true
	case kOr:
		for _, k := range n.kids {
			if m.eval(k, v) {
				return true
			}
		}
		return false
	case kNot:
		return !m.eval(n.kids[0], v)
	case kPhrase:
		for _, t := range m.texts(v) {
			if bytes.Contains(t, n.val) {
				return true
			}
		}
		return false
	case kTerm:
		for _, t := range m.texts(v) {
			if containsWord(t, n.val, n.pre) {
				return true
			}
		}
		return false
	case kField:
		got, ok := v.field(n.field)
		if !ok {
			return false
		}
		m.fbuf = lowerInto(m.fbuf, got)
		if n.pre {
			return bytes.HasPrefix(m.fbuf, n.val)
		}
		return bytes.Equal(m.fbuf, n.val)
	}
	return false
}

// containsWord reports whether w occurs in t as a whole word (or a word prefix when pre).
func containsWord(t, w []byte, pre bool) bool {
	off := 0
	for {
		i := bytes.Index(t[off:], w)
		if i < 0 {
			return false
		}
		s, e := off+i, off+i+len(w)
		if (s == 0 || !isWordByte(t[s-1])) && (pre || e == len(t) || !isWordByte(t[e])) {
			return true
		}
		off = s + 1
	}
}

// mayMatch evaluates the query against a segment's term filter: false means no entry of
// the segment can match.
func (q *Query) mayMatch(has func(term []byte) bool) bool {
	return mayMatch(q.root, has)
}

func mayMatch(n *qnode, has func([]byte) bool) bool {
	switch n.kind {
	case kAnd:
		for _, k := range n.kids {
			if !mayMatch(k, has) {
				return false
			}
		}
		return true
	case kOr:
		for _, k := range n.kids {
			if mayMatch(k, has) {
				return true
			}
		}
		return false
	case kTerm:
		if n.pre {
			return true
		}
		return has(n.val)
	case kPhrase:
		for _, w := range tokenize(nil, n.val) {
			if !has(w) {
				return false
			}
		}
		return true
	case kField:
		if n.pre {
			return true
		}
		switch n.field {
		case "service":
			return has(fieldTerm(nil, "service", n.val)) || has(fieldTerm(nil, "deployment", n.val)) || has(fieldTerm(nil, "instance", n.val))
		case "namespace":
			if string(n.val) == "default" {
				return true // entries without a namespace count as default
			}
		}
		return has(fieldTerm(nil, n.field, n.val))
	}
	return true // kAll, kNot
}

// fieldTerm is the filter key of field=value: "\x00field=value" (lowered by the caller).
func fieldTerm(dst []byte, field string, val []byte) []byte {
	dst = append(dst[:0], 0)
	dst = append(dst, field...)
	dst = append(dst, '=')
	return append(dst, val...)
}
