package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// generatedEtc are the files of an instance's /etc written by the runtime; host /etc
// entries of the same name are never given.
var generatedEtc = []string{"passwd", "group", "hosts", "hostname", "resolv.conf", "nsswitch.conf"}

// maxEtcCopy: host /etc files up to this size are copied into an instance's /etc,
// larger ones and directories are bound read-only.
const maxEtcCopy = 1 << 20

// etcEntry is one entry of an instance's /etc, a small tmpfs filled at launch.
type etcEntry struct {
	Name    string `json:"name"`
	Content []byte `json:"content,omitempty"` // a file: written
	Link    string `json:"link,omitempty"`    // a symbolic link: made
	Bind    bool   `json:"bind,omitempty"`    // a host directory or large file: bound read-only
	Dir     bool   `json:"dir,omitempty"`     // (with Bind) a directory
}

// hostEtc caches the host /etc entries instances get (Config.EtcFiles and
// resolv.conf); an entry is read again when its size or modification time changes.
type hostEtc struct {
	names []string
	mu    sync.Mutex // guards cache
	cache map[string]cachedEtc
}

type cachedEtc struct {
	size  int64
	mtime time.Time
	e     etcEntry
	ok    bool // exists and is usable
}

func newHostEtc(names []string) *hostEtc {
	return &hostEtc{names: names, cache: map[string]cachedEtc{}}
}

// get returns the current entry of name (following a symbolic link when follow).
func (h *hostEtc) get(name string, follow bool) (etcEntry, bool) {
	path := filepath.Join("/etc", name)
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(path)
	if err != nil {
		return etcEntry{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.cache[name]; ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.e, c.ok
	}
	c := cachedEtc{size: fi.Size(), mtime: fi.ModTime(), e: etcEntry{Name: name}}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		c.e.Link, err = os.Readlink(path)
		c.ok = err == nil
	case fi.IsDir():
		c.e.Bind, c.e.Dir, c.ok = true, true, true
	case fi.Mode().IsRegular() && fi.Size() <= maxEtcCopy:
		c.e.Content, err = readSmall(path, maxEtcCopy)
		c.ok = err == nil
	case fi.Mode().IsRegular():
		c.e.Bind, c.ok = true, true
	}
	h.cache[name] = c
	return c.e, c.ok
}

// etcFor returns an instance's /etc: generated passwd, group, hosts, hostname,
// nsswitch.conf, resolv.conf for its network mode (see resolvConf), and the host
// entries of Config.EtcFiles. ip is its bridge address (network bridge).
func (h *hostEtc) etcFor(spec *Spec, uid, gid int, mode, ip string, dns []string) []etcEntry {
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
	out := []etcEntry{
		{Name: "passwd", Content: []byte(passwd.String())},
		{Name: "group", Content: []byte(group.String())},
		{Name: "hosts", Content: hostsFile(spec.Name, mode, ip)},
		{Name: "hostname", Content: []byte(spec.Name + "\n")},
		{Name: "nsswitch.conf", Content: []byte("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n")},
	}
	var host []byte
	if e, ok := h.get("resolv.conf", true); ok && !e.Bind {
		host = e.Content
	}
	var upstream func() []byte
	if mode == NetworkBridge && len(dns) == 0 {
		upstream = func() []byte {
			if e, ok := h.get("../run/systemd/resolve/resolv.conf", true); ok && !e.Bind {
				return e.Content
			}
			return nil
		}
	}
	out = append(out, etcEntry{Name: "resolv.conf", Content: resolvConf(mode, host, dns, upstream)})
	for _, n := range h.names {
		if slices.Contains(generatedEtc, n) {
			continue
		}
		if e, ok := h.get(n, false); ok {
			out = append(out, e)
		}
	}
	return out
}

// etcSize is the tmpfs size an instance's /etc needs.
func etcSize(es []etcEntry) int {
	n := 64 << 10
	for _, e := range es {
		n += (len(e.Content) + 4095) &^ 4095
	}
	return n
}

func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// fixDataOwner moves the instance's data layer into its uid range when it is not known
// to be there: a layer kept from an instance with another range, written before user
// namespaces, or restored from another instance's snapshot (a new directory, so its
// inode differs from the one recorded). Files of another range or of host ids below
// 65536 keep their ids inside the instance. A layer checked before costs one lstat.
func fixDataOwner(res *resources, cfg *Config) error {
	fi, err := os.Lstat(res.upper())
	if err != nil {
		return fmt.Errorf("sandbox: data layer: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Ino == res.UpperIno && inRange(int(st.Uid), res.HostUID, cfg) {
		return nil
	}
	if err := shiftOwner(res.upper(), res.HostUID, cfg); err != nil {
		return err
	}
	res.UpperIno = st.Ino
	return nil
}

// markDataOwner records that the data layer's owners are in the instance's range.
func markDataOwner(res *resources) {
	if fi, err := os.Lstat(res.upper()); err == nil {
		res.UpperIno = fi.Sys().(*syscall.Stat_t).Ino
	}
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

// hostsFile is an instance's /etc/hosts: localhost, and its name on its bridge address
// (network bridge) or on 127.0.1.1.
func hostsFile(name, mode, ip string) []byte {
	self := "127.0.1.1"
	if mode == NetworkBridge && ip != "" {
		self = ip
	}
	return fmt.Appendf(nil, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", self, name)
}

// fallbackDNS are the name servers of a bridge-mode instance when neither the node's
// configuration nor the host gives a usable one (Docker's choice).
var fallbackDNS = []string{"8.8.8.8", "8.8.4.4"}

// resolvConf is an instance's resolv.conf. Host network: the host's file. None: no
// name server. Bridge: the host's file without loopback name servers (they do not
// answer inside the instance's namespace), or with dns instead of its name servers
// when given; with no name server left, those of upstream (systemd-resolved's file),
// else fallbackDNS.
func resolvConf(mode string, host []byte, dns []string, upstream func() []byte) []byte {
	switch mode {
	case NetworkHost:
		return host
	case NetworkNone:
		return []byte("# network none: loopback only, no name servers\n")
	}
	keep, servers := filterResolv(host)
	if len(dns) == 0 {
		dns = servers
	}
	if len(dns) == 0 && upstream != nil {
		_, dns = filterResolv(upstream())
	}
	if len(dns) == 0 {
		dns = fallbackDNS
	}
	var b strings.Builder
	for _, s := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	for _, l := range keep {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}

// filterResolv splits a resolv.conf into its usable name servers (not loopback) and
// its other lines (search, options; comments dropped).
func filterResolv(b []byte) (other, servers []string) {
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";"):
		case f[0] == "nameserver" && len(f) >= 2:
			if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() {
				servers = append(servers, f[1])
			}
		default:
			other = append(other, strings.TrimSpace(l))
		}
	}
	return other, servers
}
