package instances

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ListenRunSocket listens on a Unix socket named file in a local instance's run directory,
// which the instance sees at /run/constellation/<file> whatever its network (the mesh's
// per-instance entry point). The socket is the instance program's (mode 0600). It returns
// the listener and the socket's host path; the caller closes the listener and removes the
// path.
func (m *Service) ListenRunSocket(name, file string) (net.Listener, string, error) {
	if file == "" || strings.ContainsAny(file, "/\x00") || file == socketFile || file == tokenFile {
		return nil, "", fmt.Errorf("node: run socket name %q is reserved or invalid", file)
	}
	rt := m.local()
	if rt == nil {
		return nil, "", fmt.Errorf("%w: no runtime on node %s", ErrNotFound, m.cfg.Name)
	}
	in, err := rt.Get(name)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	dir, err := rt.RunDir(name)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, file)
	_ = os.Remove(path)
	l, err := listenUnix(path)
	if err != nil {
		return nil, "", err
	}
	err = os.Chmod(path, 0o600)
	if err == nil && os.Geteuid() == 0 {
		uid, gid := programOwner(in)
		err = os.Lchown(path, uid, gid)
	}
	if err != nil {
		l.Close()
		os.Remove(path)
		return nil, "", err
	}
	return l, path, nil
}
