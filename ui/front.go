package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Cookie names. The session cookie is HttpOnly (scripts never see it); the CSRF cookie
// is readable by the page, which echoes it in X-CSRF-Token (GET /ui/session answers the
// same value).
const (
	SessionCookie = "cst_session"
	CSRFCookie    = "cst_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

// maxLoginBody bounds a login request (a token is under 100 bytes).
const maxLoginBody = 16 << 10

var errTooManyCodes = errors.New("too many unused login codes")

type sessionKey struct{}

// SessionFrom is the dashboard session a request authenticated with (ok false: it
// carried none, e.g. a bearer token).
func SessionFrom(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(Session)
	return s, ok
}

// Front stands in front of the node's API listeners (httpapi.Server.SetFront): it serves
// the dashboard's files under /ui/ without a token, turns a valid session cookie into the
// bearer token it stands for (so the API's authenticator and permission table judge the
// request exactly as they judge the token), and refuses a cookie-authenticated mutating
// request without the session's CSRF token or from another origin.
type Front struct {
	Sessions *Sessions
	// Assets serves GET /ui/...; nil forwards those requests to the next handler
	// (`constellation ui`, which proxies the node's socket).
	Assets http.Handler
	// Proxy: the front of `constellation ui`. Every request needs a session (the socket
	// behind it is the node's owner), sessions come only from one-time codes, logout is
	// answered here, and cookies and Authorization never pass on.
	Proxy bool
	// Metrics counts logins and refusals (nil: none).
	Metrics *Metrics
}

// Wrap returns the handler serving next behind f.
func (f *Front) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(w, r, next) })
}

func (f *Front) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	p := r.URL.Path
	if p == "/ui" {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(p, "/ui/") {
		f.api(w, r, next)
		return
	}
	switch {
	case p == "/ui/login" && r.Method == http.MethodPost:
		f.login(w, r, next)
	case p == "/ui/login" && r.Method == http.MethodGet && r.URL.Query().Has("code"):
		f.exchange(w, r)
	case p == "/ui/logout" && f.Proxy:
		f.proxyLogout(w, r)
	case p == "/ui/session" || p == "/ui/logout":
		f.api(w, r, next)
	case f.Assets != nil:
		f.Assets.ServeHTTP(w, r)
	case f.Proxy && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		next.ServeHTTP(w, r) // the dashboard's files (public on the node's TCP API too)
	default:
		f.api(w, r, next)
	}
}

// mutating: every method but GET, HEAD and OPTIONS.
func mutating(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin refuses a browser request another site started: an Origin that is not this
// host, or Sec-Fetch-Site naming another site.
func sameOrigin(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return httpapi.Errorf(http.StatusForbidden, "forbidden", "request from origin %s refused: the dashboard accepts requests only from its own origin (%s)", o, r.Host)
		}
	} else if o == "null" {
		return httpapi.Errorf(http.StatusForbidden, "forbidden", "request from an opaque origin refused")
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return httpapi.Errorf(http.StatusForbidden, "forbidden", "request started by another site (Sec-Fetch-Site: %s) refused", s)
	}
	return nil
}

// session finds the request's live session (a browser may send several cookies of the
// name when dashboards of several ports share a host: the live one wins).
func (f *Front) session(r *http.Request) (Session, bool, bool) {
	seen := false
	for _, c := range r.CookiesNamed(SessionCookie) {
		seen = true
		if s, ok := f.Sessions.Get(c.Value); ok {
			return s, true, true
		}
	}
	return Session{}, false, seen
}

