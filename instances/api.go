package instances

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"crypto/sha256"
	"encoding/hex"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sandbox"
)

// ParseRestart parses the CLI's restart forms: never, always, on-failure, on-failure:N.
func ParseRestart(s string) (sandbox.RestartPolicy, error) {
	pol, n, hasN := strings.Cut(s, ":")
	bad := fmt.Errorf("invalid restart %q: one of never, always, on-failure, on-failure:N (N = max attempts)", s)
	switch pol {
	case "", sandbox.RestartNever, sandbox.RestartAlways:
		if hasN {
			return sandbox.RestartPolicy{}, bad
		}
		if pol == "" {
			pol = sandbox.RestartNever
		}
		return sandbox.RestartPolicy{Policy: pol}, nil
	case sandbox.RestartOnFailure:
		p := sandbox.RestartPolicy{Policy: pol}
		if hasN {
			k, err := strconv.Atoi(n)
			if err != nil || k < 1 || k > 1000000 {
				return p, bad
			}
			p.MaxAttempts = k
		}
		return p, nil
	}
	return sandbox.RestartPolicy{}, bad
}

func init() {
	httpapi.Classify(http.StatusConflict, "insufficient_resources", ErrInsufficientResources)
	httpapi.Classify(http.StatusConflict, "exists", ErrExists, sandbox.ErrExists)
	httpapi.Classify(http.StatusNotFound, "not_found", ErrNotFound, sandbox.ErrNotFound)
	httpapi.Classify(http.StatusConflict, "conflict", sandbox.ErrRunning, sandbox.ErrNotRunning)
	httpapi.Classify(http.StatusUnprocessableEntity, "unenforceable", sandbox.ErrUnenforceable)
	httpapi.ClassifyFunc(http.StatusBadRequest, "bad_request", func(err error) (string, bool) {
		var fe *sandbox.FieldError
		if errors.As(err, &fe) {
			return fmt.Sprintf("invalid %s: %s", orRoot(fe.Field), fe.Reason), true
		}
		return "", false
	})
	httpapi.Classify(http.StatusBadRequest, "bad_request", sandbox.ErrInvalidSpec)
	httpapi.Classify(http.StatusServiceUnavailable, "unavailable", ErrUnavailable, sandbox.ErrUnsupported, sandbox.ErrClosed)
}

func orRoot(f string) string {
	if f == "" {
		return "request"
	}
	return "field " + strconv.Quote(f)
}

var instanceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func validInstanceName(name string) error {
	if !instanceNameRE.MatchString(name) {
		return httpapi.BadRequest("invalid instance name %q: 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// namespaceOf checks a create's namespace ("" is the default).
func namespaceOf(ns string) (string, error) {
	if ns == "" {
		return api.DefaultNamespace, nil
	}
	if !api.ValidNamespace(ns) {
		return "", httpapi.BadRequest(`invalid field "namespace" %q: %s`, ns, api.NamespaceRule)
	}
	return ns, nil
}

// toSpec turns a create request into a sandbox spec (the runtime validates the rest).
func (m *Service) toSpec(req *api.CreateRequest) (sandbox.Spec, error) {
	spec := sandbox.Spec{
		Name: req.Name, Command: req.Command, Script: req.Script, Runtime: req.Runtime, Args: req.Args,
		Code: req.Code, UID: req.UID, GID: req.GID, Network: req.Network, HostRoot: req.HostRoot, Seccomp: req.Seccomp,
		Limits: sandbox.Limits{CPUPercent: req.CPUPercent, CPUCores: req.CPUCores, RAMMB: req.RAMMB,
			DiskMB: req.DiskMB, PIDs: req.PIDs},
	}
	if req.RAMGB != 0 {
		if req.RAMMB != 0 {
			return spec, httpapi.BadRequest(`give either "ram_mb" or "ram_gb", not both`)
		}
		if req.RAMGB < 0 || req.RAMGB > 1<<20 {
			return spec, httpapi.BadRequest(`invalid field "ram_gb": %v; a positive number of GiB, e.g. 8`, req.RAMGB)
		}
		spec.RAMMB = int64(req.RAMGB * 1024)
	}
	for _, s := range req.Publish {
		p, err := sandbox.ParsePublish(s)
		if err != nil {
			return spec, httpapi.BadRequest(`field "publish": %v`, err)
		}
		spec.Publish = append(spec.Publish, p)
	}
	spec.Limits = m.withDefaults(spec.Limits)
	if err := m.checkMax(spec.Limits); err != nil {
		return spec, err
	}
	rp, err := ParseRestart(req.Restart)
	if err != nil {
		return spec, httpapi.BadRequest(`field "restart": %v`, err)
	}
	spec.Restart = rp
	if len(req.Command) == 0 && req.Script == "" {
		return spec, httpapi.BadRequest(`one of "command" (an argv array, e.g. ["sh","-c","echo hi"]) or "script" (a file, e.g. "app.rads") is required`)
	}
	if len(req.Command) > 0 && req.Script != "" {
		return spec, httpapi.BadRequest(`give either "command" or "script", not both`)
	}
	spec.Env = map[string]string{}
	for k, v := range req.Env {
		if strings.HasPrefix(k, "CONSTELLATION_") {
			return spec, httpapi.BadRequest(`field "env": %s is set by the node; CONSTELLATION_* names are reserved`, k)
		}
		spec.Env[k] = v
	}
	spec.Env["CONSTELLATION_INSTANCE"] = req.Name
	return spec, nil
}

// registerInstanceRoutes adds the instance API to a mux (the local API's, and the one
// that serves forwarded requests).
func (m *Service) registerRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/instances", m.handleCreate)
	route("GET /v1/instances", m.handleList)
	route("GET /v1/instances/{name}", m.handleOp("show"))
	route("DELETE /v1/instances/{name}", m.handleOp("rm"))
	route("GET /v1/instances/{name}/stats", m.handleOp("stats"))
	route("GET /v1/instances/{name}/logs", m.handleOp("logs"))
	for _, op := range []string{"start", "stop", "restart", "set-limits", "wait", "snapshot", "restore"} {
		route("POST /v1/instances/{name}/"+op, m.handleOp(op))
	}
	route("GET /v1/instances/{name}/snapshots", m.handleOp("snapshots"))
	route("DELETE /v1/instances/{name}/snapshots/{tag}", m.handleOp("snapshot-rm"))
	route("GET /v1/resources", m.handleResources)
}

func (m *Service) handleResources(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, m.resources())
}

// ctxKey marks requests that arrived over the forwarding protocol or from an instance.
type ctxKey int

const (
	ctxForwarded ctxKey = iota // value: true
	ctxInstance                // value: the calling instance (caller, authz.go)
)

func isForwarded(r *http.Request) bool { v, _ := r.Context().Value(ctxForwarded).(bool); return v }

// resolveTarget finds where create should run: "" or this node's name/ID is local.
func (m *Service) resolveTarget(nameOrID string) (peer.ID, string, bool, error) {
	self := m.host.ID()
	if nameOrID == "" || nameOrID == m.cfg.Name || nameOrID == self.String() {
		return self, m.cfg.Name, true, nil
	}
	id, name, err := m.members.Resolve(nameOrID)
	if err != nil {
		return "", "", false, err
	}
	return id, name, id == self, nil
}

func (m *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, err := httpapi.ReadBody(r)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	var req api.CreateRequest
	if err := httpapi.DecodeStrict(body, &req, false); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if err := validInstanceName(req.Name); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if _, err := namespaceOf(req.Namespace); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	grants, err := ParseGrants(req.Grants)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	req.Grants = grants
	if c, ok := callerOf(r.Context()); ok {
		if err := checkCreate(c, &req); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
	}
	if rec, ok := m.record(req.Name); ok {
		httpapi.WriteErr(w, fmt.Errorf("%w: instance %q already exists on node %s; pick another name or remove it with 'constellation rm %s'", ErrExists, req.Name, rec.Node, req.Name))
		return
	}
	if req.Reservation != "" {
		if err := m.resv.PrepareReservedCreate(&req); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
	}
	id, name, local, err := m.resolveTarget(req.Node)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if !local {
		if isForwarded(r) {
			httpapi.WriteError(w, http.StatusMisdirectedRequest, "misdirected", fmt.Sprintf("node %s received a forwarded create for node %s", m.cfg.Name, name))
			return
		}
		m.forward(&statusRecorder{ResponseWriter: w, onStatus: func(st int) {
			if st == http.StatusCreated {
				m.setHint(req.Name, name, id)
			}
		}}, r, body, id, name)
		return
	}
	var rec Record
	if req.Reservation != "" {
		rec, err = m.resv.CreateReserved(r.Context(), &req)
	} else {
		rec, err = m.Create(r.Context(), &req)
	}
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, infoFor(r.Context(), rec))
}

