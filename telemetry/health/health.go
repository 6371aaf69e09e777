package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rads-lang/constellation/internal/state"
)

// Collections of the replicated document.
const (
	CollChecks  = "health_checks"
	CollResults = "health_results"
)

// Kinds of checks.
const (
	KindHTTP = "http"
	KindTCP  = "tcp"
	KindExec = "exec"
)

// Statuses of a result.
const (
	Passing = "passing"
	Failing = "failing"
)

// Limits and defaults.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 5 * time.Second
	MaxChecks       = 1000
	maxOutput       = 256
)

// ErrBadCheck is a check definition that cannot run.
var ErrBadCheck = errors.New("bad health check")

// Check is a check's replicated record.
type Check struct {
	Name      string `cbor:"1,keyasint"`
	Node      string `cbor:"2,keyasint,omitempty"` // the node that probes (node checks)
	Instance  string `cbor:"3,keyasint,omitempty"` // the instance it belongs to (probed where it runs)
	Namespace string `cbor:"4,keyasint,omitempty"`
	Kind      string `cbor:"5,keyasint"`
	Target    string `cbor:"6,keyasint"` // URL, HOST:PORT or shell command
	IntervalS int    `cbor:"7,keyasint,omitempty"`
	TimeoutS  int    `cbor:"8,keyasint,omitempty"`
}

// Result is a check's last status change (replicated).
type Result struct {
	Name      string    `cbor:"1,keyasint"`
	Node      string    `cbor:"2,keyasint"` // the node that probed
	Status    string    `cbor:"3,keyasint"`
	Output    string    `cbor:"4,keyasint,omitempty"`
	Since     time.Time `cbor:"5,keyasint"`
	CheckedAt time.Time `cbor:"6,keyasint"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// Interval and Timeout with their defaults.
func (c Check) Interval() time.Duration {
	if c.IntervalS <= 0 {
		return DefaultInterval
	}
	return time.Duration(c.IntervalS) * time.Second
}

func (c Check) Timeout() time.Duration {
	if c.TimeoutS <= 0 {
		return DefaultTimeout
	}
	return time.Duration(c.TimeoutS) * time.Second
}

// Validate checks a definition and names what is wrong.
func (c Check) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrBadCheck, fmt.Sprintf(f, a...)) }
	if !nameRE.MatchString(c.Name) {
		return bad(`name %q: 1-63 letters, digits, '.', '_' or '-' (e.g. "database")`, c.Name)
	}
	if c.Node != "" && c.Instance != "" {
		return bad(`give "node" or "instance", not both: an instance's check runs on the node that runs it`)
	}
	switch c.Kind {
	case KindHTTP:
		u, err := url.Parse(c.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(`http target %q: an http(s) URL, e.g. http://127.0.0.1:8080/health`, c.Target)
		}
	case KindTCP:
		if _, port, err := net.SplitHostPort(c.Target); err != nil || port == "" {
			return bad(`tcp target %q: HOST:PORT, e.g. 127.0.0.1:5432`, c.Target)
		}
	case KindExec:
		if strings.TrimSpace(c.Target) == "" || len(c.Target) > 4096 {
			return bad(`exec target: a shell command of 1-4096 bytes, run on the node's host with sh -c, e.g. "pg_isready -h 127.0.0.1"`)
		}
		if c.Instance != "" {
			return bad(`exec checks run on the node's host, not in an instance; for an instance use http or tcp`)
		}
	default:
		return bad(`kind %q: want http, tcp or exec`, c.Kind)
	}
	if c.IntervalS < 0 || c.IntervalS > 86400 || c.TimeoutS < 0 || c.TimeoutS > 300 {
		return bad(`interval must be 1s-24h and timeout 1s-5m`)
	}
	if c.TimeoutS > 0 && c.Timeout() > c.Interval() {
		return bad(`timeout %s is longer than the interval %s`, c.Timeout(), c.Interval())
	}
	return nil
}

