// Package fsutil writes the node's local files crash-safely: a reader, a restart after a
// crash or a power loss sees either the old content or the new one, never a mix, a
// truncated file or a stray temporary.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// locks serialises writers of one path within the process (two writers of one file would
// otherwise both rename over it, the slower one winning with older content).
var locks sync.Map // path -> *sync.Mutex

// WriteFile replaces path with data: a unique temporary file in the same directory,
// written and fsynced, renamed over path, and the directory fsynced so the rename itself
// survives a crash. Concurrent writers of one path are serialised.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	mu, _ := locks.LoadOrStore(filepath.Clean(path), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory (its entries: creates, renames, removes).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
