package share

import (
	"net/http"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

func init() {
	httpapi.Classify(http.StatusBadRequest, "bad_request", ErrInvalid)
	httpapi.Classify(http.StatusConflict, "conflict", ErrExists)
	httpapi.Classify(http.StatusNotFound, "not_found", ErrNotFound)
}

// Router is where the routes are registered (*httpapi.Server).
type Router interface {
	Handle(pattern string, h http.HandlerFunc)
}

// Register adds GET, POST and DELETE /v1/fs/shares.
func (m *Manager) Register(r Router) {
	r.Handle("GET /v1/fs/shares", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, m.List())
	})
	r.Handle("POST /v1/fs/shares", func(w http.ResponseWriter, r *http.Request) {
		var q api.FSShareRequest
		if !httpapi.Decode(w, r, &q) {
			return
		}
		s, err := m.Create(q)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusCreated, s)
	})
	r.Handle("DELETE /v1/fs/shares", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Remove(r.URL.Query().Get("share"))
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, s)
	})
}