// api authenticates a request for the API by its session cookie.
func (f *Front) api(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if !f.Proxy && r.Header.Get("Authorization") != "" {
		next.ServeHTTP(w, r) // a bearer token: the API's own check, no cookie involved
		return
	}
	s, ok, seen := f.session(r)
	if !ok {
		if f.Proxy || seen {
			msg := "log in first: open the login link 'constellation ui' printed (it is valid 60 s; run it again for a new one)"
			if !f.Proxy {
				msg = "the dashboard session is unknown or expired: log in again at /ui/login"
			}
			if seen {
				clearCookies(w, r)
			}
			f.Metrics.refuse("session")
			httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", msg)
			return
		}
		next.ServeHTTP(w, r)
		return
	}
	if mutating(r.Method) {
		if err := sameOrigin(r); err != nil {
			f.Metrics.refuse("origin")
			httpapi.WriteErr(w, err)
			return
		}
		if !s.CSRFOK(r.Header.Get(CSRFHeader)) {
			f.Metrics.refuse("csrf")
			httpapi.WriteError(w, http.StatusForbidden, "csrf", "a request authenticated by the dashboard session must carry the session's CSRF token in the "+CSRFHeader+" header (the "+CSRFCookie+" cookie, or csrf_token of GET /ui/session)")
			return
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
	r.Header = r.Header.Clone()
	r.Header.Del("Cookie")
	r.Header.Del(CSRFHeader)
	r.Header.Del("Authorization")
	if s.Bearer != "" {
		r.Header.Set("Authorization", "Bearer "+s.Bearer)
	}
	next.ServeHTTP(&sessionWriter{ResponseWriter: w, onStatus: func(code int) {
		if code == http.StatusUnauthorized { // the token is revoked, expired or gone: so is its session
			f.Sessions.Delete(s.ID)
			clearCookies(w, r)
		}
	}}, r)
}

// sessionWriter tells onStatus the status of a session's answer before it is written.
type sessionWriter struct {
	http.ResponseWriter
	onStatus func(int)
	wrote    bool
}

func (w *sessionWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.onStatus(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes on (event streams).
func (w *sessionWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// login reads the token of POST /ui/login (JSON {"token": ...}, a form field token, or an
// Authorization: Bearer header) and passes the request on with it as its bearer token: the API authenticates it and the
// route's handler (Register) opens the session.
func (f *Front) login(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if err := sameOrigin(r); err != nil {
		f.Metrics.refuse("origin")
		httpapi.WriteErr(w, err)
		return
	}
	if f.Proxy {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "this dashboard is served by 'constellation ui': open the one-time login link it printed (run it again for a new one); tokens are not taken here")
		return
	}
	next = f.countLogin(next)
	if r.Header.Get("Authorization") != "" {
		next.ServeHTTP(w, r) // the token as a bearer header, like any API call
		return
	}
	tok, err := loginToken(r)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	r.Header = r.Header.Clone()
	r.Header.Del("Cookie")
	r.Header.Set("Authorization", "Bearer "+tok)
	next.ServeHTTP(w, r)
}

// countLogin counts a login by the status the API answers it with.
func (f *Front) countLogin(next http.Handler) http.Handler {
	if f.Metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&sessionWriter{ResponseWriter: w, onStatus: func(code int) {
			if code == http.StatusOK || code == http.StatusSeeOther {
				f.Metrics.login(true)
			} else if code == http.StatusUnauthorized {
				f.Metrics.login(false)
			}
		}}, r)
	})
}

func loginToken(r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxLoginBody)
	var tok string
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		body, err := httpapi.ReadBody(r)
		if err != nil {
			return "", err
		}
		var req api.UILoginRequest
		if err := httpapi.DecodeStrict(body, &req, false); err != nil {
			return "", err
		}
		tok = req.Token
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if err := r.ParseForm(); err != nil {
			return "", httpapi.BadRequest("login form: %v", err)
		}
		tok = r.PostForm.Get("token")
	default:
		return "", httpapi.Errorf(http.StatusUnsupportedMediaType, "bad_request", "POST /ui/login takes a JSON body {\"token\": \"...\"} or a form with the field token, not Content-Type %q", ct)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", httpapi.BadRequest("login: the token is empty; paste a token from 'constellation token create' or the node's api.token")
	}
	if len(tok) > 512 || strings.ContainsAny(tok, "\r\n\x00") {
		return "", httpapi.BadRequest("login: that is not a token (tokens are one line of at most 512 characters)")
	}
	return tok, nil
}

// exchange spends a one-time login code (GET /ui/login?code=...) for a session.
func (f *Front) exchange(w http.ResponseWriter, r *http.Request) {
	SecurityHeaders(w)
	s, ok, err := f.Sessions.Exchange(r.URL.Query().Get("code"))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if !ok {
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "this login link is used, expired (links are valid 60 s) or unknown: run 'constellation ui' again for a new one")
		return
	}
	SetCookies(w, r, s)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (f *Front) proxyLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpapi.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "log out with POST /ui/logout")
		return
	}
	s, ok, _ := f.session(r)
	if ok {
		if err := sameOrigin(r); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		if !s.CSRFOK(r.Header.Get(CSRFHeader)) {
			httpapi.WriteError(w, http.StatusForbidden, "csrf", "logout needs the session's CSRF token in "+CSRFHeader)
			return
		}
		f.Sessions.Delete(s.ID)
	}
	clearCookies(w, r)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

// SetCookies gives the browser the session: the HttpOnly session cookie and the readable
// CSRF cookie, SameSite=Strict, Secure on TLS, ending with the session.
func SetCookies(w http.ResponseWriter, r *http.Request, s Session) {
	secure := r.TLS != nil
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: s.ID, Path: "/", Expires: s.Expires,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: s.CSRF, Path: "/", Expires: s.Expires,
		Secure: secure, SameSite: http.SameSiteStrictMode})
}

func clearCookies(w http.ResponseWriter, r *http.Request) {
	secure := r.TLS != nil
	for _, n := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: n, Value: "", Path: "/", MaxAge: -1, HttpOnly: n == SessionCookie,
			Secure: secure, SameSite: http.SameSiteStrictMode})
	}
}

// writeJSON is httpapi.WriteJSON without the indent (small answers the page parses).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
