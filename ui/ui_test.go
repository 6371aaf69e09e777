package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func testAssets() *AssetServer {
	return NewAssetServer(fstest.MapFS{
		"index.html":    {Data: []byte("<!doctype html><title>x</title>" + strings.Repeat("<p>constellation</p>", 50))},
		"js/app.js":     {Data: []byte("export const x = 1;" + strings.Repeat("// padding\n", 40))},
		"vendor/a.mjs":  {Data: []byte("export default 1;" + strings.Repeat(" ", 200))},
		"logo.png":      {Data: []byte{0x89, 'P', 'N', 'G'}},
		"nested/x.json": {Data: []byte(`{"a":1}`)},
	})
}

func get(t testing.TB, h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestAssetsHeadersGzipETag(t *testing.T) {
	a := testAssets()
	w := get(t, a, "/ui/", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET /ui/ = %d %v", w.Code, w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if !bytes.Contains(body, []byte("<title>x</title>")) {
		t.Errorf("gunzipped index = %q", body)
	}
	h := w.Header()
	for k, want := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-cache", "Vary": "Accept-Encoding",
	} {
		if h.Get(k) != want {
			t.Errorf("%s = %q; want %q", k, h.Get(k), want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline or eval: %q", csp)
	}
	etag := h.Get("ETag")
	if w2 := get(t, a, "/ui/index.html", map[string]string{"If-None-Match": etag}); w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
		t.Errorf("revalidation with the ETag = %d (%d bytes); want 304", w2.Code, w2.Body.Len())
	}
	if w2 := get(t, a, "/ui/index.html", map[string]string{"If-None-Match": `"other"`}); w2.Code != 200 {
		t.Errorf("another ETag = %d; want 200", w2.Code)
	}
	// No gzip asked: plain bytes.
	if w2 := get(t, a, "/ui/js/app.js", nil); w2.Header().Get("Content-Encoding") != "" || !strings.HasPrefix(w2.Body.String(), "export const") ||
		w2.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("app.js = %v %q", w2.Header(), w2.Body.String()[:20])
	}
	if w2 := get(t, a, "/ui/vendor/a.mjs", map[string]string{"Accept-Encoding": "gzip;q=0"}); w2.Header().Get("Content-Encoding") != "" ||
		w2.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf(".mjs with gzip;q=0 = %v", w2.Header())
	}
	// A client-side route is the app; a missing file is 404; only GET and HEAD.
	if w2 := get(t, a, "/ui/login", nil); w2.Code != 200 || !strings.Contains(w2.Body.String(), "<title>x</title>") {
		t.Errorf("/ui/login = %d", w2.Code)
	}
	if w2 := get(t, a, "/ui/nope.js", nil); w2.Code != 404 {
		t.Errorf("/ui/nope.js = %d; want 404", w2.Code)
	}
	r := httptest.NewRequest(http.MethodPost, "/ui/index.html", nil)
	w3 := httptest.NewRecorder()
	a.ServeHTTP(w3, r)
	if w3.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST an asset = %d; want 405", w3.Code)
	}
	files, err := a.Files()
	if err != nil || len(files) != 5 {
		t.Fatalf("Files = %v %v", files, err)
	}
}

// clock is an injected time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// echo is the API behind the front: it answers the Authorization it got and whether the
// request carried a session.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, ok := SessionFrom(r.Context())
	w.Header().Set("X-Auth", r.Header.Get("Authorization"))
	w.Header().Set("X-Cookie", r.Header.Get("Cookie"))
	if ok {
		w.Header().Set("X-Session", "yes")
	}
	w.WriteHeader(299)
})

