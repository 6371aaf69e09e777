package dfs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/dfs/content"
	"github.com/rads-lang/constellation/internal/httpapi"
)

func init() {
	httpapi.Classify(http.StatusBadRequest, "bad_path", ErrBadPath)
	httpapi.Classify(http.StatusBadRequest, "bad_request", ErrBadRequest, content.ErrBadChunker, content.ErrBadData)
	httpapi.Classify(http.StatusNotFound, "not_found", ErrNotFound, content.ErrNotFound)
	httpapi.Classify(http.StatusInsufficientStorage, "insufficient_storage", ErrNoRoom, content.ErrDiskFull)
	httpapi.Classify(http.StatusServiceUnavailable, "write_failed", ErrWriteFailed)
	httpapi.Classify(http.StatusNotImplemented, "unsupported", ErrUnsupported)
	httpapi.Classify(http.StatusServiceUnavailable, "closed", ErrClosed)
}

// Router is where the routes are registered (*httpapi.Server).
type Router interface {
	Handle(pattern string, h http.HandlerFunc)
}

// Register adds the /v1/fs routes (and GET /ipfs/{cid} when gateway is not nil). File
// content travels as raw streaming bodies, without the JSON body limit.
func (s *Service) Register(r Router, gateway http.Handler) {
	r.Handle("PUT /v1/fs/files", s.handlePut)
	r.Handle("GET /v1/fs/files", s.handleGet)
	r.Handle("DELETE /v1/fs/files", queryRoute(func(r *http.Request) (any, error) {
		tok, err := lockToken(r)
		if err != nil {
			return nil, err
		}
		n, err := s.RemoveFenced(r.Context(), pathOf(r), queryBool(r, "recursive"), tok)
		return api.FSCount{Count: n}, err
	}))
	r.Handle("GET /v1/fs/stat", queryRoute(func(r *http.Request) (any, error) { return s.Stat(r.Context(), pathOf(r)) }))
	r.Handle("GET /v1/fs/list", queryRoute(func(r *http.Request) (any, error) {
		return s.List(prefixOf(r), queryBool(r, "recursive"))
	}))
	r.Handle("GET /v1/fs/versions", queryRoute(func(r *http.Request) (any, error) { return s.Versions(pathOf(r)) }))
	r.Handle("GET /v1/fs/du", queryRoute(func(r *http.Request) (any, error) { return s.Du(prefixOf(r), queryBool(r, "by_node")) }))
	r.Handle("GET /v1/fs/trees", queryRoute(func(*http.Request) (any, error) { return nonNil(s.Trees()), nil }))
	r.Handle("GET /v1/fs/snapshots", queryRoute(func(*http.Request) (any, error) { return s.Snapshots(), nil }))
	r.Handle("DELETE /v1/fs/snapshots/{snapshot}", queryRoute(func(r *http.Request) (any, error) {
		return api.FSCount{Count: 1}, s.DeleteSnapshot(r.PathValue("snapshot"))
	}))
	r.Handle("POST /v1/fs/move", jsonCtxRoute(http.StatusOK, func(ctx context.Context, q api.FSMoveRequest) (api.FSCount, error) {
		n, err := s.MoveFenced(ctx, q.From, q.To, q.LockToken)
		return api.FSCount{Count: n}, err
	}))
	r.Handle("POST /v1/fs/trees", jsonRoute(http.StatusOK, s.Init))
	r.Handle("POST /v1/fs/revert", jsonCtxRoute(http.StatusOK, func(ctx context.Context, q api.FSRevertRequest) (api.FSEntry, error) {
		return s.RevertFenced(ctx, q.Path, q.Version, q.LockToken)
	}))
	r.Handle("POST /v1/fs/snapshots", jsonRoute(http.StatusCreated, func(q api.FSSnapshotRequest) (api.FSSnapshot, error) {
		return s.Snapshot(q.Prefix, q.Name)
	}))
	r.Handle("POST /v1/fs/restore", jsonRoute(http.StatusOK, func(q api.FSRestoreRequest) (api.FSCount, error) {
		n, err := s.Restore(q.Name, q.Prefix)
		return api.FSCount{Count: n}, err
	}))
	r.Handle("GET /v1/fs/watch", s.handleWatch)
	if _, ok := s.content.(CARs); ok {
		r.Handle("GET /v1/fs/export", s.handleExport)
		r.Handle("PUT /v1/fs/import", s.handleImport)
	}
	if gateway != nil {
		r.Handle("GET /ipfs/{rest...}", gateway.ServeHTTP)
	}
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// pathOf is the ?path= of a request, as given (checked by the service: a relative or
// dotted path is refused, never resolved).
func pathOf(r *http.Request) string { return r.URL.Query().Get("path") }

// prefixOf is the ?prefix= of a request ("/" when absent).
func prefixOf(r *http.Request) string {
	if p := r.URL.Query().Get("prefix"); p != "" {
		return p
	}
	return "/"
}

// queryRoute answers fn's value as JSON (200), or its error.
func queryRoute(fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, v)
	}
}

