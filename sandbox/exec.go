package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// systemPath is PATH inside an instance.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// appDir is the instance's working directory: the code/data overlay.
const appDir = "/app"

// resolveExec finds the program on the host and returns its path as seen inside the
// instance (Linux) together with argv. Executables may live in the system directories
// (bound read-only into the instance) or in the code directory (under /app).
func resolveExec(s *Spec, systemDirs []string) (path string, argv []string, err error) {
	if s.Script != "" {
		host := filepath.Join(s.Code, s.Script)
		fi, err := os.Stat(host)
		if err != nil || !fi.Mode().IsRegular() {
			return "", nil, fieldErr("script", ErrMissingExecutable, "%s not found in the code directory", s.Script)
		}
		inside := appDir + "/" + s.Script
		rt := s.Runtime
		if rt == "" && strings.HasSuffix(s.Script, ".rads") {
			rt = "rads"
		}
		if rt == "" {
			if fi.Mode()&0o111 == 0 {
				return "", nil, fieldErr("script", ErrMissingExecutable, "%s is not executable (and has no runtime)", s.Script)
			}
			return inside, append([]string{inside}, s.Args...), nil
		}
		rp, ok := lookSystem(rt, systemDirs)
		if !ok {
			return "", nil, fieldErr("runtime", ErrMissingExecutable, "interpreter %q not found in the system directories", rt)
		}
		return rp, append([]string{rp, inside}, s.Args...), nil
	}
	c0 := s.Command[0]
	argv = append(append([]string{}, s.Command...), s.Args...)
	switch {
	case strings.HasPrefix(c0, "./") || strings.HasPrefix(c0, appDir+"/"):
		rel := strings.TrimPrefix(strings.TrimPrefix(c0, "./"), appDir+"/")
		if s.Code == "" || !localPath(rel) {
			return "", nil, fieldErr("command", ErrMissingExecutable, "%s: no code directory to find it in", c0)
		}
		fi, err := os.Stat(filepath.Join(s.Code, rel))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", nil, fieldErr("command", ErrMissingExecutable, "%s not found or not executable in the code directory", c0)
		}
		return appDir + "/" + rel, argv, nil
	case strings.Contains(c0, "/"):
		if !filepath.IsAbs(c0) || !underAny(filepath.Clean(c0), systemDirs) || !isExecutable(c0) {
			return "", nil, fieldErr("command", ErrMissingExecutable, "%s is not an executable under a system directory", c0)
		}
		return filepath.Clean(c0), argv, nil
	default:
		p, ok := lookSystem(c0, systemDirs)
		if !ok {
			return "", nil, fieldErr("command", ErrMissingExecutable, "%q not found in %s", c0, systemPath)
		}
		return p, argv, nil
	}
}

func lookSystem(name string, systemDirs []string) (string, bool) {
	if strings.Contains(name, "/") {
		c := filepath.Clean(name)
		return c, filepath.IsAbs(c) && underAny(c, systemDirs) && isExecutable(c)
	}
	for _, d := range filepath.SplitList(systemPath) {
		p := filepath.Join(d, name)
		if underAny(p, systemDirs) && isExecutable(p) {
			return p, true
		}
	}
	return "", false
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// startFiles are the config's StartFiles files of an instance, sorted by name.
func startFiles(s *Spec, cfg *Config) ([]etcEntry, error) {
	if cfg.StartFiles == nil {
		return nil, nil
	}
	m, err := cfg.StartFiles(s.Name)
	if err != nil {
		return nil, fmt.Errorf("instance %s: secret files: %w", s.Name, err)
	}
	out := make([]etcEntry, 0, len(m))
	for name, b := range m {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("instance %s: secret file name %q is not a plain file name", s.Name, name)
		}
		out = append(out, etcEntry{Name: name, Content: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// startEnv is instanceEnv with the config's StartEnv variables last (they win).
func startEnv(s *Spec, cfg *Config) ([]string, error) {
	if cfg.StartEnv == nil {
		return instanceEnv(s, cfg.Env), nil
	}
	extra, err := cfg.StartEnv(s.Name)
	if err != nil {
		return nil, fmt.Errorf("instance %s: environment: %w", s.Name, err)
	}
	if len(extra) == 0 {
		return instanceEnv(s, cfg.Env), nil
	}
	merged := map[string]string{}
	for k, v := range s.Env {
		merged[k] = v
	}
	for k, v := range extra {
		merged[k] = v
	}
	withExtra := *s
	withExtra.Env = merged
	return instanceEnv(&withExtra, cfg.Env), nil
}

// instanceEnv builds the sorted environment: defaults, then cfg, then spec.
func instanceEnv(s *Spec, cfgEnv map[string]string) []string {
	m := map[string]string{"PATH": systemPath, "HOME": appDir, "HOSTNAME": s.Name, "CONSTELLATION_INSTANCE": s.Name}
	for k, v := range cfgEnv {
		m[k] = v
	}
	for k, v := range s.Env {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// checkMountOption rejects paths that cannot appear in overlayfs mount options.
func checkMountOption(p string) error {
	if strings.ContainsAny(p, ",:\\\n") {
		return fmt.Errorf("path %q contains a character overlayfs options cannot carry (, : \\ newline)", p)
	}
	return nil
}

// parseCPUList parses "0-2,5" into core numbers.
func parseCPUList(s string) []int {
	var out []int
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := a; i <= b && i-a < 4096; i++ {
			out = append(out, i)
		}
	}
	return out
}

func formatCPUList(cores []int) string {
	parts := make([]string, len(cores))
	for i, c := range cores {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}
