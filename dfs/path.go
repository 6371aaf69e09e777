package dfs

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the namespace's paths.
const (
	// MaxPathBytes bounds a whole path.
	MaxPathBytes = 4096
	// MaxNameBytes bounds one component.
	MaxNameBytes = 255
	// MaxDepth bounds the number of components.
	MaxDepth = 64
)

// ErrBadPath classifies every path refused by CheckPath (the API answers 400).
var ErrBadPath = errors.New("dfs: bad path")

// PathError says what is wrong with a path and what would be right.
type PathError struct {
	Path   string
	Reason string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("dfs: bad path %q: %s", e.Path, e.Reason)
}

func (e *PathError) Unwrap() error { return ErrBadPath }

// CheckPath validates a file path: absolute, UTF-8, no empty, "." or ".." components (they
// are refused, not resolved), no control characters, no trailing slash, at most
// MaxPathBytes bytes, MaxNameBytes per component and MaxDepth components. The root "/" is
// not a file path.
func CheckPath(p string) error {
	if err := checkCommon(p); err != nil {
		return err
	}
	if p == "/" {
		return &PathError{p, "the root is a directory; name a file such as /cluster/config.json"}
	}
	if strings.HasSuffix(p, "/") {
		return &PathError{p, "a file path has no trailing slash"}
	}
	return nil
}

// CleanPrefix validates a directory prefix ("/", "/a/b" or "/a/b/") and returns it
// without a trailing slash ("/" stays "/").
func CleanPrefix(p string) (string, error) {
	if err := checkCommon(p); err != nil {
		return "", err
	}
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
		if strings.HasSuffix(p, "/") {
			return "", &PathError{p, "empty component (//); write each directory once"}
		}
	}
	return p, nil
}

func checkCommon(p string) error {
	switch {
	case p == "":
		return &PathError{p, "empty; give an absolute path such as /cluster/config.json"}
	case len(p) > MaxPathBytes:
		return &PathError{p[:32] + "...", fmt.Sprintf("%d bytes, more than the %d-byte limit", len(p), MaxPathBytes)}
	case !utf8.ValidString(p):
		return &PathError{p, "not valid UTF-8"}
	case p[0] != '/':
		return &PathError{p, "not absolute; start it with / (e.g. /" + p + ")"}
	}
	if p == "/" {
		return nil
	}
	comps := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	if len(comps) > MaxDepth {
		return &PathError{p, fmt.Sprintf("%d components, more than the depth limit of %d", len(comps), MaxDepth)}
	}
	for _, c := range comps {
		switch {
		case c == "":
			return &PathError{p, "empty component (//); write each directory once"}
		case c == "." || c == "..":
			return &PathError{p, fmt.Sprintf("component %q is refused (paths are not resolved); write the path without it", c)}
		case len(c) > MaxNameBytes:
			return &PathError{p, fmt.Sprintf("component of %d bytes, more than the %d-byte limit", len(c), MaxNameBytes)}
		}
		for _, r := range c {
			if unicode.IsControl(r) {
				return &PathError{p, fmt.Sprintf("control character %U in a name", r)}
			}
		}
	}
	return nil
}

// underPrefix reports whether path p lies under the directory prefix (itself excluded).
func underPrefix(p, prefix string) bool {
	if prefix == "/" {
		return true
	}
	return len(p) > len(prefix) && strings.HasPrefix(p, prefix) && p[len(prefix)] == '/'
}

// Base is the last component of a path.
func Base(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// Dir is a path's parent directory ("/" for top-level names).
func Dir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
