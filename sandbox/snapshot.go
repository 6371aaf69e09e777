package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Snapshot describes a saved data layer.
type Snapshot struct {
	Name     string    `json:"name"`
	Instance string    `json:"instance"` // the instance it was taken from
	At       time.Time `json:"at"`
	Bytes    int64     `json:"bytes"`
}

func (r *Runtime) snapshotDir(name string) string {
	return filepath.Join(r.dataRoot(), "snapshots", name)
}

func (r *Runtime) dataRoot() string {
	return filepath.Join(r.cfg.StateDir, "data")
}

// SaveSnapshot copies the instance's data layer under name. A running instance is
// frozen (cgroup freezer) during the copy, so the copy is consistent; its programs
// resume afterwards. Names follow the instance name rules; an existing snapshot of the
// same name is an ErrExists error.
func (r *Runtime) SaveSnapshot(ctx context.Context, instance, name string) (Snapshot, error) {
	if !nameRE.MatchString(name) {
		return Snapshot{}, fieldErr("snapshot", ErrInvalidSpec, "must match %s", nameRE)
	}
	in, err := r.get(instance)
	if err != nil {
		return Snapshot{}, err
	}
	dst := r.snapshotDir(name)
	if _, err := os.Stat(dst); err == nil {
		return Snapshot{}, fieldErr("snapshot", ErrExists, "snapshot %q exists", name)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return Snapshot{}, fmt.Errorf("sandbox: instance %q: %w", instance, ErrNotFound)
	}
	if in.proc != nil {
		if err := r.plat.freeze(&in.st.Res, true); err != nil {
			return Snapshot{}, err
		}
		defer r.plat.freeze(&in.st.Res, false)
	}
	tmp := dst + ".tmp"
	os.RemoveAll(tmp)
	if err := r.plat.copyTree(in.st.Res.upper(), tmp); err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, err
	}
	s := Snapshot{Name: name, Instance: instance, At: r.cfg.Now(), Bytes: dirBytes(tmp)}
	b, _ := json.Marshal(&s)
	if err := os.WriteFile(filepath.Join(r.cfg.StateDir, "snapshots", name+".json"), b, 0o600); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			os.MkdirAll(filepath.Join(r.cfg.StateDir, "snapshots"), 0o700)
			err = os.WriteFile(filepath.Join(r.cfg.StateDir, "snapshots", name+".json"), b, 0o600)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return Snapshot{}, fmt.Errorf("sandbox: snapshot metadata: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, fmt.Errorf("sandbox: snapshot: %w", err)
	}
	return s, nil
}

// RestoreSnapshot replaces the data layer of a stopped (created or exited) instance
// with the snapshot's content; a running instance is an ErrRunning error. Restoring
// into a new instance: Create it, RestoreSnapshot, then Start.
func (r *Runtime) RestoreSnapshot(ctx context.Context, name, instance string) error {
	src := r.snapshotDir(name)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("sandbox: snapshot %q: %w", name, ErrNotFound)
	}
	in, err := r.get(instance)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.proc != nil || in.st.State == StateRunning || in.st.State == StateRestarting {
		return fmt.Errorf("sandbox: restore into %q: %w", instance, ErrRunning)
	}
	up := in.st.Res.upper()
	fi, err := os.Stat(up)
	if err != nil {
		return fmt.Errorf("sandbox: restore: %w", err)
	}
	if err := os.RemoveAll(up); err != nil {
		return fmt.Errorf("sandbox: restore: %w", err)
	}
	if err := os.RemoveAll(in.st.Res.work()); err != nil {
		return fmt.Errorf("sandbox: restore: %w", err)
	}
	if err := os.Mkdir(in.st.Res.work(), 0o755); err != nil {
		return fmt.Errorf("sandbox: restore: %w", err)
	}
	if err := r.plat.copyTree(src, up); err != nil {
		return err
	}
	// The root of the data layer keeps the instance's owner.
	if st, ok := statOwner(fi); ok {
		os.Lchown(up, st[0], st[1])
	}
	return nil
}

// ListSnapshots returns the saved snapshots sorted by name.
func (r *Runtime) ListSnapshots() ([]Snapshot, error) {
	ents, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "snapshots"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(r.cfg.StateDir, "snapshots", e.Name()))
		if err != nil {
			continue
		}
		var s Snapshot
		if json.Unmarshal(b, &s) == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteSnapshot removes a snapshot.
func (r *Runtime) DeleteSnapshot(name string) error {
	meta := filepath.Join(r.cfg.StateDir, "snapshots", name+".json")
	if !nameRE.MatchString(name) {
		return fmt.Errorf("sandbox: snapshot %q: %w", name, ErrNotFound)
	}
	if _, err := os.Stat(meta); err != nil {
		return fmt.Errorf("sandbox: snapshot %q: %w", name, ErrNotFound)
	}
	if err := os.RemoveAll(r.snapshotDir(name)); err != nil {
		return err
	}
	return os.Remove(meta)
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
