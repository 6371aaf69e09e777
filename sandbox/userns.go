package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Host uid ranges. Every instance without host_root runs in its own user namespace:
// uids and gids 0..65535 inside map to HostUID..HostUID+65535 on the host, where
// HostUID = Config.UIDBase + slot*65536 and the slot is the lowest one free when the
// instance is created. The slot is recorded in the instance's state, so a restarted
// runtime re-adopts the instance with the same range, and its data keeps its owners.
//
// The default base, 1879048192 (0x70000000), with 4094 slots up to 2147352575, lies in
// the range systemd documents as unused (above the 524288-1879048191 container range
// of systemd-nspawn, below systemd-nsresourced's ranges and the 2^31 uids that some
// tools misread as negative), and far above the uids distributions give users
// (1000-60000), system services, nobody (65534) and /etc/subuid allocations
// (100000-600100000 by default). Docker's userns-remap instead maps every container to
// one subordinate range of the dockremap user (/etc/subuid), so containers share
// host uids; Podman's --userns=auto, like this runtime, gives each container its own
// range (from the containers user's /etc/subuid entry).
const (
	// userNSSize is the number of uids and gids mapped into an instance: 0..65535.
	userNSSize      = 65536
	defaultUIDBase  = 0x70000000
	defaultUIDSlots = 4094
)

// seccompFile is an operator profile copied into the instance directory at create.
const seccompFile = "seccomp.json"

// runDir is the host directory bound read-only at /run/constellation.
func (r *resources) runDir() string { return filepath.Join(r.Dir, "run") }

// specIDs are the uid and gid the program runs as (inside its user namespace, if any).
func specIDs(cfg *Config, spec *Spec) (int, int) {
	uid, gid := cfg.DefaultUID, cfg.DefaultGID
	if spec.UID != nil {
		uid = *spec.UID
	}
	if spec.GID != nil {
		gid = *spec.GID
	}
	return uid, gid
}

// hostIDs are the host uid and gid of the program.
func hostIDs(res *resources, cfg *Config, spec *Spec) (int, int) {
	uid, gid := specIDs(cfg, spec)
	return res.HostUID + uid, res.HostUID + gid
}

// allocUIDLocked picks the lowest free host uid range (r.mu held).
func (r *Runtime) allocUIDLocked() (int, error) {
	used := map[int]bool{}
	for _, in := range r.instances {
		if in.st.Res.HostUID != 0 {
			used[in.st.Res.HostUID] = true
		}
	}
	for slot := 0; slot < r.cfg.UIDSlots; slot++ {
		if u := r.cfg.UIDBase + slot*userNSSize; !used[u] {
			return u, nil
		}
	}
	return 0, fmt.Errorf("sandbox: all %d host uid ranges (Config.UIDSlots from %d) are in use: %w", r.cfg.UIDSlots, r.cfg.UIDBase, ErrUnenforceable)
}

// RunDir returns the host directory of the instance that is bound read-only at
// /run/constellation inside it (Linux): the node puts the instance's API socket and
// token there. It exists from Create to Destroy.
func (r *Runtime) RunDir(name string) (string, error) {
	in, err := r.get(name)
	if err != nil {
		return "", err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.st.Res.runDir(), nil
}

// WriteRunFile writes file (a plain name) into the instance's run directory, owned by
// the instance's root (the host uid its uid 0 maps to) with perm, e.g. the API token
// with 0400. The instance sees it at /run/constellation/<file>.
func (r *Runtime) WriteRunFile(name, file string, data []byte, perm os.FileMode) error {
	if file == "" || strings.ContainsAny(file, "/\x00") || file == "." || file == ".." {
		return fmt.Errorf("sandbox: run file name %q: want a plain file name: %w", file, ErrInvalidSpec)
	}
	in, err := r.get(name)
	if err != nil {
		return err
	}
	in.mu.Lock()
	dir, owner := in.st.Res.runDir(), in.st.Res.HostUID
	in.mu.Unlock()
	tmp, err := os.CreateTemp(dir, "."+file+".tmp")
	if err != nil {
		return fmt.Errorf("sandbox: run file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), perm)
	}
	if werr == nil && owner != 0 {
		werr = os.Lchown(tmp.Name(), owner, owner)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), filepath.Join(dir, file))
	}
	if werr != nil {
		return fmt.Errorf("sandbox: run file: %w", werr)
	}
	return nil
}
