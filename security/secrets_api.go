package security

import (
	"net/http"
	"strconv"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

func (s *Service) registerSecretRoutes(srv *httpapi.Server) {
	srv.Handle("GET /v1/secrets", func(w http.ResponseWriter, r *http.Request) {
		ns := r.URL.Query().Get("namespace")
		if ns != "" && !api.ValidNamespace(ns) {
			httpapi.WriteErr(w, httpapi.BadRequest("invalid namespace %q: %s", ns, api.NamespaceRule))
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, s.Secrets(ns))
	})
	srv.Handle("PUT /v1/secrets/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req api.SecretSetRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		in, err := s.SetSecret(r.PathValue("ns"), r.PathValue("name"), []byte(req.Value), s.Caller(r.Context()).label())
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, in)
	})
	srv.Handle("GET /v1/secrets/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, err := checkSecretName(r.PathValue("ns"), r.PathValue("name"))
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		rec, ok := s.secret(ns, r.PathValue("name"))
		if !ok {
			httpapi.WriteErr(w, httpapi.Errorf(http.StatusNotFound, "not_found", "no secret %q in namespace %s ('constellation secrets list')", r.PathValue("name"), ns))
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, secretInfo(rec))
	})
	srv.Handle("DELETE /v1/secrets/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RemoveSecret(r.PathValue("ns"), r.PathValue("name")); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"namespace": r.PathValue("ns"), "name": r.PathValue("name"), "status": "removed"})
	})
	srv.Handle("POST /v1/secrets/{ns}/{name}/reveal", func(w http.ResponseWriter, r *http.Request) {
		version := 0
		if v := r.URL.Query().Get("version"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				httpapi.WriteErr(w, httpapi.BadRequest("invalid version %q: a version number from 'constellation secrets list'", v))
				return
			}
			version = n
		}
		val, ver, err := s.Reveal(r.PathValue("ns"), r.PathValue("name"), version)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		ns, _ := checkSecretName(r.PathValue("ns"), r.PathValue("name"))
		httpapi.WriteJSON(w, http.StatusOK, api.SecretValue{Namespace: ns, Name: r.PathValue("name"), Version: ver, Value: string(val)})
	})
	srv.Handle("POST /v1/secrets/rotate-key", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.RotateKey()
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, res)
	})
}

func (s *Service) registerNamespaceRoutes(srv *httpapi.Server) {
	srv.Handle("POST /v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		var req api.NamespaceRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		in, err := s.CreateNamespace(req, s.Caller(r.Context()).label())
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusCreated, s.withQuota(in))
	})
	srv.Handle("GET /v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		out := s.Namespaces()
		for i := range out {
			out[i] = s.withQuota(out[i])
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
	})
	srv.Handle("GET /v1/namespaces/{ns}", func(w http.ResponseWriter, r *http.Request) {
		rec, ok := s.namespace(r.PathValue("ns"))
		if !ok {
			httpapi.WriteErr(w, httpapi.Errorf(http.StatusNotFound, "not_found", "no namespace %q ('constellation namespace list')", r.PathValue("ns")))
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, s.withQuota(nsInfo(rec)))
	})
	srv.Handle("DELETE /v1/namespaces/{ns}", func(w http.ResponseWriter, r *http.Request) {
		in, err := s.DeleteNamespace(r.PathValue("ns"), s.Caller(r.Context()).label())
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, in)
	})
}

func (s *Service) withQuota(in api.NamespaceInfo) api.NamespaceInfo {
	if s.work != nil && in.Status == "active" {
		if q, ok := s.work.Quota(in.Name); ok {
			in.Quota = &q
		}
	}
	return in
}
