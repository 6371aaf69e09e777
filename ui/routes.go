package ui

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Who describes the caller of a request (the API's authenticated identity) with its
// permissions; Kind is token, bootstrap, socket or instance.
type Who func(ctx context.Context) api.UISession

// Register adds the dashboard's session routes to the API server. They pass the API's
// authenticator and permission table like every route (the Front turned the cookie, or the
// login form's token, into the bearer token):
//
//	POST /ui/login    open a session for the token the request authenticated with
//	GET  /ui/session  the caller, its permissions and the session's CSRF token
//	POST /ui/logout   end the session
func Register(srv *httpapi.Server, sessions *Sessions, who Who) {
	srv.Handle("POST /ui/login", func(w http.ResponseWriter, r *http.Request) {
		id := who(r.Context())
		if id.Kind != "token" && id.Kind != "bootstrap" {
			httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "log in over the node's TCP API (--api-listen); a node reachable only on its Unix socket is opened with 'constellation ui'")
			return
		}
		bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		s, err := sessions.New(bearer)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		SetCookies(w, r, s)
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			http.Redirect(w, r, "/ui/", http.StatusSeeOther)
			return
		}
		id.CSRFToken, id.Expires = s.CSRF, s.Expires.UTC().Format(time.RFC3339)
		writeJSON(w, http.StatusOK, id)
	})
	srv.Handle("GET /ui/session", func(w http.ResponseWriter, r *http.Request) {
		id := who(r.Context())
		if s, ok := SessionFrom(r.Context()); ok {
			id.CSRFToken, id.Expires = s.CSRF, s.Expires.UTC().Format(time.RFC3339)
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, id)
	})
	srv.Handle("POST /ui/logout", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := SessionFrom(r.Context()); ok {
			sessions.Delete(s.ID)
		}
		clearCookies(w, r)
		writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
	})
}
