package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
)

// Spec describes one instance. JSON field names follow the seed plan; decode untrusted
// input with DecodeSpec, which rejects unknown fields.
type Spec struct {
	// Name is unique per runtime: 1-63 characters [A-Za-z0-9_.-], starting alphanumeric.
	Name string `json:"name"`
	// Command is the argv to run. Exactly one of Command and Script is set. A relative
	// argv[0] without a slash is looked up in the system PATH (/usr/local/bin, /usr/bin,
	// /bin, ...); a path starting with "./" is relative to the code directory.
	Command []string `json:"command,omitempty"`
	// Script is a file inside the code directory (relative path). A ".rads" script runs
	// with Runtime (default "rads" from PATH); any other script runs directly.
	Script string `json:"script,omitempty"`
	// Runtime is the interpreter for Script ("rads" by default for .rads files): a name
	// looked up in PATH or an absolute path under a system directory.
	Runtime string `json:"runtime,omitempty"`
	// Args are appended after Command or Script.
	Args []string `json:"args,omitempty"`
	// Env is added to the instance environment (PATH, HOME and Config.Env are set by
	// default; Env wins).
	Env map[string]string `json:"env,omitempty"`
	// Code is a host directory, under one of Config.CodeRoots, shared read-only by every
	// instance that uses it. It is the lower layer of the instance's working directory
	// (/app), whose upper layer is the instance's private data. Empty: /app is the data
	// directory alone.
	Code string `json:"code,omitempty"`

	Limits

	// Restart is the restart policy (default never).
	Restart RestartPolicy `json:"restart,omitempty"`
	// UID and GID the program runs as; nil means Config.DefaultUID/DefaultGID
	// (unprivileged by default).
	UID *int `json:"uid,omitempty"`
	GID *int `json:"gid,omitempty"`
	// Network is "bridge" (own network namespace with an address on the node's
	// bridge, NAT for egress), "none" (loopback only) or "host" (the node's network).
	// Empty: Config.DefaultNetwork (bridge); Create stores the mode it chose.
	// "isolated" is the former name of "none".
	Network string `json:"network,omitempty"`
	// Publish forwards host ports to the instance (bridge mode only).
	Publish []Publish `json:"publish,omitempty"`
	// HostRoot runs the instance without a user namespace: its uids are host uids and
	// uid 0 is the host's root (with the reduced capability set). Refused unless the
	// node allows it (Config.AllowHostRoot, --allow-host-root). Default false: the
	// instance gets its own host uid range (Info.HostUID).
	HostRoot bool `json:"host_root,omitempty"`
	// Seccomp is the system call filter: "" or "default" (SeccompDefault),
	// "unconfined" (none), or the absolute path of an OCI linux.seccomp JSON profile on
	// the node (read and copied at create).
	Seccomp string `json:"seccomp,omitempty"`
}

// Limits are the resource limits of an instance. Zero means unlimited for every field.
type Limits struct {
	// CPUPercent is CPU time as a percentage of one core; may exceed 100 (200 = two cores).
	CPUPercent float64 `json:"cpu_percent,omitempty"`
	// CPUCores pins the instance to this many dedicated cores (cpuset); the runtime picks
	// the least used cores.
	CPUCores int `json:"cpu_cores,omitempty"`
	// RAMMB is the memory limit (no swap on top of it), in MiB.
	RAMMB int64 `json:"ram_mb,omitempty"`
	// DiskMB is the size limit of the instance's data layer, in MiB.
	DiskMB int64 `json:"disk_mb,omitempty"`
	// PIDs is the maximum number of processes and threads.
	PIDs int64 `json:"pids,omitempty"`
}

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// RestartPolicy says when an exited instance is started again. Delays grow
// exponentially from BackoffMS to MaxBackoffMS with jitter (each delay is uniformly
// random in [d/2, d]); the attempt counter resets after the instance ran StableS seconds.
type RestartPolicy struct {
	Policy       string `json:"policy,omitempty"`         // never (default), on-failure, always
	MaxAttempts  int    `json:"max_attempts,omitempty"`   // 0: unlimited
	BackoffMS    int    `json:"backoff_ms,omitempty"`     // first delay; default 100
	MaxBackoffMS int    `json:"max_backoff_ms,omitempty"` // cap; default 30000
	StableS      int    `json:"stable_s,omitempty"`       // default 60
}