// Create runs a create request on this node: admission, sandbox create, the instance's
// API socket and token, optional start. A ctx that carries an instance caller (a create
// through an instance's API) records the instance as its creator.
func (m *Service) Create(ctx context.Context, req *api.CreateRequest) (Record, error) {
	spec, err := m.toSpec(req)
	if err != nil {
		return Record{}, err
	}
	grants, err := ParseGrants(req.Grants)
	if err != nil {
		return Record{}, err
	}
	rt, err := m.runtime()
	if err != nil {
		return Record{}, err
	}
	ns, err := namespaceOf(req.Namespace)
	if err != nil {
		return Record{}, err
	}
	stamp := m.st.Clock().Now()
	md := instanceMeta{ID: newInstanceID(), CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		StampWall: stamp.Wall, StampLogical: stamp.Logical,
		Script: req.Script, Env: req.Env, Code: req.Code, Namespace: ns, Grants: grants, MetricsPort: req.MetricsPort,
		Deployment: req.Deployment}
	if m.secrets != nil {
		if err := m.secrets.CheckNamespace(ns); err != nil {
			return Record{}, err
		}
	}
	if len(req.Secrets) > 0 {
		if m.secrets == nil {
			return Record{}, httpapi.BadRequest(`field "secrets": this node has no secrets store`)
		}
		if err := m.secrets.CheckSecrets(ns, req.Secrets); err != nil {
			return Record{}, err
		}
		for _, s := range req.Secrets {
			if _, dup := spec.Env[s]; dup {
				return Record{}, httpapi.BadRequest(`secret %q is also in "env": give the variable one way`, s)
			}
			if !slices.Contains(md.Secrets, s) {
				md.Secrets = append(md.Secrets, s)
			}
		}
		slices.Sort(md.Secrets)
	}
	if md.MountFS, err = m.checkMountFS(req.MountFS); err != nil {
		return Record{}, err
	}
	if req.MetricsPort != 0 {
		if req.MetricsPort < 1 || req.MetricsPort > 65535 {
			return Record{}, httpapi.BadRequest(`invalid field "metrics_port": %d is not a port (1-65535)`, req.MetricsPort)
		}
		if spec.Network == sandbox.NetworkNone {
			return Record{}, httpapi.BadRequest(`field "metrics_port" needs a network the node can reach: bridge or host, not none`)
		}
	}
	if c, ok := callerOf(ctx); ok {
		md.CreatedBy, md.CreatorID = c.name, c.id
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := rt.Get(req.Name); err == nil {
		return Record{}, fmt.Errorf("%w: instance %q already exists on node %s", ErrExists, req.Name, m.cfg.Name)
	}
	t0 := time.Now()
	if err := m.fits(rt, spec.Limits, ""); err != nil {
		return Record{}, err
	}
	if req.ScriptContent != "" {
		if req.Code != "" {
			return Record{}, httpapi.BadRequest(`give either "code" or "script_content", not both`)
		}
		dir, err := m.writeScript(req.Name, req.Script, req.ScriptContent)
		if err != nil {
			return Record{}, err
		}
		spec.Code, spec.Script = dir, filepath.Base(req.Script)
		md.Code, md.CodeOwned = dir, true
	}
	cleanup := func() {
		if md.CodeOwned {
			os.RemoveAll(md.Code)
		}
		os.Remove(m.metaPath(req.Name))
	}
	// The meta is known before the runtime's created event, so the first record is complete.
	if err := m.saveMeta(req.Name, md); err != nil {
		cleanup()
		return Record{}, fmt.Errorf("node: instance meta: %w", err)
	}
	tAdmit := time.Now()
	tCreate := tAdmit
	if _, err := rt.Create(spec); err != nil {
		m.mu.Lock()
		delete(m.meta, req.Name)
		m.mu.Unlock()
		cleanup()
		return Record{}, err
	}
	tCreate = time.Now()
	if err := m.inner.attach(rt, req.Name); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = rt.Destroy(dctx, req.Name, false)
		cancel()
		cleanup()
		return Record{}, fmt.Errorf("node: instance %q API socket (removed again): %w", req.Name, err)
	}
	if req.Start == nil || *req.Start {
		if _, err := rt.Start(req.Name); err != nil {
			// Undo the create even during a shutdown (bounded): nothing half-made stays.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = rt.Destroy(dctx, req.Name, false)
			cancel()
			cleanup()
			return Record{}, fmt.Errorf("node: instance %q could not start (removed again): %w", req.Name, err)
		}
	}
	tStart := time.Now()
	m.metrics.observeCreate(tAdmit.Sub(t0), tCreate.Sub(tAdmit), tStart.Sub(tCreate), req.Start == nil || *req.Start)
	m.syncRecord(req.Name)
	m.log.Debug("instance created", "instance", req.Name, "admit", tAdmit.Sub(t0), "create", tCreate.Sub(tAdmit),
		"start", tStart.Sub(tCreate), "record", time.Since(tStart))
	return m.localRecord(rt, req.Name)
}

