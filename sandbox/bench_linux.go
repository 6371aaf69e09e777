package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"
)

// probeArg0 makes Init act as the benchmark's probe program: write one byte to stdout
// (a pipe) and exit.
const probeArg0 = "constellation-sandbox-probe"

func runProbe() {
	os.Stdout.Write([]byte{'x'})
	os.Exit(0)
}

// Bench measures cold start (create+start until the program's first write to a pipe,
// full isolation), the same under `runc run`, starting many instances at once, and the
// memory cost of idle instances. It needs root. `constellation bench sandbox` runs it.
func Bench(ctx context.Context, bc BenchConfig) (BenchResult, error) {
	var res BenchResult
	if bc.Starts == 0 {
		bc.Starts = 200
	}
	if bc.Parallel == 0 {
		bc.Parallel = 100
	}
	if bc.Idle == 0 {
		bc.Idle = 500
	}
	if bc.RuncStarts == 0 {
		bc.RuncStarts = bc.Starts
	}
	if bc.Limits == (Limits{}) {
		bc.Limits = Limits{CPUPercent: 100, RAMMB: 64, PIDs: 64}
	}
	logf := bc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := bc.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "sandbox-bench-")
		if err != nil {
			return res, err
		}
		dir = d
	}
	defer os.RemoveAll(dir)
	code := filepath.Join(dir, "code")
	if err := os.MkdirAll(code, 0o755); err != nil {
		return res, err
	}
	os.Chmod(dir, 0o755)
	src := bc.Program
	if src == "" {
		exe, err := os.Executable()
		if err != nil {
			return res, err
		}
		src = exe
	}
	probe := filepath.Join(code, probeArg0)
	if err := copyFile(src, probe, 0o755); err != nil {
		return res, err
	}
	// The probe's stdout is this pipe, for the sandbox and for runc alike.
	rd, wr, err := os.Pipe()
	if err != nil {
		return res, err
	}
	defer rd.Close()
	defer wr.Close()

	if bc.Bridge == "" {
		bc.Bridge = "c7nb" + strconv.Itoa(os.Getpid()%100000000)
	}
	if bc.BridgeSubnet == "" {
		bc.BridgeSubnet = "198.19.255.0/24"
	}
	rt, err := New(Config{
		Bridge:       bc.Bridge,
		BridgeSubnet: bc.BridgeSubnet,
		StateDir:     filepath.Join(dir, "state"),
		CodeRoots:    []string{code},
		CgroupParent: "constellation-bench-" + strconv.Itoa(os.Getpid()),
		DataImageMB:  4096,
		Logger:       nil,
	})
	if err != nil {
		return res, err
	}
	defer rt.Teardown(context.Background())
	res.DiskQuotaMode = rt.DiskQuotaMode()
	spec := func(name string) Spec {
		return Spec{Name: name, Code: code, Command: []string{"./" + probeArg0}, Limits: bc.Limits, Network: NetworkHost}
	}
	readByte := func() error {
		rd.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		_, err := io.ReadFull(rd, b[:])
		return err
	}
	coldRun := func(n int, disk int64, network ...string) ([]time.Duration, error) {
		var lat []time.Duration
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			name := fmt.Sprintf("cold-%d", i)
			s := spec(name)
			s.DiskMB = disk
			if len(network) > 0 {
				s.Network = network[0]
			}
			t0 := time.Now()
			if _, err := rt.Create(s); err != nil {
				return nil, err
			}
			if _, err := rt.start(name, wr); err != nil {
				return nil, err
			}
			if err := readByte(); err != nil {
				info, _ := rt.Get(name)
				return nil, fmt.Errorf("probe %d: %w (state %s, exit %+v, stderr: %s)", i, err, info.State, info.LastExit, tail(rt, name))
			}
			lat = append(lat, time.Since(t0))
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			rt.Wait(wctx, name)
			cancel()
			if err := rt.Destroy(ctx, name, false); err != nil {
				return nil, err
			}
		}
		return lat, nil
	}
	// Warm the page cache and the template image.
	if _, err := coldRun(3, bc.DiskMB); err != nil {
		return res, err
	}
	lat, err := coldRun(bc.Starts, 0)
	if err != nil {
		return res, err
	}
	res.Starts = len(lat)
	res.ColdP50, res.ColdP99 = percentile(lat, 50), percentile(lat, 99)
	logf("cold start: p50 %v p99 %v over %d", res.ColdP50, res.ColdP99, res.Starts)
	if bc.DiskMB > 0 {
		lat, err := coldRun(max(bc.Starts/4, 10), bc.DiskMB)
		if err != nil {
			return res, err
		}
		res.ColdDiskP50, res.ColdDiskP99 = percentile(lat, 50), percentile(lat, 99)
		logf("cold start with disk_mb=%d (%s): p50 %v p99 %v", bc.DiskMB, res.DiskQuotaMode, res.ColdDiskP50, res.ColdDiskP99)
	}
	if !bc.NoNetwork {
		if _, err := coldRun(3, 0, NetworkBridge); err != nil { // the bridge and rules
			return res, err
		}
		lat, err := coldRun(bc.Starts, 0, NetworkBridge)
		if err != nil {
			return res, err
		}
		res.ColdNetP50, res.ColdNetP99 = percentile(lat, 50), percentile(lat, 99)
		logf("cold start with network bridge: p50 %v p99 %v", res.ColdNetP50, res.ColdNetP99)
	}
	if _, err := exec.LookPath("runc"); err == nil && !bc.NoRunc {
		lat, err := benchRunc(ctx, dir, code, wr, readByte, bc)
		if err != nil {
			return res, fmt.Errorf("runc: %w", err)
		}
		res.RuncStarts = len(lat)
		res.RuncP50, res.RuncP99 = percentile(lat, 50), percentile(lat, 99)
		res.RuncRatio = float64(res.RuncP50) / float64(res.ColdP50)
		if res.ColdNetP50 > 0 {
			res.RuncRatioNet = float64(res.RuncP50) / float64(res.ColdNetP50)
		}
		logf("runc run: p50 %v p99 %v over %d; ratio %.1fx", res.RuncP50, res.RuncP99, res.RuncStarts, res.RuncRatio)
	}

	// Start many at once: sleeping instances, created and started concurrently.
	sleeper := func(name string) Spec {
		return Spec{Name: name, Command: []string{"sleep", "3600"}, Limits: bc.Limits, Network: NetworkHost}
	}
	res.Parallel = bc.Parallel
	t0 := time.Now()
	if err := startMany(rt, "many-", bc.Parallel, sleeper); err != nil {
		return res, err
	}
	res.StartManyWall = time.Since(t0)
	logf("start %d instances: %v", bc.Parallel, res.StartManyWall)
	for _, in := range rt.List() {
		rt.Destroy(ctx, in.Name, false)
	}

	if bc.Idle > 0 {
		runtime.GC()
		debug.FreeOSMemory()
		rss0 := selfRSS()
		if err := startMany(rt, "idle-", bc.Idle, sleeper); err != nil {
			return res, err
		}
		time.Sleep(500 * time.Millisecond)
		runtime.GC()
		debug.FreeOSMemory()
		rss1 := selfRSS()
		res.Idle = bc.Idle
		res.IdleSupervisorRSS = (rss1 - rss0) / int64(bc.Idle)
		if p, ok := rt.plat.(*linuxPlatform); ok {
			var kmem, mem int64
			for i := 0; i < bc.Idle; i++ {
				cg := p.cg.cgroup(fmt.Sprintf("idle-%d", i))
				kmem += cg.kernelMem()
				_, m, _ := cg.usage()
				mem += m
			}
			res.IdleCgroupKernel = kmem / int64(bc.Idle)
			res.IdleInstanceMemory = mem / int64(bc.Idle)
		}
		var rss, pss, anon int64
		for i := 0; i < bc.Idle; i++ {
			if info, err := rt.Get(fmt.Sprintf("idle-%d", i)); err == nil && info.PID > 0 {
				p := "/proc/" + strconv.Itoa(info.PID) + "/smaps_rollup"
				rss += int64(statKeyColon(p, "Rss")) << 10
				pss += int64(statKeyColon(p, "Pss")) << 10
				anon += int64(statKeyColon(p, "Anonymous")) << 10
			}
		}
		res.IdleInitRSS, res.IdleInitPSS, res.IdleInitAnon = rss/int64(bc.Idle), pss/int64(bc.Idle), anon/int64(bc.Idle)
		logf("instance init: RSS %d B, PSS %d B, anonymous %d B per instance", res.IdleInitRSS, res.IdleInitPSS, res.IdleInitAnon)
		logf("%d idle instances: supervisor RSS %d B/instance, cgroup kernel memory %d B/instance, instance memory %d B/instance",
			bc.Idle, res.IdleSupervisorRSS, res.IdleCgroupKernel, res.IdleInstanceMemory)
	}
	return res, nil
}

