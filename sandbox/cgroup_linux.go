package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupHost knows where the hierarchies are and where instance cgroups go.
//
// v2 (unified): one directory per instance under root/parent; controllers are enabled in
// the parent's cgroup.subtree_control. v1: one directory per controller hierarchy.
type cgroupHost struct {
	v2 bool
	// v2: mount point of the unified hierarchy and the parent path inside it.
	root, parent string
	// v1: controller -> absolute parent directory (mount point + parent path).
	v1 map[string]string
	// v2: controllers enabled for instances.
	controllers map[string]bool
}

const (
	cgroupV2Magic = unix.CGROUP2_SUPER_MAGIC
	cfsPeriod     = 100000 // µs
)

// v1Controllers are the hierarchies an instance cgroup is created in (when mounted).
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices"}

// newCgroupHost detects the cgroup layout. root overrides the mount point of a v2
// hierarchy (tests); parent is the instance parent: absolute ("/x") is relative to the
// hierarchy root, relative ("x") is relative to this process's own cgroup.
func newCgroupHost(root, parent string) (*cgroupHost, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	if root == "" {
		var st unix.Statfs_t
		if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == cgroupV2Magic {
			root = "/sys/fs/cgroup"
		}
	}
	if root != "" {
		return newCgroupV2(root, parent, own[""])
	}
	mounts, err := v1Mounts()
	if err != nil {
		return nil, err
	}
	h := &cgroupHost{v1: map[string]string{}}
	for _, c := range v1Controllers {
		mp, ok := mounts[c]
		if !ok {
			continue
		}
		h.v1[c] = filepath.Join(mp, parentPath(parent, own[c]))
	}
	if len(h.v1) == 0 {
		return nil, fmt.Errorf("sandbox: no cgroup hierarchy found: %w", ErrUnenforceable)
	}
	for _, c := range v1Controllers {
		dir, ok := h.v1[c]
		if !ok {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sandbox: cgroup parent: %w", err)
		}
		if c == "cpuset" {
			// A v1 cpuset cgroup needs cpus and mems before tasks can join; inherit.
			if err := cpusetInherit(dir); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

func parentPath(parent, own string) string {
	if strings.HasPrefix(parent, "/") {
		return parent
	}
	if own == "" {
		own = "/"
	}
	return filepath.Join(own, parent)
}

func newCgroupV2(root, parent, own string) (*cgroupHost, error) {
	h := &cgroupHost{v2: true, root: root, controllers: map[string]bool{}}
	if !strings.HasPrefix(parent, "/") && own != "" && own != "/" {
		// Under systemd delegation this process lives in a non-root cgroup, which may not
		// hold processes once it has children with controllers: move into a leaf first.
		leaf := filepath.Join(root, own, "supervisor")
		if err := os.MkdirAll(leaf, 0o755); err == nil {
			if err := writeFile(filepath.Join(leaf, "cgroup.procs"), "0"); err != nil {
				// Could not move: fall back to the hierarchy root.
				parent = "/" + parent
			}
		}
	}
	h.parent = parentPath(parent, own)
	// Enable controllers from the root down to the parent.
	avail := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		for _, c := range strings.Fields(string(b)) {
			avail[c] = true
		}
	}
	dirs := []string{root}
	cur := root
	for _, part := range strings.Split(strings.Trim(h.parent, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		dirs = append(dirs, cur)
	}
	if err := os.MkdirAll(cur, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: cgroup parent: %w", err)
	}
	for _, c := range []string{"cpu", "cpuset", "memory", "pids"} {
		if !avail[c] {
			continue
		}
		ok := true
		for _, d := range dirs {
			if err := writeFile(filepath.Join(d, "cgroup.subtree_control"), "+"+c); err != nil {
				ok = false
				break
			}
		}
		h.controllers[c] = ok
	}
	return h, nil
}

// ownCgroups parses /proc/self/cgroup: controller -> path ("" key for v2).
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			m[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m, nil
}

// v1Mounts maps each v1 controller to its mount point.
func v1Mounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || fields[sep+1] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(fields[sep+3], ",") {
			for _, c := range v1Controllers {
				if opt == c {
					if _, dup := m[c]; !dup {
						m[c] = fields[4]
					}
				}
			}
		}
	}
	return m, sc.Err()
}

func cpusetInherit(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, _ := os.ReadFile(filepath.Join(dir, f))
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		pb, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("sandbox: cpuset: %w", err)
		}
		if strings.TrimSpace(string(pb)) == "" {
			if err := cpusetInherit(filepath.Dir(dir)); err != nil {
				return err
			}
			pb, _ = os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		}
		if err := writeFile(filepath.Join(dir, f), strings.TrimSpace(string(pb))); err != nil {
			return fmt.Errorf("sandbox: cpuset: %w", err)
		}
	}
	return nil
}

