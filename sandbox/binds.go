package sandbox

import (
	"fmt"
	"path/filepath"
	"strings"
)

// BindMount is a directory of the node's host bound into an instance (Config.StartMounts):
// a FUSE view of the DFS for `create --mount-fs`, for example. The bind is nosuid and
// nodev, and read-only (MOUNT_ATTR_RDONLY, set by host root in a mount namespace the
// instance's root does not own, so it cannot be undone from inside) when ReadOnly.
type BindMount struct {
	Source   string `json:"source"` // absolute host path
	Target   string `json:"target"` // absolute path inside the instance
	ReadOnly bool   `json:"read_only,omitempty"`
}

// reservedTargets are the instance paths no bind may cover or lie under: the kernel's
// and the sandbox's own mounts, and the read-only system trees.
var reservedTargets = []string{"/proc", "/dev", "/sys", "/run/secrets", "/run/constellation", "/etc",
	"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/.old"}

// CheckBindTarget validates the path a bind mount gets inside an instance: absolute,
// clean (no "..", ".", "//" or trailing slash), not "/" and not on or under a reserved
// path (/proc, /dev, /sys, /run/secrets, /run/constellation, /etc and the system
// directories).
func CheckBindTarget(target string) error {
	switch {
	case target == "":
		return fmt.Errorf("empty target; give an absolute path inside the instance such as /data")
	case !strings.HasPrefix(target, "/"):
		return fmt.Errorf("target %q is not absolute; give a path such as /data", target)
	case strings.ContainsRune(target, 0):
		return fmt.Errorf("target %q contains a NUL byte", target)
	case target == "/":
		return fmt.Errorf("target / would cover the instance's whole root; give a directory such as /data")
	case len(target) > 1024:
		return fmt.Errorf("target of %d bytes is longer than 1024", len(target))
	}
	for _, c := range strings.Split(target[1:], "/") {
		if c == ".." || c == "." || c == "" {
			return fmt.Errorf("target %q has a %q component; write the clean path (%s)", target, c, filepath.Clean(target))
		}
	}
	for _, r := range reservedTargets {
		if target == r || strings.HasPrefix(target, r+"/") {
			return fmt.Errorf("target %s is on %s, which the sandbox owns; choose another directory such as /data", target, r)
		}
	}
	return nil
}

// startMounts are the config's StartMounts binds of an instance, checked.
func startMounts(s *Spec, cfg *Config, ownerUID, ownerGID int) ([]BindMount, error) {
	if cfg.StartMounts == nil {
		return nil, nil
	}
	bs, err := cfg.StartMounts(s.Name, ownerUID, ownerGID)
	if err != nil {
		return nil, fmt.Errorf("instance %s: mounts: %w", s.Name, err)
	}
	seen := map[string]bool{}
	for _, b := range bs {
		if err := CheckBindTarget(b.Target); err != nil {
			return nil, fmt.Errorf("instance %s: mount: %w", s.Name, err)
		}
		if !filepath.IsAbs(b.Source) || filepath.Clean(b.Source) != b.Source {
			return nil, fmt.Errorf("instance %s: mount source %q is not a clean absolute host path", s.Name, b.Source)
		}
		if seen[b.Target] {
			return nil, fmt.Errorf("instance %s: two mounts at %s", s.Name, b.Target)
		}
		seen[b.Target] = true
	}
	return bs, nil
}
