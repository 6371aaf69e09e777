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
	"strings"
	"time"
)

// Snapshots belong to their instance: they live in its data directory
// (<data dir>/snapshots/<tag>, next to the upper and work layers, invisible inside the
// instance) with a <tag>.json description, so they count against its disk_mb like its
// data (XFS project quota, ext4 image, or the poll mode's measurement), go with it on
// Destroy (kept with keepData) and can only be restored into it.

// Snapshot describes a saved data layer.
type Snapshot struct {
	Name     string    `json:"name"`     // the tag
	Instance string    `json:"instance"` // the instance it belongs to
	At       time.Time `json:"at"`
	Bytes    int64     `json:"bytes"`
}

// ErrDiskQuota: the operation would take the instance past its disk_mb.
var ErrDiskQuota = errors.New("sandbox: disk quota exceeded")

func snapshotsDir(res *resources) string { return filepath.Join(res.DataDir, "snapshots") }

func snapshotPaths(res *resources, tag string) (data, meta string) {
	d := snapshotsDir(res)
	return filepath.Join(d, tag), filepath.Join(d, tag+".json")
}

func checkTag(tag string) error {
	if !nameRE.MatchString(tag) {
		return fieldErr("snapshot", ErrInvalidSpec, "tag %q must match %s", tag, nameRE)
	}
	return nil
}

