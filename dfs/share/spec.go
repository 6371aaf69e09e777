package share

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rads-lang/constellation/dfs"
)

// Errors of the share service (routes.go maps them to statuses).
var (
	// ErrInvalid: a share's settings are wrong (the message says what would be right).
	ErrInvalid = errors.New("dfs share: invalid")
	// ErrExists: the directory (or the DFS path) is already shared, or overlaps a share.
	ErrExists = errors.New("dfs share: already shared")
	// ErrNotFound: no such share.
	ErrNotFound = errors.New("dfs share: no such share")
)

// Limits of a share's settings.
const (
	MinInterval     = time.Second
	MaxInterval     = 24 * time.Hour
	DefaultInterval = 30 * time.Second
)

// Spec is a share as the user asked for it (persisted in the node's data dir).
type Spec struct {
	ID       string        `json:"id"`
	LocalDir string        `json:"local_dir"` // absolute, symlinks resolved
	Path     string        `json:"path"`      // the DFS prefix
	Sync     string        `json:"sync"`      // realtime | periodic
	Interval time.Duration `json:"interval"`  // the full-scan period (periodic; realtime's safety net)
	Conflict string        `json:"conflict"`  // last_write_wins | keep_both
	Writable bool          `json:"writable"`
	Created  time.Time     `json:"created"`
}

// IDOf is a share's ID: derived from its local directory (one share per directory).
func IDOf(localDir string) string {
	h := sha256.Sum256([]byte(localDir))
	return "sh-" + hex.EncodeToString(h[:5])
}

// Check validates the settings that need no file system: sync mode, interval, conflict
// policy and DFS path. It fills the defaults (interval, policy) and cleans Path.
func (s *Spec) Check() error {
	switch s.Sync {
	case "":
		s.Sync = Realtime
	case Realtime, Periodic:
	default:
		return fmt.Errorf("%w: sync mode %q; use realtime or periodic", ErrInvalid, s.Sync)
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Interval < MinInterval || s.Interval > MaxInterval {
		return fmt.Errorf("%w: interval %s outside %s..%s", ErrInvalid, s.Interval, MinInterval, MaxInterval)
	}
	switch s.Conflict {
	case "":
		s.Conflict = LastWriteWins
	case LastWriteWins, KeepBoth:
	default:
		return fmt.Errorf("%w: conflict policy %q; use last_write_wins or keep_both", ErrInvalid, s.Conflict)
	}
	p, err := dfs.CleanPrefix(s.Path)
	if err != nil {
		return fmt.Errorf("%w: DFS path: %v", ErrInvalid, err)
	}
	if p == "/" {
		return fmt.Errorf("%w: DFS path / would share the whole file system; name a tree such as /shared/docs", ErrInvalid)
	}
	if _, ok := conflictBaseOf(p); ok {
		return fmt.Errorf("%w: DFS path %s: names containing .conflict- are reserved for conflict copies", ErrInvalid, p)
	}
	s.Path = p
	if !filepath.IsAbs(s.LocalDir) {
		return fmt.Errorf("%w: local directory %q is not absolute (the CLI makes it absolute; API callers must)", ErrInvalid, s.LocalDir)
	}
	return nil
}

// Resolve checks the local directory on disk (it exists, is a directory, readable) and
// returns it cleaned with symlinks resolved, so that two names of one directory are one.
func ResolveDir(dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%w: no local directory given", ErrInvalid)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%w: local directory %s does not exist; create it first (mkdir -p %s)", ErrInvalid, dir, dir)
	case err != nil:
		return "", fmt.Errorf("%w: local directory %s: %v", ErrInvalid, dir, err)
	case !fi.IsDir():
		return "", fmt.Errorf("%w: %s is not a directory; share a directory", ErrInvalid, dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("%w: local directory %s: %v", ErrInvalid, dir, err)
	}
	return filepath.Clean(real), nil
}

// within reports whether a is b or lies under b (both clean and absolute).
func within(a, b string) bool {
	if a == b {
		return true
	}
	if b == string(filepath.Separator) {
		return true
	}
	return strings.HasPrefix(a, b+string(filepath.Separator))
}

// Conflicts refuses s (a checked spec with a resolved LocalDir) when its directory is
// the node's data dir or overlaps it, or overlaps a share in existing (the same
// directory, one inside the other), or its DFS path overlaps an existing share's on this
// node (two local directories would fight over the same files).
func Conflicts(s Spec, existing []Spec, dataDir string) error {
	for _, e := range existing {
		switch {
		case e.LocalDir == s.LocalDir:
			return fmt.Errorf("%w: %s is already shared (share %s, DFS path %s); unshare it first (fs unshare %s)", ErrExists, s.LocalDir, e.ID, e.Path, e.ID)
		case within(s.LocalDir, e.LocalDir):
			return fmt.Errorf("%w: %s is inside %s, already shared (share %s)", ErrExists, s.LocalDir, e.LocalDir, e.ID)
		case within(e.LocalDir, s.LocalDir):
			return fmt.Errorf("%w: %s contains %s, already shared (share %s)", ErrExists, s.LocalDir, e.LocalDir, e.ID)
		case e.Path == s.Path || strings.HasPrefix(s.Path, e.Path+"/") || strings.HasPrefix(e.Path, s.Path+"/"):
			return fmt.Errorf("%w: DFS path %s overlaps %s, already shared here from %s (share %s)", ErrExists, s.Path, e.Path, e.LocalDir, e.ID)
		}
	}
	if dataDir != "" {
		dd := filepath.Clean(dataDir)
		if real, err := filepath.EvalSymlinks(dd); err == nil {
			dd = real
		}
		if within(s.LocalDir, dd) || within(dd, s.LocalDir) {
			return fmt.Errorf("%w: %s overlaps the node's data dir %s; share a directory outside it", ErrInvalid, s.LocalDir, dd)
		}
	}
	return nil
}

// conflictBaseOf is dfs's conflict naming test: a name with ".conflict-" after its start.
func conflictBaseOf(p string) (string, bool) {
	i := strings.LastIndex(p, ".conflict-")
	if i <= 0 {
		return "", false
	}
	return p[:i], true
}
