//go:build !unix

package node

import (
	"fmt"
	"os"
	"path/filepath"
)

// dirLock on systems without flock: an exclusively created file, removed on release. A crash
// leaves it behind; the error says how to remove it.
type dirLock struct{ path string }

func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w (%s exists); stop that node, or remove the file if no node runs", ErrDataDirInUse, path)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	return &dirLock{path: path}, nil
}

func (l *dirLock) release() {
	if l != nil && l.path != "" {
		os.Remove(l.path)
		l.path = ""
	}
}
