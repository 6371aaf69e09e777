package mesh

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// maxCallResponse bounds the body POST /v1/mesh/call returns (use the loopback entry
// point to stream larger ones).
const maxCallResponse = 8 << 20

// routes registers the mesh API (docs/mesh.md).
func (m *Service) routes(srv *httpapi.Server) {
	srv.Handle("GET /v1/mesh/services", func(w http.ResponseWriter, r *http.Request) {
		out := m.Services(r.URL.Query().Get("namespace"))
		if out == nil {
			out = []api.MeshService{}
		}
		httpapi.WriteJSON(w, 200, out)
	})
	srv.Handle("POST /v1/mesh/services", func(w http.ResponseWriter, r *http.Request) {
		var req api.MeshRegisterRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		ep, err := m.Register(req)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusCreated, ep)
	})
	srv.Handle("POST /v1/mesh/deregister", func(w http.ResponseWriter, r *http.Request) {
		var req api.MeshDeregisterRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		n, err := m.Deregister(req)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, 200, map[string]int{"removed": n})
	})
	srv.Handle("GET /v1/mesh/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		eps, err := m.Endpoints(r.URL.Query().Get("namespace"), r.PathValue("name"))
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, 200, eps)
	})
	srv.Handle("POST /v1/mesh/services/{name}/config", func(w http.ResponseWriter, r *http.Request) {
		var c api.MeshServiceConfig
		if !httpapi.Decode(w, r, &c) {
			return
		}
		out, err := m.Configure(r.URL.Query().Get("namespace"), r.PathValue("name"), c)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, 200, out)
	})
	srv.Handle("GET /v1/mesh/intentions", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, 200, m.Intentions())
	})
	srv.Handle("POST /v1/mesh/intentions", func(w http.ResponseWriter, r *http.Request) {
		var in api.MeshIntention
		if !httpapi.Decode(w, r, &in) {
			return
		}
		var allow, remove bool
		switch in.Action {
		case "allow":
			allow = true
		case "deny":
		case "delete":
			remove = true
		default:
			httpapi.WriteErr(w, bad("field \"action\": %q: want allow, deny or delete", in.Action))
			return
		}
		out, err := m.SetIntention(in.From, in.To, allow, remove)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, 200, out)
	})
	srv.Handle("POST /v1/mesh/mtls", func(w http.ResponseWriter, r *http.Request) {
		var req api.MeshTLSRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		if err := m.EnableMTLS(req.Cert, req.Key, req.CA); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, 200, req)
	})
	srv.Handle("POST /v1/mesh/call", m.handleCall)
	srv.Handle("POST /v1/mesh/spans", func(w http.ResponseWriter, r *http.Request) {
		var req api.MeshSpanRequest
		if !httpapi.Decode(w, r, &req) {
			return
		}
		out, err := m.spans.handle(req)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, 200, out)
	})
	srv.Handle("GET /v1/mesh/metrics/{name}", func(w http.ResponseWriter, r *http.Request) {
		ns, err := normNamespace(r.URL.Query().Get("namespace"))
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		win := 60 * time.Second
		if s := r.URL.Query().Get("window"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second || d > time.Hour {
				httpapi.WriteErr(w, bad("window %q: a duration from 1s to 1h, like 60s", s))
				return
			}
			win = d
		}
		name := r.PathValue("name")
		if _, _, ok := m.Resolve(ns, name); !ok {
			httpapi.WriteErr(w, unknownService(m, ns, name))
			return
		}
		out := m.metrics.summary(ns+"/"+name, win)
		out.Service = name
		httpapi.WriteJSON(w, 200, out)
	})
}

// handleCall is POST /v1/mesh/call.
func (m *Service) handleCall(w http.ResponseWriter, r *http.Request) {
	var req api.MeshCallRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	res, err := m.Call(r, req)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, 200, res)
}

// Call makes an HTTP call by name for the API (the operator's identity: any service of the
// request's namespace).
func (m *Service) Call(r *http.Request, req api.MeshCallRequest) (api.MeshCallResult, error) {
	var res api.MeshCallResult
	if err := validName("service", req.Service); err != nil {
		return res, err
	}
	ns, err := normNamespace(req.Namespace)
	if err != nil {
		return res, err
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	req.Method = strings.ToUpper(req.Method)
	if !validMethod(req.Method) || req.Method == http.MethodConnect {
		return res, bad("field \"method\": %q: an HTTP method like GET or POST", req.Method)
	}
	if req.Path == "" {
		req.Path = "/"
	}
	if !strings.HasPrefix(req.Path, "/") || strings.ContainsAny(req.Path, " \r\n") {
		return res, bad("field \"path\": %q: a path starting with / (query allowed)", req.Path)
	}
	if req.TimeoutMs < 0 || req.TimeoutMs > 600000 {
		return res, bad("field \"timeout_ms\": %d: want 1-600000", req.TimeoutMs)
	}
	if req.Retries != nil && (*req.Retries < 0 || *req.Retries > 10) {
		return res, bad("field \"retries\": %d: want 0-10", *req.Retries)
	}
	out, err := http.NewRequestWithContext(r.Context(), req.Method, "http://"+req.Service+".mesh"+req.Path, nil)
	if err != nil {
		return res, bad("field \"path\": %v", err)
	}
	for k, v := range req.Headers {
		if !validHeader(k) {
			return res, bad("field \"headers\": %q is not a header name", k)
		}
		out.Header.Set(k, v)
	}
	if tp := r.Header.Get("Traceparent"); tp != "" && out.Header.Get("Traceparent") == "" {
		out.Header.Set("Traceparent", tp)
	}
	spec := &callSpec{ns: ns, service: req.Service, callerNS: ns, in: out, body: []byte(req.Body),
		idempotent: req.Idempotent || idempotentMethod(req.Method), timeoutMs: req.TimeoutMs, retries: req.Retries, key: clientKey(r)}
	if req.Body == "" {
		spec.body = nil
	}
	start := time.Now()
	resp, rep, err := m.calls.roundTrip(r.Context(), spec)
	res.Attempts = rep.attempts
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCallResponse+1))
	if err != nil {
		return res, fmt.Errorf("%w: reading the answer of %s: %v", ErrUnavailable, rep.endpoint, err)
	}
	if len(body) > maxCallResponse {
		return res, fmt.Errorf("%w: the answer is over %d bytes; stream it through CONSTELLATION_MESH", ErrBadRequest, maxCallResponse)
	}
	res.Status = resp.StatusCode
	res.Headers = map[string]string{}
	for k, v := range resp.Header {
		res.Headers[k] = strings.Join(v, ", ")
	}
	if utf8.Valid(body) {
		res.Body = string(body)
	} else {
		res.Body = base64.StdEncoding.EncodeToString(body)
		res.Headers["X-Mesh-Body-Encoding"] = "base64"
	}
	res.Endpoint, res.Node, res.TraceID = rep.endpoint, rep.node, rep.traceID
	res.DurationMs = float64(time.Since(start).Microseconds()) / 1000
	return res, nil
}

func validMethod(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func validHeader(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	return bytes.IndexFunc([]byte(k), func(r rune) bool {
		return !(r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
	}) < 0
}