func req(method, path, body string, cookies []*http.Cookie, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(method, "https://node.example:7443"+path, strings.NewReader(body))
	for _, c := range cookies {
		r.AddCookie(c)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestFrontCookieBecomesBearerAndCSRF(t *testing.T) {
	ck := &clock{time.Unix(1_700_000_000, 0)}
	ss := NewSessions(SessionsConfig{Now: ck.now, TTL: time.Hour})
	f := (&Front{Sessions: ss, Assets: testAssets()}).Wrap(echo)
	s, err := ss.New("cst_secret")
	if err != nil {
		t.Fatal(err)
	}
	jar := []*http.Cookie{{Name: SessionCookie, Value: s.ID}, {Name: CSRFCookie, Value: s.CSRF}}

	w := serve(f, req("GET", "/v1/nodes", "", jar, nil))
	if w.Code != 299 || w.Header().Get("X-Auth") != "Bearer cst_secret" || w.Header().Get("X-Session") != "yes" || w.Header().Get("X-Cookie") != "" {
		t.Fatalf("GET with the session: %d auth %q cookie %q", w.Code, w.Header().Get("X-Auth"), w.Header().Get("X-Cookie"))
	}
	// Attacker: a cross-site form or fetch rides on the cookie without the CSRF token.
	for name, hdr := range map[string]map[string]string{
		"no token":         nil,
		"wrong token":      {CSRFHeader: s.CSRF + "x"},
		"cookie as header": {CSRFHeader: s.ID},
		"other origin":     {CSRFHeader: s.CSRF, "Origin": "https://evil.example"},
		"cross-site fetch": {CSRFHeader: s.CSRF, "Sec-Fetch-Site": "cross-site"},
		"opaque origin":    {CSRFHeader: s.CSRF, "Origin": "null"},
	} {
		w := serve(f, req("POST", "/v1/instances", "{}", jar, hdr))
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: POST = %d %s; want 403", name, w.Code, w.Body)
		}
	}
	w = serve(f, req("DELETE", "/v1/instances/x", "", jar, map[string]string{CSRFHeader: s.CSRF, "Origin": "https://node.example:7443", "Sec-Fetch-Site": "same-origin"}))
	if w.Code != 299 || w.Header().Get("X-Auth") != "Bearer cst_secret" {
		t.Errorf("DELETE with the CSRF token = %d %q", w.Code, w.Header().Get("X-Auth"))
	}
	// A bearer request is the API's business alone (no CSRF: browsers do not add it).
	w = serve(f, req("POST", "/v1/instances", "{}", nil, map[string]string{"Authorization": "Bearer other"}))
	if w.Code != 299 || w.Header().Get("X-Auth") != "Bearer other" || w.Header().Get("X-Session") != "" {
		t.Errorf("bearer POST = %d %q", w.Code, w.Header().Get("X-Auth"))
	}
	// No cookie: passed on unchanged (the API answers 401 itself).
	if w := serve(f, req("GET", "/v1/nodes", "", nil, nil)); w.Code != 299 || w.Header().Get("X-Auth") != "" {
		t.Errorf("no cookie = %d %q", w.Code, w.Header().Get("X-Auth"))
	}
	// Several cookies of the name (dashboards on several ports of a host): the live one.
	w = serve(f, req("GET", "/v1/nodes", "", append([]*http.Cookie{{Name: SessionCookie, Value: "stale"}}, jar...), nil))
	if w.Code != 299 || w.Header().Get("X-Auth") != "Bearer cst_secret" {
		t.Errorf("stale and live cookie = %d %q", w.Code, w.Header().Get("X-Auth"))
	}
	// The session ends: 401 and the cookies are cleared.
	ck.t = ck.t.Add(time.Hour)
	w = serve(f, req("GET", "/v1/nodes", "", jar, nil))
	if w.Code != http.StatusUnauthorized || !strings.Contains(strings.Join(w.Header().Values("Set-Cookie"), ";"), "Max-Age=0") {
		t.Errorf("expired session = %d %v", w.Code, w.Header())
	}
	if ss.Len() != 0 {
		t.Errorf("expired session kept: %d", ss.Len())
	}
	// The files need nothing.
	if w := serve(f, req("GET", "/ui/", "", nil, nil)); w.Code != 200 || w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET /ui/ = %d", w.Code)
	}
	if w := serve(f, req("GET", "/ui", "", nil, nil)); w.Code != http.StatusMovedPermanently {
		t.Errorf("GET /ui = %d", w.Code)
	}
}

func TestFrontLoginBody(t *testing.T) {
	ss := NewSessions(SessionsConfig{})
	f := (&Front{Sessions: ss, Assets: testAssets()}).Wrap(echo)
	cases := []struct {
		name, ctype, body string
		hdr               map[string]string
		code              int
		auth              string
	}{
		{"json", "application/json", `{"token":" cst_a "}`, nil, 299, "Bearer cst_a"},
		{"form", "application/x-www-form-urlencoded", url.Values{"token": {"cst_b"}}.Encode(), nil, 299, "Bearer cst_b"},
		{"bearer header", "", "", map[string]string{"Authorization": "Bearer cst_c"}, 299, "Bearer cst_c"},
		{"empty", "application/json", `{"token":""}`, nil, 400, ""},
		{"unknown field", "application/json", `{"token":"x","admin":true}`, nil, 400, ""},
		{"not json", "application/json", `{`, nil, 400, ""},
		{"newline", "application/json", `{"token":"a\nb"}`, nil, 400, ""},
		{"long", "application/json", `{"token":"` + strings.Repeat("a", 600) + `"}`, nil, 400, ""},
		{"too large", "application/json", `{"token":"` + strings.Repeat("a", 20000) + `"}`, nil, 413, ""},
		{"text", "text/plain", `cst_a`, nil, 415, ""},
		{"other origin", "application/json", `{"token":"cst_a"}`, map[string]string{"Origin": "https://evil.example"}, 403, ""},
	}
	for _, c := range cases {
		hdr := map[string]string{"Content-Type": c.ctype}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		w := serve(f, req("POST", "/ui/login", c.body, nil, hdr))
		if w.Code != c.code || w.Header().Get("X-Auth") != c.auth {
			t.Errorf("%s: login = %d auth %q %s; want %d %q", c.name, w.Code, w.Header().Get("X-Auth"), w.Body, c.code, c.auth)
		}
	}
}

