package instances

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/internal/fsutil"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sandbox"
)

// instanceAPI is the local API as instances reach it: one Unix socket per instance, in the
// instance's run directory (sandbox Runtime.RunDir, bound read-only at /run/constellation),
// beside a token file:
//
//	/run/constellation/api.sock   the node's API, for this instance only (mode 0600)
//	/run/constellation/token      ci1.<instance>.<HMAC-SHA256(node secret, instance, ID)> (0400)
//
// Both belong to the host uid the instance's program runs as (its user namespace's range),
// so nothing else on the host but root, and no other instance (it cannot see the path),
// reaches them; a Unix socket works in every network mode. The environment carries only
// where they are: CONSTELLATION_API=unix:/run/constellation/api.sock and
// CONSTELLATION_API_TOKEN_FILE=/run/constellation/token (the Go client reads both).
//
// The socket names the caller: a request on it comes from its instance, and must carry
// that instance's token ('Authorization: Bearer <token>'), so a process inside the
// instance that cannot read the token (another uid) cannot call either. The request then
// goes to the node's API with the caller in its context, where the instance rules apply
// (authz.go); a forwarded request carries the caller to the instance's node.
//
// Tokens are derived (HMAC with <data-dir>/instance-api.key), bound to the instance's ID
// (a new instance of the same name has another token) and rewritten, with the socket,
// whenever the node starts. There is no TCP listener for instances.
type instanceAPI struct {
	m      *Service
	secret []byte

	mu     sync.Mutex // guards socks and closed
	socks  map[string]*instanceSocket
	closed bool
	wg     sync.WaitGroup // the socket servers
}

// instanceSocket is one instance's API socket.
type instanceSocket struct {
	id   string
	path string
	srv  *http.Server
}

const (
	instanceTokenPrefix = "ci1."
	// The files in the instance's run directory, and where the instance sees them.
	socketFile   = "api.sock"
	tokenFile    = "token"
	runDirInside = "/run/constellation"
	// defaultUID is the uid (and gid) programs run as inside when the create gives none
	// (sandbox.Config.DefaultUID): nobody of the instance's own user namespace.
	defaultUID = 65534
)

// instanceEnv is what every instance's environment says about its API.
func instanceEnv() map[string]string {
	return map[string]string{
		"CONSTELLATION_API":            "unix:" + runDirInside + "/" + socketFile,
		"CONSTELLATION_API_TOKEN_FILE": runDirInside + "/" + tokenFile,
	}
}

func startInstanceAPI(m *Service) (*instanceAPI, error) {
	dir := m.cfg.DataDir
	secret, err := loadOrCreateSecret(filepath.Join(dir, "instance-api.key"))
	if err != nil {
		return nil, err
	}
	// The loopback TCP listener of earlier versions is gone; so is its address file.
	_ = os.Remove(filepath.Join(dir, "instance-api.addr"))
	return &instanceAPI{m: m, secret: secret, socks: map[string]*instanceSocket{}}, nil
}

// close stops every instance's socket server and waits for them.
func (a *instanceAPI) close() {
	a.mu.Lock()
	a.closed = true
	socks := a.socks
	a.socks = map[string]*instanceSocket{}
	a.mu.Unlock()
	for _, s := range socks {
		s.srv.Close()
		_ = os.Remove(s.path) // the instance keeps running; the next start opens it again
	}
	a.wg.Wait()
}

// token is instance name's token for the instance with ID id.
func (a *instanceAPI) token(name, id string) string {
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(id))
	return instanceTokenPrefix + name + "." + hex.EncodeToString(mac.Sum(nil)[:16])
}

// programOwner is the host uid and gid the instance's program runs as: the spec's (or the
// default) inside, shifted into the instance's host range when it has a user namespace.
func programOwner(in sandbox.Info) (int, int) {
	uid, gid := defaultUID, defaultUID
	if in.Spec.UID != nil {
		uid = *in.Spec.UID
	}
	if in.Spec.GID != nil {
		gid = *in.Spec.GID
	}
	if in.HostUID != 0 {
		uid, gid = in.HostUID+uid, in.HostUID+gid
	}
	return uid, gid
}