func startMany(rt *Runtime, prefix string, n int, mk func(string) Spec) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 2*runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := prefix + strconv.Itoa(i)
				if _, err := rt.Create(mk(name)); err != nil {
					errs <- err
					continue
				}
				if _, err := rt.Start(name); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func tail(rt *Runtime, name string) string {
	rc, err := rt.Logs(context.Background(), name, LogOptions{Stream: Stderr})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 4096))
	return string(b)
}

// benchRunc runs the probe under `runc run` with an OCI bundle hardened like an
// instance: user namespace (uid 65534 inside, a range above 65535 outside), pid, mount,
// uts, ipc and cgroup namespaces, no capabilities, no_new_privs, the same seccomp
// allow-list, deny-all devices, masked and read-only /proc paths, the same system
// directories, /app and limits.
func benchRunc(ctx context.Context, dir, code string, wr *os.File, readByte func() error, bc BenchConfig) ([]time.Duration, error) {
	bundle := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	mounts := []map[string]any{
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777"}},
		{"destination": "/app", "type": "bind", "source": code, "options": []string{"rbind", "rw"}},
	}
	for _, d := range []string{"/app", "/proc", "/dev", "/tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range DefaultConfig("/").SystemDirs {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(d)
			os.Symlink(l, filepath.Join(rootfs, d))
			continue
		}
		os.MkdirAll(filepath.Join(rootfs, d), 0o755)
		mounts = append(mounts, map[string]any{"destination": d, "type": "bind", "source": d, "options": []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	seccomp := defaultSeccompProfile()
	if a, ok := seccompArches[runtime.GOARCH]; ok {
		seccomp.Architectures = []string{a.name}
	}
	var masked, readonly []string
	for _, f := range append(append([]string{}, procMaskedFiles...), procMaskedDirs...) {
		masked = append(masked, "/proc/"+f)
	}
	for _, f := range procReadOnly {
		readonly = append(readonly, "/proc/"+f)
	}
	devices := []map[string]any{{"allow": false, "access": "rwm"}}
	for _, d := range allowedDevices {
		dev := map[string]any{"allow": true, "type": "c", "major": d.major, "access": "rw"}
		if d.minor >= 0 {
			dev["minor"] = d.minor
		}
		devices = append(devices, dev)
	}
	idMap := []map[string]int{{"containerID": 0, "hostID": defaultUIDBase + (defaultUIDSlots-1)*userNSSize, "size": userNSSize}}
	quota := int64(bc.Limits.CPUPercent * cfsPeriod / 100)
	mem := bc.Limits.RAMMB << 20
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"user":            map[string]any{"uid": 65534, "gid": 65534},
			"args":            []string{appDir + "/" + probeArg0},
			"env":             []string{"PATH=" + systemPath},
			"cwd":             appDir,
			"noNewPrivileges": true,
			"capabilities":    map[string][]string{"bounding": {}, "effective": {}, "permitted": {}, "inheritable": {}, "ambient": {}},
		},
		"root":     map[string]any{"path": "rootfs", "readonly": true},
		"hostname": "probe",
		"mounts":   mounts,
		"linux": map[string]any{
			"namespaces":    []map[string]string{{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "user"}, {"type": "cgroup"}},
			"uidMappings":   idMap,
			"gidMappings":   idMap,
			"seccomp":       seccomp,
			"maskedPaths":   masked,
			"readonlyPaths": readonly,
			"resources": map[string]any{
				"devices": devices,
				"memory":  map[string]any{"limit": mem, "swap": mem},
				"cpu":     map[string]any{"quota": quota, "period": cfsPeriod},
				"pids":    map[string]any{"limit": bc.Limits.PIDs},
			},
		},
	}
	b, err := json.MarshalIndent(spec, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "runc-root")
	var lat []time.Duration
	for i := -3; i < bc.RuncStarts; i++ { // 3 warm-up runs
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id := fmt.Sprintf("sandbox-bench-%d-%d", os.Getpid(), i+3)
		cmd := exec.CommandContext(ctx, "runc", "--root", root, "run", "--bundle", bundle, id)
		var out limitedBuffer
		cmd.Stdout, cmd.Stderr = wr, &out
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		rerr := readByte()
		d := time.Since(t0)
		werr := cmd.Wait()
		if rerr != nil || werr != nil {
			exec.Command("runc", "--root", root, "delete", "-f", id).Run()
			return nil, fmt.Errorf("run %d: read %v, wait %v: %s", i, rerr, werr, out.b)
		}
		if i >= 0 {
			lat = append(lat, d)
		}
	}
	return lat, nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 4096 {
		l.b = append(l.b, p[:min(len(p), 4096-len(l.b))]...)
	}
	return len(p), nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func selfRSS() int64 {
	return int64(statKeyColon("/proc/self/status", "VmRSS")) << 10
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