// writeScript stores an uploaded script in its own code directory under <data-dir>/code.
func (m *Service) writeScript(name, script, content string) (string, error) {
	base := filepath.Base(script)
	if script == "" || base == "." || base == "/" || strings.HasPrefix(base, ".") && len(base) <= 2 {
		return "", httpapi.BadRequest(`field "script" must name the uploaded file (e.g. "app.rads") when "script_content" is given`)
	}
	sum := sha256.Sum256([]byte(content))
	dir := filepath.Join(m.codeDir, name+"-"+hex.EncodeToString(sum[:4]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("node: code dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, base), []byte(content), 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("node: write script: %w", err)
	}
	return dir, nil
}

// localRecord is the current record of a local instance (without waiting for replication).
func (m *Service) localRecord(rt Runtime, name string) (Record, error) {
	in, err := rt.Get(name)
	if err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	md := m.meta[name]
	m.mu.Unlock()
	rec := m.recordOf(in, md)
	rec.NodeStatus = api.StatusAlive
	rec.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	return rec, nil
}

// handleOp serves the operations on one named instance: locally when it runs here,
// otherwise forwarded to its node.
func (m *Service) handleOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := validInstanceName(name); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		if op == "rm" {
			if err := httpapi.NoBody(r, "give the stop grace period as a query parameter, e.g. ?grace=5s"); err != nil {
				httpapi.WriteErr(w, err)
				return
			}
		}
		body, err := httpapi.ReadBody(r)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		rt := m.local()
		if rt != nil {
			if _, err := rt.Get(name); err != nil {
				rt = nil
			}
		}
		c, fromInstance := callerOf(r.Context())
		if rt == nil {
			rec, ok := m.record(name)
			if h, hok := m.hint(name); !ok && hok && !isForwarded(r) {
				m.forward(w, r, body, h.nodeID, h.node) // created moments ago; record on its way
				return
			}
			switch {
			case !ok:
				httpapi.WriteErr(w, fmt.Errorf("%w: no instance %q in the cluster as node %s knows it; 'constellation list' shows them", ErrNotFound, name, m.cfg.Name))
			case rec.NodeID == m.host.ID().String() || isForwarded(r):
				httpapi.WriteErr(w, fmt.Errorf("%w: instance %q is not on node %s (its record names node %s)", ErrNotFound, name, m.cfg.Name, rec.Node))
			default:
				id, err := peer.Decode(rec.NodeID)
				if err != nil {
					httpapi.WriteErr(w, fmt.Errorf("%w: instance %q names a bad node ID", ErrNotFound, name))
					return
				}
				if op == "show" {
					// Any node can answer from the replicated record when the owner is away.
					if st := m.nodeStatus(rec.NodeID); st != api.StatusAlive && st != api.StatusSuspect {
						if fromInstance {
							if err := authorizeOp(c, op, rec.target(), body); err != nil {
								httpapi.WriteErr(w, err)
								return
							}
						}
						rec.NodeStatus = st
						httpapi.WriteJSON(w, http.StatusOK, infoFor(r.Context(), rec))
						return
					}
				}
				m.forward(w, r, body, id, rec.Node) // the instance's node decides for instance callers
			}
			return
		}
		if fromInstance {
			if err := authorizeOp(c, op, m.localTarget(name), body); err != nil {
				httpapi.WriteErr(w, err)
				return
			}
		}
		m.localOp(w, r, rt, op, name, body)
	}
}