func TestSessionsExpireEvictAndCodesOnce(t *testing.T) {
	ck := &clock{time.Unix(1_700_000_000, 0)}
	ss := NewSessions(SessionsConfig{Now: ck.now, TTL: time.Hour, Max: 3})
	var ids []string
	for i := range 4 {
		s, err := ss.New("t")
		if err != nil {
			t.Fatal(err)
		}
		if s.ID == s.CSRF || len(s.ID) < 40 {
			t.Fatalf("session %+v", s)
		}
		ids = append(ids, s.ID)
		ck.t = ck.t.Add(time.Duration(i+1) * time.Second)
	}
	if _, ok := ss.Get(ids[0]); ok || ss.Len() != 3 {
		t.Errorf("full store kept the oldest: len %d", ss.Len())
	}
	ss.DeleteBearer("t")
	if ss.Len() != 0 {
		t.Errorf("DeleteBearer left %d", ss.Len())
	}
	code, err := ss.NewCode("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ss.Exchange(code + "x"); ok {
		t.Error("a wrong code opened a session")
	}
	if s, ok, err := ss.Exchange(code); !ok || err != nil || s.Bearer != "" {
		t.Fatalf("Exchange = %v %v", ok, err)
	}
	if _, ok, _ := ss.Exchange(code); ok {
		t.Error("a code worked twice")
	}
	code, _ = ss.NewCode("")
	ck.t = ck.t.Add(LoginCodeTTL)
	if _, ok, _ := ss.Exchange(code); ok {
		t.Error("an expired code worked")
	}
}

func TestProxyFrontNeedsSessionFromCode(t *testing.T) {
	ck := &clock{time.Unix(1_700_000_000, 0)}
	ss := NewSessions(SessionsConfig{Now: ck.now})
	f := (&Front{Sessions: ss, Proxy: true}).Wrap(echo)
	// Another local user without the link: nothing but the public files passes.
	for _, r := range []*http.Request{
		req("GET", "/v1/status", "", nil, nil),
		req("GET", "/v1/status", "", nil, map[string]string{"Authorization": "Bearer whatever"}),
		req("GET", "/v1/status", "", []*http.Cookie{{Name: SessionCookie, Value: "guess"}}, nil),
		req("GET", "/ui/session", "", nil, nil),
	} {
		if w := serve(f, r); w.Code != http.StatusUnauthorized {
			t.Errorf("%s %v without a session = %d; want 401", r.Method, r.URL, w.Code)
		}
	}
	if w := serve(f, req("POST", "/ui/login", `{"token":"cst_x"}`, nil, map[string]string{"Content-Type": "application/json"})); w.Code != 400 {
		t.Errorf("token login on the proxy = %d; want 400", w.Code)
	}
	if w := serve(f, req("GET", "/ui/app.js", "", nil, nil)); w.Code != 299 {
		t.Errorf("a file = %d; want it passed on", w.Code)
	}
	code, _ := ss.NewCode("")
	w := serve(f, req("GET", "/ui/login?code="+url.QueryEscape(code), "", nil, nil))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		t.Fatalf("code exchange = %d %v", w.Code, w.Header())
	}
	jar := (&http.Response{Header: w.Header()}).Cookies()
	if len(jar) != 2 || !jar[0].HttpOnly || jar[0].SameSite != http.SameSiteStrictMode || jar[1].HttpOnly {
		t.Fatalf("cookies %+v", jar)
	}
	if w := serve(f, req("GET", "/ui/login?code="+url.QueryEscape(code), "", nil, nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("the code again = %d; want 401", w.Code)
	}
	w = serve(f, req("GET", "/v1/status", "", jar, map[string]string{"Authorization": "Bearer smuggled"}))
	if w.Code != 299 || w.Header().Get("X-Auth") != "" || w.Header().Get("X-Cookie") != "" {
		t.Errorf("with the session = %d auth %q cookie %q; want passed without either", w.Code, w.Header().Get("X-Auth"), w.Header().Get("X-Cookie"))
	}
	if w := serve(f, req("POST", "/ui/logout", "", jar, nil)); w.Code != http.StatusForbidden {
		t.Errorf("logout without CSRF = %d", w.Code)
	}
	if w := serve(f, req("POST", "/ui/logout", "", jar, map[string]string{CSRFHeader: jar[1].Value})); w.Code != 200 {
		t.Errorf("logout = %d", w.Code)
	}
	if w := serve(f, req("GET", "/v1/status", "", jar, nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("after logout = %d", w.Code)
	}
}

// FuzzLoginToken: any login body decodes to a token that is one short line, or an error.
func FuzzLoginToken(f *testing.F) {
	f.Add("application/json", `{"token":"cst_abc"}`)
	f.Add("application/x-www-form-urlencoded", "token=cst_abc&x=1")
	f.Add("application/json", `{"token":"a","token":"b"}`)
	f.Add("multipart/form-data", "--x")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		r := httptest.NewRequest("POST", "/ui/login", strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		tok, err := loginToken(r)
		if err != nil {
			return
		}
		if tok == "" || len(tok) > 512 || strings.ContainsAny(tok, "\r\n\x00") || strings.TrimSpace(tok) != tok {
			t.Fatalf("token %q from %q %q", tok, ctype, body)
		}
	})
}