// Bounds used by validation.
const (
	// MinRAMMB is the smallest ram_mb that can run anything: where the native init is
	// not available the Go init (a Go runtime) stays resident in the instance's cgroup.
	MinRAMMB = 16
	// MinDiskMB is the smallest disk_mb (filesystem metadata of the data layer).
	MinDiskMB = 1
	// MinPIDs: the program plus at least one child.
	MinPIDs = 2
	// maxSpecBytes bounds DecodeSpec input.
	maxSpecBytes = 1 << 20
	maxArgs      = 4096
	maxEnv       = 4096
)

// Host describes the machine limits are validated against.
type Host struct {
	CPUs     int   // online CPUs
	MemoryMB int64 // total RAM
	MaxPIDs  int64 // kernel pid_max
	DiskMB   int64 // capacity available for instance data (0: unknown)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// DecodeSpec decodes one JSON spec strictly: unknown fields, wrong types and trailing
// data are *FieldError values naming the field. It does not validate values; call
// Spec.Validate (Runtime.Create does).
func DecodeSpec(data []byte) (Spec, error) {
	var s Spec
	if len(data) > maxSpecBytes {
		return s, fieldErr("", ErrInvalidSpec, "spec larger than %d bytes", maxSpecBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Spec{}, jsonFieldError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Spec{}, fieldErr("", ErrInvalidSpec, "trailing data after the spec object")
	}
	return s, nil
}

// jsonFieldError turns encoding/json errors into *FieldError.
func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		f := te.Field
		if f == "" {
			f = "(root)"
		}
		// Embedded Limits fields are reported as "Limits.ram_mb".
		f = strings.TrimPrefix(f, "Limits.")
		return fieldErr(f, ErrInvalidSpec, "cannot use JSON %s as %s", te.Value, te.Type)
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fieldErr(strings.Trim(rest, `"`), ErrUnknownField, "unknown field")
	}
	return fieldErr("", ErrInvalidSpec, "malformed JSON: %v", err)
}

