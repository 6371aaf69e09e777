package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// generatedEtc are the files of an instance's /etc written by the runtime; host /etc
// entries of the same name are never bound.
var generatedEtc = []string{"passwd", "group", "hosts", "hostname", "resolv.conf", "nsswitch.conf"}

// writeEtc (re)writes the instance's generated /etc in its state directory and makes
// the mount points of the host /etc entries bound over it (Config.EtcFiles); it returns
// the names to bind. Symbolic links (e.g. localtime) are copied, not bound.
func writeEtc(res *resources, cfg *Config, spec *Spec, uid, gid int) ([]string, error) {
	dir := filepath.Join(res.Dir, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: /etc: %w", err)
	}
	var passwd, group strings.Builder
	passwd.WriteString("root:x:0:0:root:/root:/bin/sh\n")
	group.WriteString("root:x:0:\ntty:x:5:\n")
	if uid != 0 && uid != 65534 {
		fmt.Fprintf(&passwd, "app:x:%d:%d:instance %s:%s:/bin/sh\n", uid, gid, spec.Name, appDir)
	}
	if gid != 0 && gid != 5 && gid != 65534 {
		fmt.Fprintf(&group, "app:x:%d:\n", gid)
	}
	passwd.WriteString("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
	group.WriteString("nogroup:x:65534:\n")
	resolv, err := readSmall("/etc/resolv.conf", 64<<10)
	if err != nil {
		resolv = "" // no resolver configured on the host
	}
	files := map[string]string{
		"passwd":        passwd.String(),
		"group":         group.String(),
		"hosts":         fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", spec.Name),
		"hostname":      spec.Name + "\n",
		"resolv.conf":   resolv,
		"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("sandbox: /etc/%s: %w", name, err)
		}
	}
	var binds []string
	for _, e := range cfg.EtcFiles {
		if slices.Contains(generatedEtc, e) {
			continue
		}
		host, mp := filepath.Join("/etc", e), filepath.Join(dir, e)
		fi, err := os.Lstat(host)
		if err != nil {
			os.RemoveAll(mp) // gone from the host since the last start
			continue
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(host)
			if err != nil {
				continue
			}
			if cur, err := os.Readlink(mp); err == nil && cur == l {
				continue
			}
			os.RemoveAll(mp)
			if err := os.Symlink(l, mp); err != nil {
				return nil, fmt.Errorf("sandbox: /etc/%s: %w", e, err)
			}
		case fi.IsDir():
			if mfi, err := os.Lstat(mp); err != nil || !mfi.IsDir() {
				os.RemoveAll(mp)
				if err := os.Mkdir(mp, 0o755); err != nil {
					return nil, fmt.Errorf("sandbox: /etc/%s: %w", e, err)
				}
			}
			binds = append(binds, e)
		case fi.Mode().IsRegular():
			if mfi, err := os.Lstat(mp); err != nil || !mfi.Mode().IsRegular() {
				os.RemoveAll(mp)
				if err := os.WriteFile(mp, nil, 0o644); err != nil {
					return nil, fmt.Errorf("sandbox: /etc/%s: %w", e, err)
				}
			}
			binds = append(binds, e)
		}
	}
	return binds, nil
}

func readSmall(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	return string(b), err
}

// fixDataOwner moves the instance's data layer into its uid range when its root is
// owned by another range (data kept from an instance with another range, or written
// before user namespaces): every uid and gid keeps its value inside the instance.
func fixDataOwner(res *resources, cfg *Config) error {
	fi, err := os.Lstat(res.upper())
	if err != nil {
		return fmt.Errorf("sandbox: data layer: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if inRange(int(st.Uid), res.HostUID, cfg) {
		return nil
	}
	return shiftOwner(res.upper(), res.HostUID, cfg)
}

// inRange reports whether host uid u belongs to the range starting at base (0: the
// host's own ids, outside every instance range).
func inRange(u, base int, cfg *Config) bool {
	if base != 0 {
		return u >= base && u < base+userNSSize
	}
	return !(u >= cfg.UIDBase && u < cfg.UIDBase+cfg.UIDSlots*userNSSize)
}

// shiftOwner rewrites the owners of every file under dir into the range at toBase
// (0: host ids). An id of an instance range or a host id below 65536 keeps its value
// inside the instance; other host ids are left alone. Set-id bits cleared by chown are
// restored.
func shiftOwner(dir string, toBase int, cfg *Config) error {
	shift := func(id int) int {
		switch {
		case id >= cfg.UIDBase && id < cfg.UIDBase+cfg.UIDSlots*userNSSize:
			return toBase + (id-cfg.UIDBase)%userNSSize
		case id < userNSSize:
			return toBase + id
		}
		return id
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid := shift(int(st.Uid)), shift(int(st.Gid))
		if uid == int(st.Uid) && gid == int(st.Gid) {
			return nil
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("sandbox: shift owner of %s: %w", path, err)
		}
		if m := fi.Mode(); m&(fs.ModeSetuid|fs.ModeSetgid) != 0 && m.IsRegular() {
			os.Chmod(path, m)
		}
		return nil
	})
}