// jsonRoute decodes a JSON body (strict, bounded), calls fn and answers its result.
func jsonRoute[Req, Resp any](status int, fn func(Req) (Resp, error)) http.HandlerFunc {
	return jsonCtxRoute(status, func(_ context.Context, q Req) (Resp, error) { return fn(q) })
}

// jsonCtxRoute is jsonRoute whose fn gets the request's context.
func jsonCtxRoute[Req, Resp any](status int, fn func(context.Context, Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var q Req
		if !httpapi.Decode(w, r, &q) {
			return
		}
		v, err := fn(r.Context(), q)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, status, v)
	}
}

func queryInt(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q is not a number >= 0", ErrBadRequest, name, v)
	}
	return n, nil
}

// LockTokenHeader carries a writer's fencing token (like the query lock_token).
const LockTokenHeader = "X-Constellation-Lock-Token"

// lockToken is a request's fencing token: the query lock_token, else the header (0: none).
func lockToken(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("lock_token")
	if v == "" {
		v = r.Header.Get(LockTokenHeader)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: lock token %q is not a number; give the token of a lock you hold (CONSTELLATION_LOCK_TOKEN under fs lock)", ErrBadRequest, v)
	}
	return n, nil
}

func queryBool(r *http.Request, name string) bool {
	b, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return b
}

func (s *Service) handlePut(w http.ResponseWriter, r *http.Request) {
	var o PutOptions
	var err error
	if o.Replication, err = queryInt(r, "replication"); err == nil {
		o.Ack, err = queryInt(r, "ack")
	}
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if o.LockToken, err = lockToken(r); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	o.Chunker = r.URL.Query().Get("chunker")
	if m := r.URL.Query().Get("mode"); m != "" {
		v, perr := strconv.ParseUint(m, 8, 32)
		if perr != nil || v > 0o7777 {
			httpapi.WriteErr(w, fmt.Errorf("%w: mode %q; give octal permission bits such as 0644", ErrBadRequest, m))
			return
		}
		o.Mode = uint32(v)
	}
	e, err := s.Put(r.Context(), pathOf(r), r.Body, o)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, e)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	v, err := queryInt(r, "version")
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	f, e, err := s.Open(r.Context(), pathOf(r), uint64(v))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	defer f.Close()
	meta, _ := json.Marshal(e)
	w.Header().Set("X-Constellation-Entry", string(meta))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Etag", `"`+e.CID+`"`)
	http.ServeContent(w, r, "", e.MTime, f)
}

// handleWatch streams the changes under ?prefix= as SSE events named by their type.
func (s *Service) handleWatch(w http.ResponseWriter, r *http.Request) {
	prefix := prefixOf(r)
	ch, lagged, cancel, err := s.Watch(prefix)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	defer cancel()
	sse, err := httpapi.StartSSE(w, "watching "+prefix)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	var id uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if sse.Comment("keepalive") != nil {
				return
			}
		case e, ok := <-ch:
			if !ok {
				if lagged() {
					b, _ := json.Marshal(map[string]string{"error": "the watcher fell more than 1024 events behind; watch again"})
					_ = sse.Send(id+1, "error", b)
				}
				return
			}
			id++
			b, _ := json.Marshal(e)
			if sse.Send(id, e.Type, b) != nil {
				return
			}
		}
	}
}

// maxImportBytes bounds a CAR import.
const maxImportBytes = 64 << 30

func (s *Service) handleExport(w http.ResponseWriter, r *http.Request) {
	st, err := s.Stat(r.Context(), pathOf(r))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	root, err := cid.Decode(st.CID)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	var v Version
	v.CID, v.Holders = st.CID, nil
	w.Header().Set("Content-Type", "application/vnd.ipld.car; version=1")
	if err := s.content.(CARs).ExportCAR(r.Context(), root, w, s.holdersOf(v)); err != nil {
		s.log.Warn("export", "path", st.Path, "err", err) // headers are sent: the CAR is cut short
	}
}

func (s *Service) handleImport(w http.ResponseWriter, r *http.Request) {
	path := pathOf(r)
	if err := CheckPath(path); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	o := PutOptions{}
	var err error
	if o.Replication, err = queryInt(r, "replication"); err == nil {
		o.LockToken, err = lockToken(r)
	}
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	rf, ack, err := s.writeSettings(path, o)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	roots, err := s.content.(CARs).ImportCAR(r.Context(), r.Body, maxImportBytes)
	if err != nil {
		httpapi.WriteErr(w, fmt.Errorf("%w: import: %v", ErrBadRequest, err))
		return
	}
	if len(roots) != 1 {
		httpapi.WriteErr(w, fmt.Errorf("%w: the CAR has %d roots; fs import takes a CAR of one file (one root)", ErrBadRequest, len(roots)))
		return
	}
	size, err := s.fileSize(r, roots[0])
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	e, err := s.putRoot(r.Context(), path, roots[0], size, rf, ack, 0, o.LockToken, nil)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, e)
}

// fileSize opens an imported root to learn its file size.
func (s *Service) fileSize(r *http.Request, root cid.Cid) (int64, error) {
	f, err := s.content.Open(r.Context(), root, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: the CAR's root is not a complete file: %v", ErrBadRequest, err)
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, errors.Join(ErrBadRequest, err)
	}
	return n, nil
}