// attach writes the token of a local instance and (re)opens its API socket. It runs after
// the sandbox create, before the first start, and for every instance when the node starts.
func (a *instanceAPI) attach(rt Runtime, name string) error {
	in, err := rt.Get(name)
	if err != nil {
		return err
	}
	a.m.mu.Lock()
	md, ok := a.m.meta[name]
	a.m.mu.Unlock()
	if !ok || md.ID == "" {
		return fmt.Errorf("node: instance %q has no metadata", name)
	}
	dir, err := rt.RunDir(name)
	if err != nil {
		return err
	}
	uid, gid := programOwner(in)
	chown := os.Geteuid() == 0 // a node not running as root runs no real instance either
	if err := rt.WriteRunFile(name, tokenFile, []byte(a.token(name, md.ID)), 0o400); err != nil {
		return err
	}
	if chown {
		if err := os.Lchown(filepath.Join(dir, tokenFile), uid, gid); err != nil {
			return fmt.Errorf("node: instance token: %w", err)
		}
	}
	a.detach(name) // a socket of an earlier start of the node, or of the same name
	path := filepath.Join(dir, socketFile)
	_ = os.Remove(path)
	l, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("node: instance API socket: %w", err)
	}
	err = os.Chmod(path, 0o600)
	if err == nil && chown {
		err = os.Lchown(path, uid, gid)
	}
	if err != nil {
		l.Close()
		os.Remove(path)
		return fmt.Errorf("node: instance API socket: %w", err)
	}
	s := &instanceSocket{id: md.ID, path: path}
	s.srv = &http.Server{Handler: a.handler(name, md.ID), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return a.m.ctx }}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		l.Close()
		os.Remove(path)
		return fmt.Errorf("%w: node is shutting down", ErrUnavailable)
	}
	a.socks[name] = s
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.m.log.Warn("instance API socket stopped", "instance", name, "err", err)
		}
	}()
	return nil
}

// detach closes an instance's API socket (removed instance, or before a new one).
func (a *instanceAPI) detach(name string) {
	a.mu.Lock()
	s := a.socks[name]
	delete(a.socks, name)
	a.mu.Unlock()
	if s != nil {
		s.srv.Close()
		_ = os.Remove(s.path)
	}
}

// socketPath is the host path of an instance's API socket ("" when it has none).
func (a *instanceAPI) socketPath(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.socks[name]; s != nil {
		return s.path
	}
	return ""
}

// handler serves the socket of instance name (ID id): token check, then the node's API
// with the instance as the caller.
func (a *instanceAPI) handler(name, id string) http.Handler {
	want := []byte(a.token(name, id))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(tok), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="constellation-instance"`)
			httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized",
				"missing or wrong instance token: send 'Authorization: Bearer <the content of "+runDirInside+"/"+tokenFile+">'")
			return
		}
		a.m.mu.Lock()
		md, ok := a.m.meta[name]
		a.m.mu.Unlock()
		if !ok || md.ID != id {
			httpapi.WriteError(w, http.StatusUnauthorized, "unauthorized", fmt.Sprintf("instance %s is being removed", name))
			return
		}
		c := caller{name: name, id: id, grants: md.Grants}
		a.m.api.Handler().ServeHTTP(w, r.WithContext(withCaller(r.Context(), c)))
	})
}

// maxSunPath is the longest Unix socket path bind accepts (sun_path less its NUL).
const maxSunPath = 107

// listenUnix listens on a Unix socket at path; a path longer than bind allows (deep data
// directories, long instance names) is bound through /proc/self/fd on Linux. The listener
// does not remove the file when closed (detach does, by its real path).
func listenUnix(path string) (*net.UnixListener, error) {
	bind := path
	if len(path) > maxSunPath {
		if runtime.GOOS != "linux" {
			return nil, fmt.Errorf("socket path %s is longer than the %d bytes Unix sockets allow; use a shorter --data-dir", path, maxSunPath)
		}
		d, err := os.Open(filepath.Dir(path))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		bind = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(path))
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: bind, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	return l, nil
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