// has reports whether limits of the given controller can be enforced.
func (h *cgroupHost) has(c string) bool {
	if h.v2 {
		return h.controllers[c]
	}
	_, ok := h.v1[c]
	return ok
}

// check returns a *FieldError for a limit this host cannot enforce.
func (h *cgroupHost) check(l Limits) error {
	for _, c := range []struct {
		set   bool
		ctrl  string
		field string
	}{
		{l.CPUPercent > 0, "cpu", "cpu_percent"},
		{l.CPUCores > 0, "cpuset", "cpu_cores"},
		{l.RAMMB > 0, "memory", "ram_mb"},
		{l.PIDs > 0, "pids", "pids"},
	} {
		if c.set && !h.has(c.ctrl) {
			return fieldErr(c.field, ErrUnenforceable, "cgroup controller %q is not available", c.ctrl)
		}
	}
	return nil
}

// cgroup is one instance's cgroup (all hierarchies).
type cgroup struct {
	h    *cgroupHost
	name string
}

func (h *cgroupHost) cgroup(name string) *cgroup { return &cgroup{h: h, name: name} }

// path of the instance directory for controller c ("" for v2).
func (cg *cgroup) path(c string) string {
	if cg.h.v2 {
		return filepath.Join(cg.h.root, cg.h.parent, cg.name)
	}
	p, ok := cg.h.v1[c]
	if !ok {
		return ""
	}
	return filepath.Join(p, cg.name)
}

func (cg *cgroup) dirs() []string {
	if cg.h.v2 {
		return []string{cg.path("")}
	}
	var out []string
	for _, c := range v1Controllers {
		if p := cg.path(c); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// create makes the directories; on error nothing is left.
func (cg *cgroup) create() error {
	var made []string
	for _, d := range cg.dirs() {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			for _, m := range made {
				os.Remove(m)
			}
			return fmt.Errorf("sandbox: cgroup: %w", err)
		}
		made = append(made, d)
	}
	if !cg.h.v2 {
		if p := cg.path("cpuset"); p != "" {
			if err := cpusetInherit(p); err != nil {
				cg.destroy()
				return err
			}
		}
	}
	// Deny every device but the standard ones.
	var err error
	switch {
	case cg.h.v2:
		err = attachDeviceFilter(cg.path(""))
	case cg.path("devices") != "":
		err = v1DeviceRules(cg.path("devices"))
	default:
		err = fmt.Errorf("sandbox: no devices cgroup (v1 devices controller not mounted): %w", ErrUnenforceable)
	}
	if err != nil {
		cg.destroy()
		return err
	}
	return nil
}

// apply writes limits; cpuset is the pinned core list ("" for all cores).
func (cg *cgroup) apply(l Limits, cpuset string) error {
	if err := cg.h.check(l); err != nil {
		return err
	}
	if cg.h.v2 {
		p := cg.path("")
		if cg.h.has("cpu") {
			v := "max " + strconv.Itoa(cfsPeriod)
			if l.CPUPercent > 0 {
				v = fmt.Sprintf("%d %d", int64(l.CPUPercent*cfsPeriod/100), cfsPeriod)
			}
			if err := writeFile(filepath.Join(p, "cpu.max"), v); err != nil {
				return fmt.Errorf("sandbox: cpu.max: %w", err)
			}
		}
		if cg.h.has("memory") {
			v := "max"
			if l.RAMMB > 0 {
				v = strconv.FormatInt(l.RAMMB<<20, 10)
			}
			if err := writeFile(filepath.Join(p, "memory.max"), v); err != nil {
				return fmt.Errorf("sandbox: memory.max: %w", err)
			}
			sw := "max"
			if l.RAMMB > 0 {
				sw = "0"
			}
			if err := writeFile(filepath.Join(p, "memory.swap.max"), sw); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sandbox: memory.swap.max: %w", err)
			}
		}
		if cg.h.has("pids") {
			v := "max"
			if l.PIDs > 0 {
				v = strconv.FormatInt(l.PIDs, 10)
			}
			if err := writeFile(filepath.Join(p, "pids.max"), v); err != nil {
				return fmt.Errorf("sandbox: pids.max: %w", err)
			}
		}
		if cg.h.has("cpuset") {
			if err := writeFile(filepath.Join(p, "cpuset.cpus"), cpuset); err != nil {
				return fmt.Errorf("sandbox: cpuset.cpus: %w", err)
			}
		}
		return nil
	}
	if p := cg.path("cpu"); p != "" {
		q := "-1"
		if l.CPUPercent > 0 {
			q = strconv.FormatInt(int64(l.CPUPercent*cfsPeriod/100), 10)
		}
		if err := writeFile(filepath.Join(p, "cpu.cfs_period_us"), strconv.Itoa(cfsPeriod)); err != nil {
			return fmt.Errorf("sandbox: cpu.cfs_period_us: %w", err)
		}
		if err := writeFile(filepath.Join(p, "cpu.cfs_quota_us"), q); err != nil {
			return fmt.Errorf("sandbox: cpu.cfs_quota_us: %w", err)
		}
	}
	if p := cg.path("memory"); p != "" {
		v := "-1"
		if l.RAMMB > 0 {
			v = strconv.FormatInt(l.RAMMB<<20, 10)
		}
		memsw := filepath.Join(p, "memory.memsw.limit_in_bytes")
		_, swErr := os.Stat(memsw)
		// memsw must stay >= limit: lower limit first, raise memsw first.
		cur, _ := readInt(filepath.Join(p, "memory.limit_in_bytes"))
		newV := int64(-1)
		if l.RAMMB > 0 {
			newV = l.RAMMB << 20
		}
		raising := newV < 0 || newV > cur
		if swErr == nil && raising {
			if err := writeFile(memsw, v); err != nil {
				return fmt.Errorf("sandbox: memory.memsw.limit_in_bytes: %w", err)
			}
		}
		if err := writeFile(filepath.Join(p, "memory.limit_in_bytes"), v); err != nil {
			return fmt.Errorf("sandbox: memory.limit_in_bytes: %w", err)
		}
		if swErr == nil && !raising {
			if err := writeFile(memsw, v); err != nil {
				return fmt.Errorf("sandbox: memory.memsw.limit_in_bytes: %w", err)
			}
		}
	}
	if p := cg.path("pids"); p != "" {
		v := "max"
		if l.PIDs > 0 {
			v = strconv.FormatInt(l.PIDs, 10)
		}
		if err := writeFile(filepath.Join(p, "pids.max"), v); err != nil {
			return fmt.Errorf("sandbox: pids.max: %w", err)
		}
	}
	if p := cg.path("cpuset"); p != "" {
		v := cpuset
		if v == "" {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cpuset.cpus"))
			if err != nil {
				return fmt.Errorf("sandbox: cpuset: %w", err)
			}
			v = strings.TrimSpace(string(b))
		}
		if err := writeFile(filepath.Join(p, "cpuset.cpus"), v); err != nil {
			return fmt.Errorf("sandbox: cpuset.cpus: %w", err)
		}
	}
	return nil
}