// Probe runs c once.
func Probe(ctx context.Context, c Check) (status, output string) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout())
	defer cancel()
	fail := func(err error) (string, string) { return Failing, trim(err.Error()) }
	switch c.Kind {
	case KindHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Target, nil)
		if err != nil {
			return fail(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fail(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode >= 400 {
			return Failing, resp.Status
		}
		return Passing, resp.Status
	case KindTCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.Target)
		if err != nil {
			return fail(err)
		}
		conn.Close()
		return Passing, "connected"
	case KindExec:
		cmd := exec.CommandContext(ctx, "sh", "-c", c.Target)
		// The command's children go with it at the timeout (its own process group), and
		// a child still holding the output pipe cannot keep the probe waiting.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			if ctx.Err() != nil {
				return Failing, "timed out after " + c.Timeout().String()
			}
			return Failing, trim(strings.TrimSpace(string(out)) + " (" + err.Error() + ")")
		}
		return Passing, trim(strings.TrimSpace(string(out)))
	}
	return Failing, "unknown kind " + c.Kind
}

func trim(s string) string {
	if len(s) > maxOutput {
		return s[:maxOutput]
	}
	return s
}

// List reads every check and result of the cluster, sorted by name.
func List(st *state.Store) ([]Check, map[string]Result) {
	var cs []Check
	rs := map[string]Result{}
	st.View(func(v *state.View) {
		for _, k := range v.Keys(CollChecks) {
			if b, _, ok := v.GetLWW(CollChecks, k); ok {
				var c Check
				if state.Decode(b, &c) == nil {
					cs = append(cs, c)
				}
			}
		}
		for _, k := range v.Keys(CollResults) {
			if b, _, ok := v.GetLWW(CollResults, k); ok {
				var r Result
				if state.Decode(b, &r) == nil {
					rs[r.Name] = r
				}
			}
		}
	})
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs, rs
}

// Put stores a check (replacing one of the same name).
func Put(st *state.Store, c Check) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := state.Encode(c)
	if err != nil {
		return err
	}
	return st.Update(func(tx *state.Tx) error {
		return tx.Put(CollChecks, c.Name, b)
	})
}

// Remove deletes a check and its result; ok false when there was none.
func Remove(st *state.Store, name string) (bool, error) {
	var had bool
	st.View(func(v *state.View) { had = v.Has(CollChecks, name) })
	if !had {
		return false, nil
	}
	return true, st.Update(func(tx *state.Tx) error {
		if err := tx.Remove(CollChecks, name); err != nil {
			return err
		}
		return tx.Remove(CollResults, name)
	})
}

// Runner probes the checks this node is responsible for.
type Runner struct {
	St    *state.Store
	Self  string                     // this node's name
	Local func(instance string) bool // whether an instance runs here
	Log   *slog.Logger
	Now   func() time.Time

	mu   sync.Mutex // guards next
	next map[string]time.Time
}

// mine reports whether this node probes c.
func (r *Runner) mine(c Check) bool {
	if c.Instance != "" {
		return r.Local != nil && r.Local(c.Instance)
	}
	return c.Node == r.Self
}

// Tick probes the due checks (concurrently, each within its timeout) and writes the
// results whose status changed.
func (r *Runner) Tick(ctx context.Context) {
	cs, rs := List(r.St)
	now := r.Now()
	r.mu.Lock()
	if r.next == nil {
		r.next = map[string]time.Time{}
	}
	var due []Check
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.Name] = true
		if !r.mine(c) || now.Before(r.next[c.Name]) {
			continue
		}
		r.next[c.Name] = now.Add(c.Interval())
		due = append(due, c)
	}
	for n := range r.next {
		if !seen[n] {
			delete(r.next, n)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, out := Probe(ctx, c)
			if ctx.Err() != nil {
				return
			}
			prev, had := rs[c.Name]
			if had && prev.Status == status && prev.Node == r.Self {
				return // unchanged: nothing written
			}
			res := Result{Name: c.Name, Node: r.Self, Status: status, Output: out, Since: now.UTC(), CheckedAt: now.UTC()}
			b, err := state.Encode(res)
			if err == nil {
				err = r.St.Update(func(tx *state.Tx) error { return tx.Put(CollResults, c.Name, b) })
			}
			if err != nil {
				r.Log.Warn("health check result not stored", "check", c.Name, "err", err)
			} else if status == Failing {
				r.Log.Warn("health check failing", "check", c.Name, "output", out)
			}
		}()
	}
	wg.Wait()
}

// Run ticks every `every` until ctx ends.
func (r *Runner) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
