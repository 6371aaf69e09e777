package share

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Limits of the persisted files (a corrupt or hostile file is refused, not trusted).
const (
	maxSpecsBytes = 1 << 20
	maxStateBytes = 256 << 20
	maxShares     = 256
)

// State is what a share remembers between rounds and restarts.
type State struct {
	Base map[string]Synced `json:"base"`
	// Round is when the last complete round started: every change after it is pending.
	Round time.Time `json:"round"`
	// Hashes maps DFS CIDs to the SHA-256 of their content (the ones this share moved).
	Hashes map[string]string `json:"hashes,omitempty"`
}

// DecodeSpecs reads the persisted list of shares, checking every entry.
func DecodeSpecs(b []byte) ([]Spec, error) {
	if len(b) > maxSpecsBytes {
		return nil, fmt.Errorf("shares file of %d bytes, more than %d", len(b), maxSpecsBytes)
	}
	var out []Spec
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&out); err != nil {
		return nil, fmt.Errorf("shares file: %w", err)
	}
	if len(out) > maxShares {
		return nil, fmt.Errorf("shares file lists %d shares, more than %d", len(out), maxShares)
	}
	for i := range out {
		s := out[i]
		if err := s.Check(); err != nil {
			return nil, fmt.Errorf("shares file, share %d: %w", i, err)
		}
		if s.ID != IDOf(s.LocalDir) {
			return nil, fmt.Errorf("shares file, share %d: id %q does not match its directory", i, s.ID)
		}
		if err := Conflicts(s, out[:i], ""); err != nil {
			return nil, fmt.Errorf("shares file, share %d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}

// DecodeState reads a share's persisted state, checking every path.
func DecodeState(b []byte) (State, error) {
	var st State
	if len(b) > maxStateBytes {
		return st, fmt.Errorf("share state of %d bytes, more than %d", len(b), maxStateBytes)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&st); err != nil {
		return State{}, fmt.Errorf("share state: %w", err)
	}
	for p, s := range st.Base {
		if err := CheckRel(p); err != nil {
			return State{}, fmt.Errorf("share state: %w", err)
		}
		if s.Size < 0 || !isHex(s.Hash) || s.CID == "" {
			return State{}, fmt.Errorf("share state: bad record of %q", p)
		}
	}
	for c, h := range st.Hashes {
		if c == "" || !isHex(h) {
			return State{}, fmt.Errorf("share state: bad hash of %q", c)
		}
	}
	if st.Base == nil {
		st.Base = map[string]Synced{}
	}
	if st.Hashes == nil {
		st.Hashes = map[string]string{}
	}
	return st, nil
}

// CheckRel validates a path relative to a share's root: "/"-separated, no empty, "." or
// ".." component, no leading or trailing slash.
func CheckRel(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("bad relative path %q", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || strings.ContainsRune(c, 0) {
			return fmt.Errorf("bad relative path %q", p)
		}
	}
	return nil
}

func isHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// readLimited reads a file of at most limit bytes (ErrNotExist passes through).
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// writeAtomic writes b to path through a temp file, fsync and rename.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

// loadSpecs reads <dir>/shares.json (none yet: empty).
func loadSpecs(dir string) ([]Spec, error) {
	b, err := readLimited(filepath.Join(dir, "shares.json"), maxSpecsBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return DecodeSpecs(b)
}

func saveSpecs(dir string, specs []Spec) error {
	if specs == nil {
		specs = []Spec{}
	}
	b, err := json.MarshalIndent(specs, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "shares.json"), b)
}

func statePath(dir, id string) string { return filepath.Join(dir, id+".state.json") }

// loadState reads a share's state (none yet: empty).
func loadState(dir, id string) (State, error) {
	b, err := readLimited(statePath(dir, id), maxStateBytes)
	if errors.Is(err, os.ErrNotExist) {
		return State{Base: map[string]Synced{}, Hashes: map[string]string{}}, nil
	}
	if err != nil {
		return State{}, err
	}
	return DecodeState(b)
}

func saveState(dir, id string, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeAtomic(statePath(dir, id), b)
}