// addProc moves pid into every v1 hierarchy (v2 children start inside via
// CLONE_INTO_CGROUP and are never moved).
func (cg *cgroup) addProc(pid int) error {
	s := strconv.Itoa(pid)
	for _, d := range cg.dirs() {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), s); err != nil {
			return fmt.Errorf("sandbox: join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// procs lists the PIDs in the cgroup.
func (cg *cgroup) procs() []int {
	d := cg.path("pids")
	if cg.h.v2 || d == "" {
		d = cg.dirs()[0]
	}
	b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// signalAll sends sig to every process in the cgroup.
func (cg *cgroup) signalAll(sig syscall.Signal) {
	for _, pid := range cg.procs() {
		unix.Kill(pid, sig)
	}
}

// kill kills every process in the cgroup (v2: cgroup.kill; v1: freeze, SIGKILL, thaw).
func (cg *cgroup) kill() {
	if len(cg.procs()) == 0 {
		return
	}
	if cg.h.v2 {
		if writeFile(filepath.Join(cg.path(""), "cgroup.kill"), "1") == nil {
			return
		}
	}
	frozen := cg.freeze(true) == nil
	cg.signalAll(unix.SIGKILL)
	if frozen {
		cg.freeze(false)
	}
}

// freeze freezes or thaws the cgroup and waits for the transition.
func (cg *cgroup) freeze(on bool) error {
	var file, want, val string
	if cg.h.v2 {
		file = filepath.Join(cg.path(""), "cgroup.freeze")
		val, want = "0", "frozen 0"
		if on {
			val, want = "1", "frozen 1"
		}
	} else {
		p := cg.path("freezer")
		if p == "" {
			return fmt.Errorf("sandbox: freezer cgroup: %w", ErrUnenforceable)
		}
		file = filepath.Join(p, "freezer.state")
		val, want = "THAWED", "THAWED"
		if on {
			val, want = "FROZEN", "FROZEN"
		}
	}
	if err := writeFile(file, val); err != nil {
		return fmt.Errorf("sandbox: freeze: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var cur string
		if cg.h.v2 {
			b, _ := os.ReadFile(filepath.Join(cg.path(""), "cgroup.events"))
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "frozen ") {
					cur = line
				}
			}
		} else {
			b, _ := os.ReadFile(file)
			cur = strings.TrimSpace(string(b))
		}
		if cur == want {
			return nil
		}
		time.Sleep(time.Millisecond)
		if !cg.h.v2 {
			writeFile(file, val) // v1 may need a nudge while FREEZING
		}
	}
	return fmt.Errorf("sandbox: freeze %v: timed out", on)
}

// oomKills is the number of OOM kills in the cgroup so far.
func (cg *cgroup) oomKills() uint64 {
	var file, key string
	if cg.h.v2 {
		file, key = filepath.Join(cg.path(""), "memory.events"), "oom_kill"
	} else {
		p := cg.path("memory")
		if p == "" {
			return 0
		}
		file, key = filepath.Join(p, "memory.oom_control"), "oom_kill"
	}
	return statKey(file, key)
}

// cpuNs reads the cumulative CPU time.
func (cg *cgroup) cpuNs() uint64 {
	if cg.h.v2 {
		return statKey(filepath.Join(cg.path(""), "cpu.stat"), "usage_usec") * 1000
	}
	if p := cg.path("cpuacct"); p != "" {
		n, _ := readInt(filepath.Join(p, "cpuacct.usage"))
		return uint64(n)
	}
	return 0
}

// usage reads CPU time (ns), memory (bytes, without inactive file cache) and pids.
func (cg *cgroup) usage() (cpuNs uint64, mem int64, pids int64) {
	if cg.h.v2 {
		p := cg.path("")
		cpuNs = statKey(filepath.Join(p, "cpu.stat"), "usage_usec") * 1000
		cur, _ := readInt(filepath.Join(p, "memory.current"))
		mem = cur - int64(statKey(filepath.Join(p, "memory.stat"), "inactive_file"))
		pids, _ = readInt(filepath.Join(p, "pids.current"))
	} else {
		if p := cg.path("cpuacct"); p != "" {
			n, _ := readInt(filepath.Join(p, "cpuacct.usage"))
			cpuNs = uint64(n)
		}
		if p := cg.path("memory"); p != "" {
			cur, _ := readInt(filepath.Join(p, "memory.usage_in_bytes"))
			mem = cur - int64(statKey(filepath.Join(p, "memory.stat"), "total_inactive_file"))
		}
		if p := cg.path("pids"); p != "" {
			pids, _ = readInt(filepath.Join(p, "pids.current"))
		} else {
			pids = int64(len(cg.procs()))
		}
	}
	return cpuNs, max(mem, 0), pids
}

// kernelMem is the kernel memory charged to the cgroup (bytes), for benchmarks.
func (cg *cgroup) kernelMem() int64 {
	if cg.h.v2 {
		return int64(statKey(filepath.Join(cg.path(""), "memory.stat"), "kernel"))
	}
	if p := cg.path("memory"); p != "" {
		n, _ := readInt(filepath.Join(p, "memory.kmem.usage_in_bytes"))
		return n
	}
	return 0
}

// destroy removes the cgroup directories, killing leftovers; waits briefly for the
// kernel to release exiting tasks.
func (cg *cgroup) destroy() error {
	var last error
	for _, d := range cg.dirs() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				last = fmt.Errorf("sandbox: remove cgroup %s: %w", d, err)
				break
			}
			cg.kill()
			time.Sleep(2 * time.Millisecond)
		}
	}
	return last
}

// exists reports whether the instance cgroup directory exists.
func (cg *cgroup) exists() bool {
	_, err := os.Stat(cg.dirs()[0])
	return err == nil
}

// openFD opens the v2 directory for CLONE_INTO_CGROUP.
func (cg *cgroup) openFD() (int, error) {
	fd, err := unix.Open(cg.path(""), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("sandbox: open cgroup: %w", err)
	}
	return fd, nil
}

// removeParent removes the runtime's parent directories if empty.
func (h *cgroupHost) removeParent() {
	if h.v2 {
		unix.Rmdir(filepath.Join(h.root, h.parent))
		return
	}
	for _, d := range h.v1 {
		unix.Rmdir(d)
	}
}

func writeFile(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// statKey reads "key value" lines.
func statKey(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