// Validate checks every field against h. It does not touch the filesystem (executable
// and code path checks happen in Runtime.Create).
func (s *Spec) Validate(h Host) error {
	if !nameRE.MatchString(s.Name) {
		return fieldErr("name", ErrInvalidSpec, "must match %s", nameRE)
	}
	switch {
	case len(s.Command) == 0 && s.Script == "":
		return fieldErr("command", ErrInvalidSpec, "one of command or script is required")
	case len(s.Command) > 0 && s.Script != "":
		return fieldErr("script", ErrInvalidSpec, "command and script are mutually exclusive")
	case len(s.Command) > 0 && s.Command[0] == "":
		return fieldErr("command", ErrInvalidSpec, "argv[0] is empty")
	case len(s.Command)+len(s.Args) > maxArgs:
		return fieldErr("args", ErrInvalidSpec, "more than %d arguments", maxArgs)
	case s.Runtime != "" && s.Script == "":
		return fieldErr("runtime", ErrInvalidSpec, "runtime needs a script")
	}
	for _, a := range append(append([]string{}, s.Command...), s.Args...) {
		if strings.IndexByte(a, 0) >= 0 {
			return fieldErr("command", ErrInvalidSpec, "argument contains NUL")
		}
	}
	if s.Script != "" {
		if s.Code == "" {
			return fieldErr("script", ErrInvalidSpec, "script needs a code directory")
		}
		if !localPath(s.Script) {
			return fieldErr("script", ErrInvalidSpec, "must be a relative path inside the code directory")
		}
	}
	if len(s.Env) > maxEnv {
		return fieldErr("env", ErrInvalidSpec, "more than %d variables", maxEnv)
	}
	for k, v := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return fieldErr("env", ErrInvalidSpec, "invalid variable %q", k)
		}
	}
	if s.Code != "" && (!strings.HasPrefix(s.Code, "/") || strings.IndexByte(s.Code, 0) >= 0) {
		return fieldErr("code", ErrInvalidSpec, "must be an absolute path")
	}
	if err := s.Limits.Validate(h); err != nil {
		return err
	}
	if err := s.Restart.validate(); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"uid", s.UID}, {"gid", s.GID}} {
		if f.v != nil && (*f.v < 0 || *f.v > math.MaxInt32-1) {
			return fieldErr(f.name, ErrInvalidSpec, "must be in [0, %d]", math.MaxInt32-1)
		}
		if f.v != nil && !s.HostRoot && *f.v > 65535 {
			return fieldErr(f.name, ErrInvalidSpec, "%d is outside the instance's user namespace (0..65535); larger ids need host_root", *f.v)
		}
	}
	switch {
	case s.Seccomp == "", s.Seccomp == SeccompDefault, s.Seccomp == SeccompUnconfined:
	case !strings.HasPrefix(s.Seccomp, "/") || strings.IndexByte(s.Seccomp, 0) >= 0:
		return fieldErr("seccomp", ErrInvalidSpec, "must be %q, %q or the absolute path of an OCI seccomp profile (JSON)", SeccompDefault, SeccompUnconfined)
	}
	return s.validateNetwork()
}

// Validate checks limits against the host: negative values, values the host cannot
// provide, and memory too small to start anything are *FieldError values.
func (l Limits) Validate(h Host) error {
	if l.CPUPercent < 0 || math.IsNaN(l.CPUPercent) || math.IsInf(l.CPUPercent, 0) {
		return fieldErr("cpu_percent", ErrInvalidSpec, "must be >= 0")
	}
	if h.CPUs > 0 && l.CPUPercent > float64(100*h.CPUs) {
		return fieldErr("cpu_percent", ErrInvalidSpec, "%g exceeds the host's %d cores (max %d)", l.CPUPercent, h.CPUs, 100*h.CPUs)
	}
	if l.CPUPercent > 0 && l.CPUPercent < 1 {
		return fieldErr("cpu_percent", ErrInvalidSpec, "must be at least 1 (or 0 for unlimited)")
	}
	if l.CPUCores < 0 {
		return fieldErr("cpu_cores", ErrInvalidSpec, "must be >= 0")
	}
	if h.CPUs > 0 && l.CPUCores > h.CPUs {
		return fieldErr("cpu_cores", ErrInvalidSpec, "%d exceeds the host's %d cores", l.CPUCores, h.CPUs)
	}
	if l.RAMMB < 0 {
		return fieldErr("ram_mb", ErrInvalidSpec, "must be >= 0")
	}
	if l.RAMMB > 0 && l.RAMMB < MinRAMMB {
		return fieldErr("ram_mb", ErrInvalidSpec, "%d is below the minimum of %d MiB", l.RAMMB, MinRAMMB)
	}
	if h.MemoryMB > 0 && l.RAMMB > h.MemoryMB {
		return fieldErr("ram_mb", ErrInvalidSpec, "%d exceeds the host's %d MiB", l.RAMMB, h.MemoryMB)
	}
	if l.DiskMB < 0 {
		return fieldErr("disk_mb", ErrInvalidSpec, "must be >= 0")
	}
	if l.DiskMB > 0 && l.DiskMB < MinDiskMB {
		return fieldErr("disk_mb", ErrInvalidSpec, "below the minimum of %d MiB", MinDiskMB)
	}
	if l.DiskMB > 1<<40 || (h.DiskMB > 0 && l.DiskMB > h.DiskMB) {
		return fieldErr("disk_mb", ErrInvalidSpec, "%d exceeds the space available for instance data (%d MiB)", l.DiskMB, h.DiskMB)
	}
	if l.PIDs < 0 {
		return fieldErr("pids", ErrInvalidSpec, "must be >= 0")
	}
	if l.PIDs > 0 && l.PIDs < MinPIDs {
		return fieldErr("pids", ErrInvalidSpec, "below the minimum of %d", MinPIDs)
	}
	if h.MaxPIDs > 0 && l.PIDs > h.MaxPIDs {
		return fieldErr("pids", ErrInvalidSpec, "%d exceeds the kernel's pid_max %d", l.PIDs, h.MaxPIDs)
	}
	return nil
}

