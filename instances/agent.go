package instances

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sandbox"
)

// What the scheduler's agent and reservations use of the instance service. They never see
// the service's locks or maps: admission, restarts and removals go through these methods.

// Info reports a local instance's sandbox state (ok false: not on this node).
func (m *Service) Info(name string) (sandbox.Info, bool) {
	rt := m.local()
	if rt == nil {
		return sandbox.Info{}, false
	}
	in, err := rt.Get(name)
	return in, err == nil
}

// StartAgain starts a stopped or exited local instance again (a supervised restart) and
// rewrites its record.
func (m *Service) StartAgain(name string) error {
	rt := m.local()
	if rt == nil {
		return fmt.Errorf("%w: no runtime on node %s", ErrNotFound, m.cfg.Name)
	}
	m.opMu.Lock()
	_, err := rt.Start(name)
	m.opMu.Unlock()
	m.syncRecord(name)
	return err
}

// Remove stops (SIGTERM, then SIGKILL after grace) and destroys a local instance with its
// data, uploaded code and record. A missing instance is not an error.
func (m *Service) Remove(ctx context.Context, name string, grace time.Duration) error {
	rt := m.local()
	if rt == nil {
		return nil
	}
	if _, err := rt.Get(name); err != nil {
		return nil
	}
	// Stop outside opMu: a program that ignores SIGTERM would hold up every admission on
	// this node for the grace period.
	_ = rt.Stop(ctx, name, grace)
	m.opMu.Lock()
	err := rt.Destroy(ctx, name, false)
	m.mu.Lock()
	md := m.meta[name]
	m.mu.Unlock()
	m.opMu.Unlock()
	if err != nil && !errors.Is(err, sandbox.ErrNotFound) {
		return err
	}
	if md.CodeOwned && strings.HasPrefix(md.Code, m.codeDir+string(filepath.Separator)) {
		os.RemoveAll(md.Code)
	}
	os.Remove(m.metaPath(name))
	m.removeRecord(name)
	return nil
}

// Free is what a new reservation or create could still take on this node.
type Free struct {
	CPUPercent float64 // cpu_percent units (100 = one core)
	RAMMB      int64
	DiskMB     int64
}

// Admit runs fn with the free resources of this node (capacity less the reserve, the
// reservations and the allocations), serialised with every create, so what fn admits
// cannot be taken by a concurrent create.
func (m *Service) Admit(fn func(free Free) error) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	c := m.capacity()
	m.lessReserved(&c)
	var a allocation
	if rt := m.local(); rt != nil {
		a = allocationOf(rt.List(), "")
	}
	return fn(Free{CPUPercent: c.cpu - a.cpu, RAMMB: c.ram - a.ram, DiskMB: c.disk - a.disk})
}

// Lookup reads an instance's replicated record (any node's).
func (m *Service) Lookup(name string) (Record, bool) { return m.record(name) }

// Reconcile makes the records owned by this node match the runtime now (it also runs at
// start): records of instances the runtime does not know are removed.
func (m *Service) Reconcile() { m.reconcile() }

// Runtime opens the sandbox runtime now (it opens on first use otherwise).
func (m *Service) Runtime() (Runtime, error) { return m.runtime() }

// InstanceSocket is the host path of a local instance's API socket and the token it
// takes (ok false: no such local instance). For tests and diagnostics.
func (m *Service) InstanceSocket(name string) (path, token string, ok bool) {
	m.mu.Lock()
	md, ok := m.meta[name]
	m.mu.Unlock()
	path = m.inner.socketPath(name)
	if !ok || path == "" {
		return "", "", false
	}
	return path, m.inner.token(name, md.ID), true
}

// withDefaults fills the dimensions l leaves unset with the node's default limits.
func (m *Service) withDefaults(l sandbox.Limits) sandbox.Limits {
	d := m.cfg.DefaultLimits
	if l.CPUPercent == 0 && l.CPUCores == 0 {
		l.CPUPercent = d.CPUPercent
	}
	if l.RAMMB == 0 {
		l.RAMMB = d.RAMMB
	}
	if l.PIDs == 0 {
		l.PIDs = d.PIDs
	}
	if l.DiskMB == 0 {
		l.DiskMB = d.DiskMB
	}
	return l
}

// checkMax refuses limits above the node's maxima, naming the setting.
func (m *Service) checkMax(l sandbox.Limits) error {
	x := m.cfg.MaxLimits
	over := func(field string, asked, max float64, flag string) error {
		return httpapi.Errorf(http.StatusUnprocessableEntity, "over_limit",
			"%s %s is above the most node %s allows an instance (%s; set with --%s)", field, fmtNum(asked), m.cfg.Name, fmtNum(max), flag)
	}
	cpu := l.CPUPercent + 100*float64(l.CPUCores)
	switch {
	case x.CPUPercent > 0 && (cpu > x.CPUPercent || cpu == 0):
		return over("cpu_percent", cpu, x.CPUPercent, "max-cpu-percent")
	case x.RAMMB > 0 && (l.RAMMB > x.RAMMB || l.RAMMB == 0):
		return over("ram_mb", float64(l.RAMMB), float64(x.RAMMB), "max-ram-mb")
	case x.PIDs > 0 && (l.PIDs > x.PIDs || l.PIDs == 0):
		return over("pids", float64(l.PIDs), float64(x.PIDs), "max-pids")
	case x.DiskMB > 0 && (l.DiskMB > x.DiskMB || l.DiskMB == 0):
		return over("disk_mb", float64(l.DiskMB), float64(x.DiskMB), "max-disk-mb")
	}
	return nil
}

// ParseSignal reads a signal name (TERM, SIGTERM, sigint...) or number.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig, ok := signalNames[name]; ok {
		return sig, nil
	}
	return 0, httpapi.BadRequest("invalid signal %q: a name such as TERM, INT, HUP, QUIT, USR1, USR2, KILL, or a number 1-64", s)
}

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "ALRM": syscall.SIGALRM,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "WINCH": syscall.SIGWINCH, "PIPE": syscall.SIGPIPE,
}

// Local lists the instances this node's runtime holds (none when it is not open), from the
// runtime and the node's meta: what the node runs, whatever the replicated records say.
func (m *Service) Local() []Record {
	rt := m.local()
	if rt == nil {
		return nil
	}
	var out []Record
	for _, in := range rt.List() {
		if r, err := m.localRecord(rt, in.Name); err == nil {
			out = append(out, r)
		}
	}
	return out
}