// TestFrontEndsSessionOfRefusedToken: when the API refuses the session's token (revoked,
// expired), the session ends and the browser is told to drop its cookies.
func TestFrontEndsSessionOfRefusedToken(t *testing.T) {
	ss := NewSessions(SessionsConfig{})
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer revoked" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	f := (&Front{Sessions: ss}).Wrap(refuse)
	good, _ := ss.New("fine")
	bad, _ := ss.New("revoked")
	if w := serve(f, req("GET", "/v1/nodes", "", []*http.Cookie{{Name: SessionCookie, Value: good.ID}}, nil)); w.Code != 200 || w.Header().Get("Set-Cookie") != "" {
		t.Errorf("good session = %d %v", w.Code, w.Header())
	}
	w := serve(f, req("GET", "/v1/nodes", "", []*http.Cookie{{Name: SessionCookie, Value: bad.ID}}, nil))
	if w.Code != 401 || !strings.Contains(strings.Join(w.Header().Values("Set-Cookie"), ";"), "Max-Age=0") {
		t.Errorf("refused token = %d %v", w.Code, w.Header())
	}
	if _, ok := ss.Get(bad.ID); ok {
		t.Error("the refused token's session lives on")
	}
	if _, ok := ss.Get(good.ID); !ok {
		t.Error("the good session ended")
	}
}

func TestFrontMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ss := NewSessions(SessionsConfig{})
	m := NewMetrics(reg, ss)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	f := (&Front{Sessions: ss, Metrics: m}).Wrap(api)
	json := map[string]string{"Content-Type": "application/json"}
	serve(f, req("POST", "/ui/login", `{"token":"good"}`, nil, json))
	serve(f, req("POST", "/ui/login", `{"token":"bad"}`, nil, json))
	s, _ := ss.New("good")
	serve(f, req("POST", "/v1/x", "", []*http.Cookie{{Name: SessionCookie, Value: s.ID}}, nil))
	serve(f, req("GET", "/v1/x", "", []*http.Cookie{{Name: SessionCookie, Value: "gone"}}, nil))
	for name, want := range map[string]float64{
		"ok": 1, "refused": 1,
	} {
		if got := promtest.ToFloat64(m.logins.WithLabelValues(name)); got != want {
			t.Errorf("logins{%s} = %v; want %v", name, got, want)
		}
	}
	if got := promtest.ToFloat64(m.refused.WithLabelValues("csrf")); got != 1 {
		t.Errorf("refused{csrf} = %v", got)
	}
	if got := promtest.ToFloat64(m.refused.WithLabelValues("session")); got != 1 {
		t.Errorf("refused{session} = %v", got)
	}
	if n, err := promtest.GatherAndCount(reg, "constellation_ui_sessions"); err != nil || n != 1 {
		t.Errorf("sessions gauge: %d %v", n, err)
	}
}