// SaveSnapshot copies the instance's data layer under tag. A running instance is frozen
// (cgroup freezer) during the copy, so the copy is consistent; its programs resume
// afterwards. Tags follow the instance name rules; an existing tag is an ErrExists
// error. With disk_mb, the copy counts against it: a snapshot that would not fit is
// refused with ErrDiskQuota before anything is written.
func (r *Runtime) SaveSnapshot(ctx context.Context, instance, tag string) (Snapshot, error) {
	if err := checkTag(tag); err != nil {
		return Snapshot{}, err
	}
	in, err := r.get(instance)
	if err != nil {
		return Snapshot{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return Snapshot{}, fmt.Errorf("sandbox: instance %q: %w", instance, ErrNotFound)
	}
	dst, meta := snapshotPaths(&in.st.Res, tag)
	if _, err := os.Stat(meta); err == nil {
		return Snapshot{}, fieldErr("snapshot", ErrExists, "instance %q already has a snapshot %q", instance, tag)
	}
	if limit := in.st.Spec.DiskMB << 20; limit > 0 {
		need := dirBytes(in.st.Res.upper())
		if used := r.plat.usage(&in.st.Res).diskB; used+need > limit {
			return Snapshot{}, fmt.Errorf("sandbox: snapshot %q of %q needs %.1f MiB but the instance uses %.1f of its disk_mb %d (snapshots count against it): delete snapshots or raise disk_mb: %w",
				tag, instance, mib(need), mib(used), in.st.Spec.DiskMB, ErrDiskQuota)
		}
	}
	if err := os.MkdirAll(snapshotsDir(&in.st.Res), 0o700); err != nil {
		return Snapshot{}, fmt.Errorf("sandbox: snapshot: %w", err)
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
		if strings.Contains(err.Error(), "quota exceeded") || strings.Contains(err.Error(), "No space left") {
			return Snapshot{}, fmt.Errorf("sandbox: snapshot %q of %q does not fit in disk_mb %d: %w", tag, instance, in.st.Spec.DiskMB, ErrDiskQuota)
		}
		return Snapshot{}, err
	}
	s := Snapshot{Name: tag, Instance: instance, At: r.cfg.Now(), Bytes: dirBytes(tmp)}
	b, _ := json.Marshal(&s)
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, fmt.Errorf("sandbox: snapshot: %w", err)
	}
	if err := writeFileAtomic(meta, b); err != nil {
		os.RemoveAll(dst)
		return Snapshot{}, fmt.Errorf("sandbox: snapshot metadata: %w", err)
	}
	return s, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// writeFileAtomic writes through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// GetSnapshot describes one snapshot of an instance (ErrNotFound if it has none of that
// tag).
func (r *Runtime) GetSnapshot(instance, tag string) (Snapshot, error) {
	if err := checkTag(tag); err != nil {
		return Snapshot{}, err
	}
	in, err := r.get(instance)
	if err != nil {
		return Snapshot{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return r.snapshotLocked(in, tag)
}

func (r *Runtime) snapshotLocked(in *instance, tag string) (Snapshot, error) {
	data, meta := snapshotPaths(&in.st.Res, tag)
	b, err := os.ReadFile(meta)
	if err != nil {
		return Snapshot{}, fmt.Errorf("sandbox: instance %q has no snapshot %q: %w", in.name, tag, ErrNotFound)
	}
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return Snapshot{}, fmt.Errorf("sandbox: snapshot %q of %q: unreadable description %s: %v", tag, in.name, meta, err)
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		return Snapshot{}, fmt.Errorf("sandbox: snapshot %q of %q: data missing: %w", tag, in.name, ErrNotFound)
	}
	return s, nil
}

// ListSnapshots returns the instance's snapshots, oldest first.
func (r *Runtime) ListSnapshots(instance string) ([]Snapshot, error) {
	in, err := r.get(instance)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	ents, err := os.ReadDir(snapshotsDir(&in.st.Res))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: snapshots of %q: %w", instance, err)
	}
	out := []Snapshot{}
	for _, e := range ents {
		tag, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !nameRE.MatchString(tag) {
			continue
		}
		if s, err := r.snapshotLocked(in, tag); err == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// DeleteSnapshot removes one snapshot of an instance, freeing its disk quota.
func (r *Runtime) DeleteSnapshot(instance, tag string) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	in, err := r.get(instance)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	data, meta := snapshotPaths(&in.st.Res, tag)
	if _, err := os.Stat(meta); err != nil {
		return fmt.Errorf("sandbox: instance %q has no snapshot %q: %w", instance, tag, ErrNotFound)
	}
	if err := os.Remove(meta); err != nil {
		return fmt.Errorf("sandbox: delete snapshot: %w", err)
	}
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("sandbox: delete snapshot: %w", err)
	}
	return nil
}

// RestoreSnapshot replaces the data layer of a stopped (created or exited) instance with
// one of its own snapshots. A tag the instance does not have is ErrNotFound and a
// running instance ErrRunning; both are checked before anything changes (check with
// GetSnapshot before stopping an instance to restore it).
func (r *Runtime) RestoreSnapshot(ctx context.Context, instance, tag string) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	in, err := r.get(instance)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, err := r.snapshotLocked(in, tag); err != nil {
		return err
	}
	if in.proc != nil || in.st.State == StateRunning || in.st.State == StateRestarting {
		return fmt.Errorf("sandbox: restore into %q: %w", instance, ErrRunning)
	}
	src, _ := snapshotPaths(&in.st.Res, tag)
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

// migrateSnapshots moves snapshots saved by older runtimes (one directory for all
// instances: <state>/snapshots/<tag>.json and <data>/snapshots/<tag>) into the data
// directory of the instance each was taken from. Snapshots of instances that no longer
// exist stay where they are (logged).
func (r *Runtime) migrateSnapshots() {
	metaDir := filepath.Join(r.cfg.StateDir, "snapshots")
	ents, err := os.ReadDir(metaDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		tag, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !nameRE.MatchString(tag) {
			continue
		}
		oldMeta := filepath.Join(metaDir, e.Name())
		b, err := os.ReadFile(oldMeta)
		var s Snapshot
		if err != nil || json.Unmarshal(b, &s) != nil {
			continue
		}
		in := r.instances[s.Instance]
		oldData := filepath.Join(r.cfg.StateDir, "data", "snapshots", tag)
		if in == nil {
			r.log.Warn("sandbox: snapshot of a removed instance left in place", "snapshot", tag, "instance", s.Instance, "path", oldData)
			continue
		}
		data, meta := snapshotPaths(&in.st.Res, tag)
		if _, err := os.Stat(meta); err == nil {
			continue // a snapshot of that tag exists: keep both, the old one in place
		}
		if err := os.MkdirAll(snapshotsDir(&in.st.Res), 0o700); err != nil {
			continue
		}
		if err := os.Rename(oldData, data); err != nil {
			if err := r.plat.copyTree(oldData, data); err != nil {
				r.log.Warn("sandbox: migrate snapshot", "snapshot", tag, "err", err)
				os.RemoveAll(data)
				continue
			}
			os.RemoveAll(oldData)
		}
		if err := writeFileAtomic(meta, b); err == nil {
			os.Remove(oldMeta)
		}
	}
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