func (m *Service) nodeStatus(id string) string {
	for _, x := range m.members.Nodes() {
		if x.ID == id {
			return x.Status
		}
	}
	return "unknown"
}

// graceParam reads the stop grace period of a DELETE: ?grace=5s (a duration), or the
// older ?grace_s=5 (seconds); default 10 s, at most an hour.
func graceParam(q url.Values) (time.Duration, error) {
	g, gs := q.Get("grace"), q.Get("grace_s")
	switch {
	case g != "" && gs != "":
		return 0, httpapi.BadRequest("give either grace (a duration, e.g. grace=5s) or grace_s (seconds), not both")
	case g != "":
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 || d > time.Hour {
			return 0, httpapi.BadRequest("invalid grace %q: a duration between 0s and 1h, e.g. grace=5s", g)
		}
		return d, nil
	case gs != "":
		f, err := strconv.ParseFloat(gs, 64)
		if err != nil {
			return 0, httpapi.BadRequest("invalid grace_s %q: seconds, e.g. 0 or 2.5 (or grace=2.5s)", gs)
		}
		return graceOf(&f)
	}
	return graceOf(nil)
}

func graceOf(g *float64) (time.Duration, error) {
	if g == nil {
		return 10 * time.Second, nil
	}
	if *g < 0 || *g > 3600 {
		return 0, httpapi.BadRequest(`invalid field "grace_s": %v; seconds between 0 and 3600`, *g)
	}
	return time.Duration(*g * float64(time.Second)), nil
}

