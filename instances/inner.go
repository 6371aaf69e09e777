package instances

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/rads-lang/constellation/internal/fsutil"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// instanceAPI is the local API as instances reach it. An instance runs as an unprivileged
// user in its own root view, so the node's 0600 socket is out of its reach; instead the
// node serves the API on a loopback TCP port and gives every instance, in its environment,
//
//	CONSTELLATION_API=http://127.0.0.1:PORT
//	CONSTELLATION_API_TOKEN=ci1.<instance>.<HMAC-SHA256(node secret, instance)>
//
// The token names the instance, so the node knows who calls and applies the instance
// rules (no uid/gid in creates). Tokens are derived, not stored, and stay valid across
// node restarts (re-adopted instances keep their environment); the port is kept in
// <data-dir>/instance-api.addr and reused. Instances with network "isolated" have their
// own loopback and cannot reach it.
type instanceAPI struct {
	m      *Service
	secret []byte
	addr   string
}

const instanceTokenPrefix = "ci1."

func startInstanceAPI(m *Service) (*instanceAPI, error) {
	dir := m.cfg.DataDir
	secret, err := loadOrCreateSecret(filepath.Join(dir, "instance-api.key"))
	if err != nil {
		return nil, err
	}
	a := &instanceAPI{m: m, secret: secret}
	addrFile := filepath.Join(dir, "instance-api.addr")
	var l net.Listener
	if b, err := os.ReadFile(addrFile); err == nil {
		l, _ = net.Listen("tcp", strings.TrimSpace(string(b)))
	}
	if l == nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("node: instance API listen: %w", err)
		}
	}
	a.addr = l.Addr().String()
	if err := fsutil.WriteFile(addrFile, []byte(a.addr+"\n"), 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("node: instance API: %w", err)
	}
	m.api.Serve(l, http.HandlerFunc(a.serveHTTP))
	return a, nil
}

// close: the listener is closed with the node's API servers.
func (a *instanceAPI) close() {}

func (a *instanceAPI) url() string { return "http://" + a.addr }

func (a *instanceAPI) token(instance string) string {
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(instance))
	return instanceTokenPrefix + instance + "." + hex.EncodeToString(mac.Sum(nil)[:16])
}

// instanceOf verifies a token and returns the instance it names.
func (a *instanceAPI) instanceOf(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, instanceTokenPrefix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", false
	}
	name := rest[:i]
	if subtle.ConstantTimeCompare([]byte(a.token(name)), []byte(tok)) != 1 {
		return "", false
	}
	return name, true
}

func (a *instanceAPI) serveHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	name, ok := a.instanceOf(tok)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="constellation-instance"`)
		httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong instance token: send 'Authorization: Bearer $CONSTELLATION_API_TOKEN'")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxInstance, name))
	a.m.api.Handler().ServeHTTP(w, r)
}

func loadOrCreateSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) == 32 {
		return b, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := fsutil.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("node: instance API secret: %w", err)
	}
	return b, nil
}
