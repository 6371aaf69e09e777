package security

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"instances:read", ""}, {"*:*", ""}, {"deployments:*", ""}, {"*:read", ""},
		{"instances", "want resource:verb"}, {"instances:delete", `unknown verb "delete"`},
		{"widgets:read", `unknown resource "widgets"`}, {":read", "unknown resource"},
	} {
		_, err := ParseRule(tc.in)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseRule(%q) = %v; want %q", tc.in, err, tc.err)
		}
	}
}

func TestPolicies(t *testing.T) {
	for _, tc := range []struct {
		role string
		perm Perm
		want bool
	}{
		{RoleAdmin, "tokens:write", true}, {RoleAdmin, "audit:read", true},
		{RoleOperator, "instances:write", true}, {RoleOperator, "deployments:write", true},
		{RoleOperator, "files:write", true}, {RoleOperator, "services:write", true},
		{RoleOperator, "nodes:write", false}, {RoleOperator, "tokens:read", false}, {RoleOperator, "quotas:write", false},
		{RoleViewer, "instances:read", true}, {RoleViewer, "instances:write", false}, {RoleViewer, "audit:read", false},
		{RoleViewer, "tokens:read", false}, {RoleViewer, Public, true},
	} {
		if got := builtinPolicies[tc.role].Allows(tc.perm); got != tc.want {
			t.Errorf("%s allows %s = %v; want %v", tc.role, tc.perm, got, tc.want)
		}
	}
	rules, _ := ParseRules([]string{"deployments:write", "*:read"})
	p := Compile(rules)
	if !p.Allows("deployments:read") || !p.Allows("audit:read") || p.Allows("instances:write") {
		t.Error("custom policy: write implies read, *:read reads everything, nothing else")
	}
}

// TestEveryPermIsKnown: the table names only known resources and verbs.
func TestEveryPermIsKnown(t *testing.T) {
	for route, perm := range RoutePerms {
		if perm == Public {
			continue
		}
		if _, err := ParseRule(string(perm)); err != nil || strings.Contains(string(perm), "*") {
			t.Errorf("%s: permission %q: %v", route, perm, err)
		}
	}
}

func TestTokenFormat(t *testing.T) {
	id, sec, hash, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	gotID, s, ok := parseToken(sec)
	if !ok || gotID != id {
		t.Fatalf("parseToken(%q) = %q, %v", sec, gotID, ok)
	}
	rec := &TokenRecord{ID: id, Hash: hash}
	now := time.Now()
	if err := rec.check(s, now); err != nil {
		t.Fatal(err)
	}
	if err := rec.check(strings.Repeat("0", 64), now); err != ErrTokenUnknown {
		t.Errorf("wrong secret: %v", err)
	}
	rec.Expires = now.Add(-time.Second).UnixNano()
	if err := rec.check(s, now); err == nil || !strings.Contains(err.Error(), "token expired") {
		t.Errorf("expired: %v", err)
	}
	rec.Revoked = now.UnixNano()
	if err := rec.check(s, now); err == nil || !strings.Contains(err.Error(), "token revoked") {
		t.Errorf("revoked: %v", err)
	}
	for _, bad := range []string{"", "cst_", sec + "x", strings.Replace(sec, "cst_", "xyz_", 1), "cst_" + strings.Repeat("G", 24) + "_" + s} {
		if _, _, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) ok", bad)
		}
	}
}