func (m *Service) localOp(w http.ResponseWriter, r *http.Request, rt Runtime, op, name string, body []byte) {
	ctx := r.Context()
	fail := func(err error) { httpapi.WriteErr(w, err) }
	switch op {
	case "show":
		rec, err := m.localRecord(rt, name)
		if err != nil {
			fail(err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, infoFor(ctx, rec))
	case "stats":
		st, err := rt.Stats(name)
		if err != nil {
			fail(err)
			return
		}
		in, _ := rt.Get(name)
		status, _, _ := statusOf(in)
		httpapi.WriteJSON(w, http.StatusOK, api.InstanceStats{Name: name, Node: m.cfg.Name, Status: status,
			CPU: round(st.CPUPercent, 2), RAMMB: round(st.RAMMB, 2), DiskMB: round(st.DiskMB, 2), PIDs: st.PIDs,
			UptimeS: round(st.Uptime.Seconds(), 3), Restarts: st.Restarts, Limits: api.Limits(st.Limits)})
	case "logs":
		m.serveLogs(w, r, rt, name)
	case "start":
		if err := httpapi.DecodeStrict(body, &struct{}{}, true); err != nil {
			fail(err)
			return
		}
		m.opMu.Lock()
		in, err := rt.Get(name)
		if err == nil && in.State != sandbox.StateRunning {
			err = m.fits(rt, in.Spec.Limits, name)
		}
		if err == nil {
			_, err = rt.Start(name)
		}
		m.opMu.Unlock()
		m.answer(w, r, rt, name, err)
	case "stop":
		var req api.StopRequest
		if err := httpapi.DecodeStrict(body, &req, true); err != nil {
			fail(err)
			return
		}
		grace, err := graceOf(req.GraceS)
		sig := syscall.SIGTERM
		if err == nil && req.Signal != "" {
			sig, err = ParseSignal(req.Signal)
		}
		if err == nil {
			err = rt.StopSignal(ctx, name, sig, grace)
		}
		m.answer(w, r, rt, name, err)
	case "restart", "set-limits":
		var req api.LimitsRequest
		if err := httpapi.DecodeStrict(body, &req, true); err != nil {
			fail(err)
			return
		}
		grace, err := graceOf(req.GraceS)
		if err != nil {
			fail(err)
			return
		}
		if op == "set-limits" && req.GraceS != nil {
			fail(httpapi.BadRequest(`field "grace_s" belongs to restart, not set-limits`))
			return
		}
		m.opMu.Lock()
		in, err := rt.Get(name)
		if err == nil {
			l := in.Spec.Limits
			changed := req.CPUPercent != nil || req.CPUCores != nil || req.RAMMB != nil || req.DiskMB != nil || req.PIDs != nil
			if req.CPUPercent != nil {
				l.CPUPercent = *req.CPUPercent
			}
			if req.CPUCores != nil {
				l.CPUCores = *req.CPUCores
			}
			if req.RAMMB != nil {
				l.RAMMB = *req.RAMMB
			}
			if req.DiskMB != nil {
				l.DiskMB = *req.DiskMB
			}
			if req.PIDs != nil {
				l.PIDs = *req.PIDs
			}
			if op == "set-limits" && !changed {
				err = httpapi.BadRequest("set-limits needs at least one of cpu_percent, cpu_cores, ram_mb, disk_mb, pids")
			}
			l = m.withDefaults(l) // 0 goes back to the node's default, not to unlimited
			if err == nil {
				err = m.checkMax(l)
			}
			if err == nil && changed {
				if err = m.fits(rt, l, name); err == nil {
					_, err = rt.SetLimits(name, l)
				}
			}
		}
		m.opMu.Unlock()
		if err == nil && op == "restart" {
			_, err = rt.Restart(ctx, name, grace)
		}
		if err == nil {
			m.syncRecord(name)
		}
		m.answer(w, r, rt, name, err)
	case "wait":
		if err := httpapi.DecodeStrict(body, &struct{}{}, true); err != nil {
			fail(err)
			return
		}
		if t := r.URL.Query().Get("timeout"); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil || d <= 0 {
				fail(httpapi.BadRequest("invalid timeout %q: a duration like 30s or 5m", t))
				return
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		ex, err := rt.Wait(ctx, name)
		if err != nil {
			fail(err)
			return
		}
		in, _ := rt.Get(name)
		st, _, _ := statusOf(in)
		httpapi.WriteJSON(w, http.StatusOK, api.WaitResult{Name: name, Status: st, ExitCode: ex.Code, Reason: string(ex.Reason)})
	case "snapshots":
		snaps, err := rt.ListSnapshots(name)
		if err != nil {
			fail(err)
			return
		}
		out := make([]api.Snapshot, 0, len(snaps))
		for _, s := range snaps {
			out = append(out, api.Snapshot{Tag: s.Name, Instance: s.Instance, Node: m.cfg.Name, At: s.At, Bytes: s.Bytes})
		}
		httpapi.WriteJSON(w, http.StatusOK, out)
	case "snapshot-rm":
		tag := r.PathValue("tag")
		if err := validTag(tag); err != nil {
			fail(err)
			return
		}
		if err := rt.DeleteSnapshot(name, tag); err != nil {
			fail(err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"name": name, "tag": tag, "status": "deleted"})
	case "snapshot":
		var req api.SnapshotRequest
		if err := httpapi.DecodeStrict(body, &req, false); err != nil {
			fail(err)
			return
		}
		if err := validTag(req.Tag); err != nil {
			fail(err)
			return
		}
		snap, err := rt.SaveSnapshot(ctx, name, req.Tag)
		if err != nil {
			fail(err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, api.SnapshotResult{Name: name, Tag: snap.Name, Node: m.cfg.Name, Bytes: snap.Bytes})
	case "restore":
		var req api.SnapshotRequest
		if err := httpapi.DecodeStrict(body, &req, false); err != nil {
			fail(err)
			return
		}
		if err := validTag(req.Tag); err != nil {
			fail(err)
			return
		}
		in, err := rt.Get(name)
		if err != nil {
			fail(err)
			return
		}
		// A tag the instance does not have fails before the instance is stopped.
		if _, err := rt.GetSnapshot(name, req.Tag); err != nil {
			if errors.Is(err, sandbox.ErrNotFound) {
				err = fmt.Errorf("%w: instance %s has no snapshot %q on node %s (snapshots belong to their instance and stay on its node)", sandbox.ErrNotFound, name, req.Tag, m.cfg.Name)
			}
			fail(err)
			return
		}
		running := in.State == sandbox.StateRunning || in.State == sandbox.StateRestarting
		if running {
			if err := rt.Stop(ctx, name, 10*time.Second); err != nil {
				fail(err)
				return
			}
		}
		err = rt.RestoreSnapshot(ctx, name, req.Tag)
		if running {
			if _, serr := rt.Start(name); err == nil {
				err = serr
			}
		}
		if err != nil {
			fail(err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, api.SnapshotResult{Name: name, Tag: req.Tag, Node: m.cfg.Name, Restarted: running})
	case "rm":
		grace, err := graceParam(r.URL.Query())
		if err != nil {
			fail(err)
			return
		}
		// No opMu: a stop may take the whole grace period, and removing only frees resources.
		m.mu.Lock()
		md := m.meta[name]
		m.mu.Unlock()
		_ = rt.Stop(ctx, name, grace)
		err = rt.Destroy(ctx, name, false)
		if err != nil {
			fail(err)
			return
		}
		if md.CodeOwned && strings.HasPrefix(md.Code, m.codeDir+string(filepath.Separator)) {
			os.RemoveAll(md.Code)
		}
		os.Remove(m.metaPath(name))
		m.removeRecord(name)
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"name": name, "node": m.cfg.Name, "status": "removed"})
	default:
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "unknown instance operation "+op)
	}
}

func validTag(tag string) error {
	if !instanceNameRE.MatchString(tag) {
		return httpapi.BadRequest(`invalid field "tag" %q: 1-63 letters, digits, '_', '.' or '-', e.g. "before-upgrade"`, tag)
	}
	return nil
}

// answer writes an operation's result: the instance's record, or the error.
func (m *Service) answer(w http.ResponseWriter, r *http.Request, rt Runtime, name string, err error) {
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	m.syncRecord(name)
	rec, err := m.localRecord(rt, name)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, infoFor(r.Context(), rec))
}

