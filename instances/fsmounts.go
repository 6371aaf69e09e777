package instances

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sandbox"
)

// FSMounter gives instances FUSE views of DFS directories (node adapts the fs mount
// manager, package dfs/fusefs, to it).
type FSMounter interface {
	// InstanceMount mounts DFS prefix for instance, its files owned by the host uid and
	// gid the instance's program runs as, and returns the host directory to bind into it.
	InstanceMount(instance, prefix string, readOnly bool, uid, gid int) (string, error)
	// ReleaseInstance unmounts the views of instance made before the time given (zero:
	// all of them).
	ReleaseInstance(instance string, before time.Time)
}

// SetFSMounts connects the DFS mounts (before Start); without it creates with mount_fs
// are refused.
func (m *Service) SetFSMounts(f FSMounter) { m.fsMounts = f }

// MountFS is one parsed --mount-fs PREFIX:TARGET[:ro|:rw].
type MountFS struct {
	Prefix, Target string
	ReadOnly       bool
}

// ParseMountFS parses and checks a --mount-fs value: PREFIX (an absolute DFS directory
// without "." or ".." components), TARGET (an absolute instance path that is not a
// sandbox-owned one: sandbox.CheckBindTarget) and an optional :ro or :rw.
func ParseMountFS(s string) (MountFS, error) {
	parts := strings.Split(s, ":")
	var mf MountFS
	switch {
	case len(parts) == 3 && parts[2] == "ro":
		mf.ReadOnly = true
	case len(parts) == 3 && parts[2] == "rw":
	case len(parts) == 2:
	default:
		return mf, fmt.Errorf("mount_fs %q: want PREFIX:TARGET[:ro], e.g. /cluster/data:/data:ro", s)
	}
	mf.Prefix, mf.Target = parts[0], parts[1]
	if !strings.HasPrefix(mf.Prefix, "/") {
		return mf, fmt.Errorf("mount_fs %q: the DFS prefix %q is not absolute; give one such as /cluster/data", s, mf.Prefix)
	}
	if mf.Prefix != "/" {
		mf.Prefix = strings.TrimSuffix(mf.Prefix, "/")
		for _, c := range strings.Split(mf.Prefix[1:], "/") {
			if c == "" || c == "." || c == ".." {
				return mf, fmt.Errorf("mount_fs %q: the DFS prefix has a %q component (paths are not resolved)", s, c)
			}
		}
	}
	if err := sandbox.CheckBindTarget(mf.Target); err != nil {
		return mf, fmt.Errorf("mount_fs %q: %w", s, err)
	}
	return mf, nil
}

// CheckMountFS checks a create's or deployment's mount_fs list (also for duplicate
// targets) and returns it normalized.
func CheckMountFS(specs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range specs {
		mf, err := ParseMountFS(s)
		if err != nil {
			return nil, err
		}
		if seen[mf.Target] {
			return nil, fmt.Errorf("mount_fs: two mounts at %s; give each target once", mf.Target)
		}
		seen[mf.Target] = true
		n := mf.Prefix + ":" + mf.Target
		if mf.ReadOnly {
			n += ":ro"
		}
		out = append(out, n)
	}
	return out, nil
}

// checkMountFS validates a create's mount_fs (400 with the reason).
func (m *Service) checkMountFS(specs []string) ([]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if m.fsMounts == nil {
		return nil, httpapi.BadRequest(`field "mount_fs": this node has no DFS mounts`)
	}
	out, err := CheckMountFS(specs)
	if err != nil {
		return nil, httpapi.BadRequest(`field "mount_fs": %v`, err)
	}
	return out, nil
}

// startMounts is the runtime's StartMounts: the instance's DFS views, mounted afresh at
// each start (a previous start's are released first), owned by the host uid and gid its
// program runs as.
func (m *Service) startMounts(name string, uid, gid int) ([]sandbox.BindMount, error) {
	v, ok := m.mountMeta.Load(name)
	if !ok {
		return nil, nil
	}
	md := v.(instanceMeta)
	if m.fsMounts == nil {
		return nil, errors.New("node: the instance has mount_fs but no DFS mounts are connected")
	}
	m.fsMounts.ReleaseInstance(name, time.Time{})
	var out []sandbox.BindMount
	for _, s := range md.MountFS {
		mf, err := ParseMountFS(s)
		if err != nil {
			m.fsMounts.ReleaseInstance(name, time.Time{})
			return nil, err
		}
		dir, err := m.fsMounts.InstanceMount(name, mf.Prefix, mf.ReadOnly, uid, gid)
		if err != nil {
			m.fsMounts.ReleaseInstance(name, time.Time{})
			return nil, fmt.Errorf("mount_fs %s: %w", s, err)
		}
		out = append(out, sandbox.BindMount{Source: dir, Target: mf.Target, ReadOnly: mf.ReadOnly})
	}
	return out, nil
}

// releaseMountsOn unmounts an instance's views when it exits for good or is destroyed
// (not while it waits for a restart: its next start replaces them).
func (m *Service) releaseMountsOn(ev sandbox.Event) {
	if m.fsMounts == nil {
		return
	}
	switch ev.Type {
	case sandbox.EventDestroyed:
		m.fsMounts.ReleaseInstance(ev.Instance, time.Time{})
	case sandbox.EventExited:
		if _, ok := m.mountMeta.Load(ev.Instance); !ok {
			return
		}
		if rt := m.local(); rt != nil {
			if in, err := rt.Get(ev.Instance); err == nil && (in.State == sandbox.StateRunning || in.State == sandbox.StateRestarting) {
				return
			}
		}
		at := ev.At
		if at.IsZero() {
			at = time.Now()
		}
		m.fsMounts.ReleaseInstance(ev.Instance, at)
	}
}