func (p RestartPolicy) validate() error {
	switch p.Policy {
	case "", RestartNever, RestartOnFailure, RestartAlways:
	default:
		return fieldErr("restart.policy", ErrInvalidSpec, "must be %q, %q or %q", RestartNever, RestartOnFailure, RestartAlways)
	}
	if p.MaxAttempts < 0 {
		return fieldErr("restart.max_attempts", ErrInvalidSpec, "must be >= 0")
	}
	if p.BackoffMS < 0 || p.BackoffMS > 3600_000 {
		return fieldErr("restart.backoff_ms", ErrInvalidSpec, "must be in [0, 3600000]")
	}
	if p.MaxBackoffMS < 0 || p.MaxBackoffMS > 3600_000 {
		return fieldErr("restart.max_backoff_ms", ErrInvalidSpec, "must be in [0, 3600000]")
	}
	if p.StableS < 0 || p.StableS > 86400 {
		return fieldErr("restart.stable_s", ErrInvalidSpec, "must be in [0, 86400]")
	}
	return nil
}

// withDefaults fills the restart policy's zero values.
func (p RestartPolicy) withDefaults() RestartPolicy {
	if p.Policy == "" {
		p.Policy = RestartNever
	}
	if p.BackoffMS == 0 {
		p.BackoffMS = 100
	}
	if p.MaxBackoffMS == 0 {
		p.MaxBackoffMS = 30000
	}
	if p.MaxBackoffMS < p.BackoffMS {
		p.MaxBackoffMS = p.BackoffMS
	}
	if p.StableS == 0 {
		p.StableS = 60
	}
	return p
}

// shouldRestart decides whether an instance that exited with e after attempts
// consecutive restarts is started again. A stop requested by the caller never restarts.
func (p RestartPolicy) shouldRestart(e Exit, attempts int) bool {
	p = p.withDefaults()
	if e.Stopped {
		return false
	}
	if p.MaxAttempts > 0 && attempts >= p.MaxAttempts {
		return false
	}
	switch p.Policy {
	case RestartAlways:
		return true
	case RestartOnFailure:
		return !(e.Reason == ReasonExited && e.Code == 0)
	}
	return false
}

// backoff is the delay before restart number attempt+1; rnd is uniform in [0,1).
func (p RestartPolicy) backoff(attempt int, rnd float64) time.Duration {
	p = p.withDefaults()
	d := float64(p.BackoffMS) * math.Pow(2, float64(min(attempt, 40)))
	d = min(d, float64(p.MaxBackoffMS))
	d = d/2 + d/2*rnd
	return time.Duration(d * float64(time.Millisecond))
}

// localPath reports whether p is a clean relative path that stays inside its root.
func localPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return false
		}
	}
	return true
}

// String renders limits for logs.
func (l Limits) String() string {
	return fmt.Sprintf("cpu_percent=%g cpu_cores=%d ram_mb=%d disk_mb=%d pids=%d", l.CPUPercent, l.CPUCores, l.RAMMB, l.DiskMB, l.PIDs)
}