// localTarget is what authorizeOp knows of a local instance (its meta).
func (m *Service) localTarget(name string) target {
	m.mu.Lock()
	md := m.meta[name]
	m.mu.Unlock()
	return target{name: name, id: md.ID, createdBy: md.CreatedBy, creatorID: md.CreatorID}
}

// serveLogs streams an instance's output as text/plain. Query: follow=1, stream=stdout|
// stderr|all (default all: stdout then stderr, interleaved by line when following),
// rotated=1 (include rotated files).
func (m *Service) serveLogs(w http.ResponseWriter, r *http.Request, rt Runtime, name string) {
	q := r.URL.Query()
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	rotated := q.Get("rotated") == "1" || q.Get("rotated") == "true"
	var streams []sandbox.Stream
	switch q.Get("stream") {
	case "", "all":
		streams = []sandbox.Stream{sandbox.Stdout, sandbox.Stderr}
	case "stdout":
		streams = []sandbox.Stream{sandbox.Stdout}
	case "stderr":
		streams = []sandbox.Stream{sandbox.Stderr}
	default:
		httpapi.WriteErr(w, httpapi.BadRequest("invalid stream %q: stdout, stderr or all", q.Get("stream")))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var readers []io.ReadCloser
	for _, s := range streams {
		rc, err := rt.Logs(ctx, name, sandbox.LogOptions{Stream: s, Follow: follow, Rotated: rotated})
		if err != nil {
			for _, x := range readers {
				x.Close()
			}
			httpapi.WriteErr(w, err)
			return
		}
		readers = append(readers, rc)
	}
	defer func() {
		for _, x := range readers {
			x.Close()
		}
	}()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	var wmu sync.Mutex // guards w: followed streams write whole lines, one at a time
	copyLines := func(rc io.Reader) {
		buf := make([]byte, 32<<10)
		var pending []byte
		for {
			k, err := rc.Read(buf)
			if k > 0 {
				pending = append(pending, buf[:k]...)
				if i := bytes.LastIndexByte(pending, '\n'); i >= 0 || !follow {
					cut := len(pending)
					if follow {
						cut = i + 1
					}
					wmu.Lock()
					_, werr := w.Write(pending[:cut])
					if fl != nil && follow {
						fl.Flush()
					}
					wmu.Unlock()
					pending = append(pending[:0], pending[cut:]...)
					if werr != nil {
						cancel()
						return
					}
				}
			}
			if err != nil {
				if len(pending) > 0 {
					wmu.Lock()
					w.Write(pending)
					wmu.Unlock()
				}
				return
			}
		}
	}
	if !follow {
		for _, rc := range readers {
			copyLines(rc)
		}
		return
	}
	var wg sync.WaitGroup
	for _, rc := range readers {
		wg.Add(1)
		go func(rc io.Reader) {
			defer wg.Done()
			copyLines(rc)
		}(rc)
	}
	wg.Wait()
}
