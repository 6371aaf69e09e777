package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed assets
var embedded embed.FS

// Assets is the dashboard's files (ui/assets/ embedded in the binary), rooted at assets/.
func Assets() fs.FS {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

// Headers every dashboard answer carries: no inline script or style, nothing from another
// origin, never framed, no MIME sniffing, no referrer leaves the page.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// SecurityHeaders sets the dashboard's security headers on w.
func SecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// asset is one file ready to serve: its bytes, gzip form (nil when gzip does not make it
// smaller) and strong ETag (the SHA-256 of its content).
type asset struct {
	name  string
	ctype string
	body  []byte
	gz    []byte
	etag  string
}

// AssetServer serves a file tree under /ui/ with ETags (revalidated on every load, so a
// new binary's files are picked up at once; unchanged ones cost a 304), gzip when the
// client takes it, and the security headers. Paths without an extension that name no file
// are the single-page app's routes: they get index.html.
type AssetServer struct {
	fsys  fs.FS
	once  sync.Once
	files map[string]*asset
	err   error
}

// NewAssetServer serves fsys (Assets() for the embedded dashboard).
func NewAssetServer(fsys fs.FS) *AssetServer { return &AssetServer{fsys: fsys} }

// load reads and compresses every file once (on the first request, not at node start).
func (a *AssetServer) load() {
	a.files = map[string]*asset{}
	a.err = fs.WalkDir(a.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(a.fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &asset{name: p, ctype: contentType(p), body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if compressible(f.ctype) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if buf.Len() < len(body) {
				f.gz = buf.Bytes()
			}
		}
		a.files[p] = f
		return nil
	})
}

// Files lists the served files with their size and gzip size in bytes (page weight).
func (a *AssetServer) Files() ([]FileSize, error) {
	a.once.Do(a.load)
	if a.err != nil {
		return nil, a.err
	}
	out := make([]FileSize, 0, len(a.files))
	for _, f := range a.files {
		gz := len(f.gz)
		if f.gz == nil {
			gz = len(f.body)
		}
		out = append(out, FileSize{Name: f.name, Bytes: len(f.body), GzipBytes: gz})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// FileSize is one served file's weight.
type FileSize struct {
	Name      string
	Bytes     int
	GzipBytes int
}

func contentType(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".txt", ".md":
		return "text/plain; charset=utf-8"
	case ".webmanifest":
		return "application/manifest+json"
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "application/json") ||
		strings.HasPrefix(ctype, "image/svg") || strings.HasPrefix(ctype, "application/manifest")
}

// ServeHTTP serves GET and HEAD of /ui/<file>.
func (a *AssetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SecurityHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, r.Method+" "+r.URL.Path+" is not allowed; the dashboard's files are read with GET", http.StatusMethodNotAllowed)
		return
	}
	a.once.Do(a.load)
	if a.err != nil {
		http.Error(w, "dashboard assets: "+a.err.Error(), http.StatusInternalServerError)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/ui/")
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	}
	f := a.files[name]
	if f == nil && path.Ext(name) == "" {
		if f = a.files[name+".html"]; f == nil { // /ui/login -> login.html
			f = a.files["index.html"] // a client-side route
		}
	}
	if f == nil {
		http.Error(w, "no dashboard file "+r.URL.Path, http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Vary", "Accept-Encoding")
	if etagMatch(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, e := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		e, q, _ := strings.Cut(strings.TrimSpace(e), ";")
		if strings.EqualFold(strings.TrimSpace(e), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