func newTestAudit(t *testing.T, now func() time.Time) *auditLog {
	t.Helper()
	a, err := openAudit(t.TempDir(), "n0", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	return a
}

func appendN(t *testing.T, a *auditLog, n int, at time.Time) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := a.append(api.AuditEntry{Time: at, Caller: "ci", Kind: "token", Method: "POST", Route: "POST /v1/instances",
			Target: fmt.Sprintf("/v1/instances/x%d", i), Status: 201, RequestID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditChain: an intact log verifies; an edited, deleted, inserted or cut line is
// detected, and the log reopens where it ended.
func TestAuditChain(t *testing.T) {
	now := time.Now()
	a := newTestAudit(t, func() time.Time { return now })
	appendN(t, a, 5, now)
	if v := a.verify(); !v.OK || v.Entries != 5 {
		t.Fatalf("intact log: %+v", v)
	}
	orig, _ := os.ReadFile(a.path())
	lines := strings.SplitAfter(strings.TrimSuffix(string(orig), "\n"), "\n")
	tamper := map[string]string{
		"edited":   strings.Replace(string(orig), `"status":201`, `"status":403`, 1),
		"deleted":  lines[0] + lines[1] + lines[3] + lines[4],
		"cut tail": lines[0] + lines[1] + lines[2],
		"cut head": lines[2] + lines[3] + lines[4],
		"swapped":  lines[0] + lines[2] + lines[1] + lines[3] + lines[4],
		"garbage":  string(orig) + "not json\n",
	}
	for name, content := range tamper {
		if err := os.WriteFile(a.path(), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if v := a.verify(); v.OK {
			t.Errorf("%s log verifies: %+v", name, v)
		} else {
			t.Logf("%s: %s", name, v.Error)
		}
	}
	if err := os.WriteFile(a.path(), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	a.close()
	b, err := openAudit(strings.TrimSuffix(a.dir, "/audit"), "n0", 24*time.Hour, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	appendN(t, b, 2, now)
	if v := b.verify(); !v.OK || v.Entries != 7 {
		t.Fatalf("reopened log: %+v", v)
	}
}

// TestAuditRetention: old entries are dropped, the anchor keeps the chain verifiable, and
// dropping more from the head is still detected.
func TestAuditRetention(t *testing.T) {
	now := time.Now()
	clock := now.Add(-48 * time.Hour)
	a := newTestAudit(t, func() time.Time { return clock })
	appendN(t, a, 3, clock)
	clock = now
	appendN(t, a, 3, now) // the first append past an hour prunes
	es, err := a.query(auditQuery{})
	if err != nil || len(es) != 3 {
		t.Fatalf("after retention: %d entries, %v; want 3", len(es), err)
	}
	if v := a.verify(); !v.OK {
		t.Fatalf("after retention: %+v", v)
	}
	b, _ := os.ReadFile(a.path())
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	_ = os.WriteFile(a.path(), []byte(lines[1]+lines[2]), 0o600)
	if v := a.verify(); v.OK {
		t.Fatal("a head cut after retention verifies")
	}
}

func TestAuditQuery(t *testing.T) {
	now := time.Now()
	a := newTestAudit(t, func() time.Time { return now })
	appendN(t, a, 3, now.Add(-2*time.Hour))
	_ = a.append(api.AuditEntry{Time: now, Caller: "ops", Route: "DELETE /v1/deployments/{name}", Status: 200})
	for _, tc := range []struct {
		q    auditQuery
		want int
	}{
		{auditQuery{}, 4}, {auditQuery{Who: "ci"}, 3}, {auditQuery{Since: now.Add(-time.Hour).UnixNano()}, 1},
		{auditQuery{Route: "deployments"}, 1}, {auditQuery{Limit: 2}, 2},
	} {
		es, err := a.query(tc.q)
		if err != nil || len(es) != tc.want {
			t.Errorf("query %+v = %d, %v; want %d", tc.q, len(es), err, tc.want)
		}
	}
}

// FuzzAuditLine: the audit file's line decoder never panics and accepts only entries.
func FuzzAuditLine(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","node":"n0","caller":"ci","kind":"token","method":"POST","route":"POST /v1/instances","target":"/v1/instances","status":201,"request_id":"x","prev":"","hash":"00"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeAuditLine(b)
		if err == nil && hashEntry(e) == "" {
			t.Fatal("no hash")
		}
	})
}

// FuzzParseToken: bearer tokens are network input.
func FuzzParseToken(f *testing.F) {
	_, sec, _, _ := newToken()
	f.Add(sec)
	f.Add("cst_")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, s string) {
		id, sec, ok := parseToken(s)
		if ok && (len(id) != 24 || len(sec) != 64) {
			t.Fatalf("parseToken(%q) = %q %q", s, id, sec)
		}
	})
}

// BenchmarkAuthorize is the permission check every token request pays (table lookup and
// role policy), next to the handler.
func BenchmarkAuthorize(b *testing.B) {
	id := Identity{Kind: "token", Name: "ci", Role: RoleOperator, policy: builtinPolicies[RoleOperator]}
	routes := []string{"GET /v1/instances/{name}", "POST /v1/deployments", "POST /v1/acl/tokens"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = Authorize(id, routes[i%2])
	}
}

// BenchmarkAuditAppend is one audit entry appended to the chain (hash, JSON, write).
func BenchmarkAuditAppend(b *testing.B) {
	a, err := openAudit(b.TempDir(), "n0", 24*time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer a.close()
	e := api.AuditEntry{Time: time.Now(), Caller: "ci", CallerID: "0123456789abcdef01234567", Kind: "token", Method: "POST",
		Route: "POST /v1/instances", Target: "/v1/instances", Status: 201, RequestID: "0123456789abcdef"}
	start := time.Now()
	for b.Loop() {
		if err := a.append(e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkAuthenticate is the token lookup and secret check (SHA-256, constant-time
// compare) of every token request, before Authorize.
func BenchmarkAuthenticate(b *testing.B) {
	id, sec, hash, err := newToken()
	if err != nil {
		b.Fatal(err)
	}
	s := &Service{cfg: Config{Now: time.Now}, tokens: map[string]*TokenRecord{id: {ID: id, Name: "ci", Role: RoleViewer, Hash: hash}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Authenticate(sec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAuditTornAndDamagedOpen plays a crash mid-write and an operator's damaged file: a
// torn last line is moved aside and the log continues (and verifies); a damaged middle
// line does not keep the log from opening, appending continues, and verify reports it.
func TestAuditTornAndDamagedOpen(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	a := newTestAudit(t, clock)
	appendN(t, a, 5, now)
	a.close()
	dataDir := strings.TrimSuffix(a.dir, "/audit")
	f, err := os.OpenFile(a.path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"time":"2026-11-28T00:00:00Z","seq":6,"cal`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	b, err := openAudit(dataDir, "n0", 24*time.Hour, clock)
	if err != nil {
		t.Fatalf("open after a torn write: %v", err)
	}
	if len(b.Notes) != 1 || !strings.Contains(b.Notes[0], "cut short") {
		t.Errorf("notes %q; want one naming the torn line", b.Notes)
	}
	torn, _ := filepath.Glob(filepath.Join(b.dir, "audit.torn.*"))
	if len(torn) != 1 {
		t.Errorf("torn files %v; want one", torn)
	} else if got, _ := os.ReadFile(torn[0]); !strings.HasSuffix(string(got), `"cal`) {
		t.Errorf("torn file holds %q", got)
	}
	appendN(t, b, 1, now)
	if v := b.verify(); !v.OK || v.Entries != 6 {
		t.Fatalf("after the repair: %+v", v)
	}
	b.close()

	orig, _ := os.ReadFile(b.path())
	lines := strings.SplitAfter(string(orig), "\n")
	lines[2] = "damaged by an operator\n"
	if err := os.WriteFile(b.path(), []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openAudit(dataDir, "n0", 24*time.Hour, clock)
	if err != nil {
		t.Fatalf("open with a damaged line: %v", err)
	}
	defer c.close()
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "line 3") {
		t.Errorf("notes %q; want one naming line 3", c.Notes)
	}
	appendN(t, c, 1, now)
	if c.seq != 7 {
		t.Errorf("seq after the damaged open = %d, want 7", c.seq)
	}
	if v := c.verify(); v.OK || !strings.Contains(v.Error, "line 3") {
		t.Errorf("verify of a damaged log: %+v; want the damaged line reported", v)
	}
}
