package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"crypto/sha256"
	"encoding/hex"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/sandbox"
)

// CreateRequest is the body of POST /v1/instances. Field names follow the seed plan.
type CreateRequest struct {
	Name string `json:"name"`
	// Node is the node to run on (name or peer ID); empty: the node that receives the request.
	Node string `json:"node,omitempty"`
	// Exactly one of Command and Script. Script is a file in Code, or, with ScriptContent,
	// the name of an uploaded script (the CLI's --script FILE sends the file's content).
	Command       []string          `json:"command,omitempty"`
	Script        string            `json:"script,omitempty"`
	ScriptContent string            `json:"script_content,omitempty"`
	Runtime       string            `json:"runtime,omitempty"`
	Args          []string          `json:"args,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Code          string            `json:"code,omitempty"` // a directory under the node's code roots
	CPUPercent    float64           `json:"cpu_percent,omitempty"`
	CPUCores      int               `json:"cpu_cores,omitempty"`
	RAMMB         int64             `json:"ram_mb,omitempty"`
	RAMGB         float64           `json:"ram_gb,omitempty"` // alternative to ram_mb
	DiskMB        int64             `json:"disk_mb,omitempty"`
	PIDs          int64             `json:"pids,omitempty"`
	// Restart is "never" (default), "on-failure", "on-failure:N" or "always".
	Restart string `json:"restart,omitempty"`
	UID     *int   `json:"uid,omitempty"`
	GID     *int   `json:"gid,omitempty"`
	Network string `json:"network,omitempty"` // host (default) or isolated
	// Start starts the instance right away (default true); false only creates it.
	Start *bool `json:"start,omitempty"`
	// Reservation runs the instance on the capacity of a reservation (`create --reservation
	// ID`): on the node holding it, with its resources unless given (sched_reserve.go).
	Reservation string `json:"reservation,omitempty"`
}

// LimitsRequest is the body of POST /v1/instances/{name}/set-limits and (optional) of
// .../restart: absent fields keep their current value, 0 removes a limit.
type LimitsRequest struct {
	CPUPercent *float64 `json:"cpu_percent,omitempty"`
	CPUCores   *int     `json:"cpu_cores,omitempty"`
	RAMMB      *int64   `json:"ram_mb,omitempty"`
	DiskMB     *int64   `json:"disk_mb,omitempty"`
	PIDs       *int64   `json:"pids,omitempty"`
	// GraceS is the stop grace period of a restart (default 10).
	GraceS *float64 `json:"grace_s,omitempty"`
}

// StopRequest is the optional body of .../stop and DELETE.
type StopRequest struct {
	GraceS *float64 `json:"grace_s,omitempty"` // SIGTERM, then SIGKILL after this (default 10)
}

// SnapshotRequest is the body of .../snapshot and .../restore.
type SnapshotRequest struct {
	Tag string `json:"tag"`
}

// WaitResult answers .../wait.
type WaitResult struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	ExitCode int    `json:"exit_code"`
	Reason   string `json:"reason"`
}

// InstanceStats answers GET /v1/instances/{name}/stats (`constellation stats NAME --json`).
type InstanceStats struct {
	Name     string         `json:"name"`
	Node     string         `json:"node"`
	Status   string         `json:"status"`
	CPU      float64        `json:"cpu"` // percent of one core since the previous stats call
	RAMMB    float64        `json:"ram_mb"`
	DiskMB   float64        `json:"disk_mb"`
	PIDs     int64          `json:"pids"`
	UptimeS  float64        `json:"uptime_s"`
	Restarts int            `json:"restarts"`
	Limits   sandbox.Limits `json:"limits"`
}

// SnapshotResult answers .../snapshot and .../restore.
type SnapshotResult struct {
	Name      string `json:"name"`
	Tag       string `json:"tag"`
	Node      string `json:"node"`
	Bytes     int64  `json:"bytes,omitempty"`
	Restarted bool   `json:"restarted,omitempty"` // restore stopped and started a running instance
}

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

// instanceError is an API error with its HTTP status and code.
type instanceError struct {
	status int
	code   string
	msg    string
}

func (e *instanceError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &instanceError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

// instanceErrorStatus maps errors of the instance operations to HTTP statuses and codes.
func instanceErrorStatus(err error) (int, string) {
	var ie *instanceError
	var fe *sandbox.FieldError
	switch {
	case errors.As(err, &ie):
		return ie.status, ie.code
	case errors.Is(err, ErrInsufficientResources):
		return http.StatusConflict, "insufficient_resources"
	case errors.Is(err, ErrInstanceExists), errors.Is(err, sandbox.ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, ErrInstanceNotFound), errors.Is(err, sandbox.ErrNotFound), errors.Is(err, ErrNodeNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, sandbox.ErrRunning), errors.Is(err, sandbox.ErrNotRunning):
		return http.StatusConflict, "conflict"
	case errors.Is(err, sandbox.ErrUnenforceable):
		return http.StatusUnprocessableEntity, "unenforceable"
	case errors.As(err, &fe), errors.Is(err, sandbox.ErrInvalidSpec):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, ErrInstancesUnavailable), errors.Is(err, sandbox.ErrUnsupported), errors.Is(err, sandbox.ErrClosed),
		errors.Is(err, ErrNodeUnavailable):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout"
	}
	return http.StatusInternalServerError, "internal"
}

func writeInstanceError(w http.ResponseWriter, err error) {
	st, code := instanceErrorStatus(err)
	msg := err.Error()
	var fe *sandbox.FieldError
	if errors.As(err, &fe) {
		msg = fmt.Sprintf("invalid %s: %s", orRoot(fe.Field), fe.Reason)
	}
	writeError(w, st, code, msg)
}

func orRoot(f string) string {
	if f == "" {
		return "request"
	}
	return "field " + strconv.Quote(f)
}

// decodeStrict decodes one JSON value with unknown fields rejected; an empty body leaves
// v as is when allowEmpty.
func decodeStrict(body []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %s", jsonErrorText(err))
	}
	if dec.More() {
		return badRequest("invalid JSON body: more than one JSON value")
	}
	return nil
}

var instanceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func validInstanceName(name string) error {
	if !instanceNameRE.MatchString(name) {
		return badRequest("invalid instance name %q: 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// toSpec turns a create request into a sandbox spec (the runtime validates the rest).
func (m *instanceManager) toSpec(req *CreateRequest) (sandbox.Spec, error) {
	spec := sandbox.Spec{
		Name: req.Name, Command: req.Command, Script: req.Script, Runtime: req.Runtime, Args: req.Args,
		Code: req.Code, UID: req.UID, GID: req.GID, Network: req.Network,
		Limits: sandbox.Limits{CPUPercent: req.CPUPercent, CPUCores: req.CPUCores, RAMMB: req.RAMMB,
			DiskMB: req.DiskMB, PIDs: req.PIDs},
	}
	if req.RAMGB != 0 {
		if req.RAMMB != 0 {
			return spec, badRequest(`give either "ram_mb" or "ram_gb", not both`)
		}
		if req.RAMGB < 0 || req.RAMGB > 1<<20 {
			return spec, badRequest(`invalid field "ram_gb": %v; a positive number of GiB, e.g. 8`, req.RAMGB)
		}
		spec.RAMMB = int64(req.RAMGB * 1024)
	}
	rp, err := ParseRestart(req.Restart)
	if err != nil {
		return spec, badRequest(`field "restart": %v`, err)
	}
	spec.Restart = rp
	if len(req.Command) == 0 && req.Script == "" {
		return spec, badRequest(`one of "command" (an argv array, e.g. ["sh","-c","echo hi"]) or "script" (a file, e.g. "app.rads") is required`)
	}
	if len(req.Command) > 0 && req.Script != "" {
		return spec, badRequest(`give either "command" or "script", not both`)
	}
	spec.Env = map[string]string{}
	for k, v := range req.Env {
		if strings.HasPrefix(k, "CONSTELLATION_") {
			return spec, badRequest(`field "env": %s is set by the node; CONSTELLATION_* names are reserved`, k)
		}
		spec.Env[k] = v
	}
	spec.Env["CONSTELLATION_INSTANCE"] = req.Name
	if m.api != nil {
		spec.Env["CONSTELLATION_API_TOKEN"] = m.api.token(req.Name)
	}
	return spec, nil
}

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", maxBodyBytes))
		return nil, false
	}
	return body, true
}

// registerInstanceRoutes adds the instance API to a mux (the local API's, and the one
// that serves forwarded requests).
func (m *instanceManager) registerRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/instances", m.handleCreate)
	route("GET /v1/instances", m.handleList)
	route("GET /v1/instances/{name}", m.handleOp("show"))
	route("DELETE /v1/instances/{name}", m.handleOp("rm"))
	route("GET /v1/instances/{name}/stats", m.handleOp("stats"))
	route("GET /v1/instances/{name}/logs", m.handleOp("logs"))
	for _, op := range []string{"start", "stop", "restart", "set-limits", "wait", "snapshot", "restore"} {
		route("POST /v1/instances/{name}/"+op, m.handleOp(op))
	}
	route("GET /v1/resources", m.handleResources)
}

func (m *instanceManager) handleList(w http.ResponseWriter, r *http.Request) {
	out := m.list()
	if nd := r.URL.Query().Get("node"); nd != "" {
		kept := out[:0]
		for _, x := range out {
			if x.Node == nd || x.NodeID == nd {
				kept = append(kept, x)
			}
		}
		out = kept
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *instanceManager) handleResources(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, m.resources())
}

// ctxKey marks requests that arrived over the forwarding protocol or from an instance.
type ctxKey int

const (
	ctxForwarded ctxKey = iota // value: true
	ctxInstance                // value: the calling instance's name
)

func isForwarded(r *http.Request) bool { v, _ := r.Context().Value(ctxForwarded).(bool); return v }
func callerInstance(r *http.Request) string {
	v, _ := r.Context().Value(ctxInstance).(string)
	return v
}

// resolveTarget finds where create should run: "" or this node's name/ID is local.
func (m *instanceManager) resolveTarget(nameOrID string) (peer.ID, string, bool, error) {
	self := m.n.host.ID()
	if nameOrID == "" || nameOrID == m.n.cfg.Node || nameOrID == self.String() {
		return self, m.n.cfg.Node, true, nil
	}
	id, name, err := m.n.resolveNode(nameOrID)
	if err != nil {
		return "", "", false, err
	}
	return id, name, id == self, nil
}

func (m *instanceManager) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req CreateRequest
	if err := decodeStrict(body, &req, false); err != nil {
		writeInstanceError(w, err)
		return
	}
	if err := validInstanceName(req.Name); err != nil {
		writeInstanceError(w, err)
		return
	}
	if caller := callerInstance(r); caller != "" && (req.UID != nil || req.GID != nil) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf(`instance %s may not set "uid" or "gid": instances create instances as the default unprivileged user`, caller))
		return
	}
	if rec, ok := m.record(req.Name); ok {
		writeInstanceError(w, fmt.Errorf("%w: instance %q already exists on node %s; pick another name or remove it with 'constellation rm %s'", ErrInstanceExists, req.Name, rec.Node, req.Name))
		return
	}
	if req.Reservation != "" {
		if err := m.n.sched.prepareReservedCreate(&req); err != nil {
			writeSchedError(w, err)
			return
		}
	}
	id, name, local, err := m.resolveTarget(req.Node)
	if err != nil {
		writeInstanceError(w, err)
		return
	}
	if !local {
		if isForwarded(r) {
			writeError(w, http.StatusMisdirectedRequest, "misdirected", fmt.Sprintf("node %s received a forwarded create for node %s", m.n.cfg.Node, name))
			return
		}
		m.forward(&statusRecorder{ResponseWriter: w, onStatus: func(st int) {
			if st == http.StatusCreated {
				m.setHint(req.Name, name, id)
			}
		}}, r, body, id, name)
		return
	}
	var rec InstanceRecord
	if req.Reservation != "" {
		rec, err = m.n.sched.createReserved(r.Context(), &req)
	} else {
		rec, err = m.create(r.Context(), &req)
	}
	if err != nil {
		writeSchedError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, rec)
}

// create runs a create request on this node: admission, sandbox create, optional start.
func (m *instanceManager) create(ctx context.Context, req *CreateRequest) (InstanceRecord, error) {
	spec, err := m.toSpec(req)
	if err != nil {
		return InstanceRecord{}, err
	}
	rt, err := m.runtime()
	if err != nil {
		return InstanceRecord{}, err
	}
	md := instanceMeta{ID: newInstanceID(), CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
		Script: req.Script, Env: req.Env, Code: req.Code}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := rt.Get(req.Name); err == nil {
		return InstanceRecord{}, fmt.Errorf("%w: instance %q already exists on node %s", ErrInstanceExists, req.Name, m.n.cfg.Node)
	}
	t0 := time.Now()
	if err := m.fits(rt, spec.Limits, ""); err != nil {
		return InstanceRecord{}, err
	}
	if req.ScriptContent != "" {
		if req.Code != "" {
			return InstanceRecord{}, badRequest(`give either "code" or "script_content", not both`)
		}
		dir, err := m.writeScript(req.Name, req.Script, req.ScriptContent)
		if err != nil {
			return InstanceRecord{}, err
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
		return InstanceRecord{}, fmt.Errorf("node: instance meta: %w", err)
	}
	tAdmit := time.Now()
	tCreate := tAdmit
	if _, err := rt.Create(spec); err != nil {
		m.mu.Lock()
		delete(m.meta, req.Name)
		m.mu.Unlock()
		cleanup()
		return InstanceRecord{}, err
	}
	tCreate = time.Now()
	if req.Start == nil || *req.Start {
		if _, err := rt.Start(req.Name); err != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = rt.Destroy(dctx, req.Name, false)
			cancel()
			cleanup()
			return InstanceRecord{}, fmt.Errorf("node: instance %q could not start (removed again): %w", req.Name, err)
		}
	}
	tStart := time.Now()
	m.syncRecord(req.Name)
	m.log.Debug("instance created", "instance", req.Name, "admit", tAdmit.Sub(t0), "create", tCreate.Sub(tAdmit),
		"start", tStart.Sub(tCreate), "record", time.Since(tStart))
	return m.localRecord(rt, req.Name)
}

// writeScript stores an uploaded script in its own code directory under <data-dir>/code.
func (m *instanceManager) writeScript(name, script, content string) (string, error) {
	base := filepath.Base(script)
	if script == "" || base == "." || base == "/" || strings.HasPrefix(base, ".") && len(base) <= 2 {
		return "", badRequest(`field "script" must name the uploaded file (e.g. "app.rads") when "script_content" is given`)
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
func (m *instanceManager) localRecord(rt instanceRuntime, name string) (InstanceRecord, error) {
	in, err := rt.Get(name)
	if err != nil {
		return InstanceRecord{}, err
	}
	m.mu.Lock()
	md := m.meta[name]
	m.mu.Unlock()
	rec := m.recordOf(in, md)
	rec.NodeStatus = StatusAlive
	rec.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	return rec, nil
}

// handleOp serves the operations on one named instance: locally when it runs here,
// otherwise forwarded to its node.
func (m *instanceManager) handleOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := validInstanceName(name); err != nil {
			writeInstanceError(w, err)
			return
		}
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		rt := m.local()
		if rt != nil {
			if _, err := rt.Get(name); err != nil {
				rt = nil
			}
		}
		if rt == nil {
			rec, ok := m.record(name)
			if h, hok := m.hint(name); !ok && hok && !isForwarded(r) {
				m.forward(w, r, body, h.nodeID, h.node) // created moments ago; record on its way
				return
			}
			switch {
			case !ok:
				writeInstanceError(w, fmt.Errorf("%w: no instance %q in the cluster as node %s knows it; 'constellation list' shows them", ErrInstanceNotFound, name, m.n.cfg.Node))
			case rec.NodeID == m.n.host.ID().String() || isForwarded(r):
				writeInstanceError(w, fmt.Errorf("%w: instance %q is not on node %s (its record names node %s)", ErrInstanceNotFound, name, m.n.cfg.Node, rec.Node))
			default:
				id, err := peer.Decode(rec.NodeID)
				if err != nil {
					writeInstanceError(w, fmt.Errorf("%w: instance %q names a bad node ID", ErrInstanceNotFound, name))
					return
				}
				if op == "show" {
					// Any node can answer from the replicated record when the owner is away.
					if st := m.nodeStatus(rec.NodeID); st != StatusAlive && st != StatusSuspect {
						rec.NodeStatus = st
						writeJSON(w, http.StatusOK, rec)
						return
					}
				}
				m.forward(w, r, body, id, rec.Node)
			}
			return
		}
		m.localOp(w, r, rt, op, name, body)
	}
}

func (m *instanceManager) nodeStatus(id string) string {
	for _, x := range m.n.Nodes() {
		if x.ID == id {
			return x.Status
		}
	}
	return "unknown"
}

func graceOf(g *float64) (time.Duration, error) {
	if g == nil {
		return 10 * time.Second, nil
	}
	if *g < 0 || *g > 3600 {
		return 0, badRequest(`invalid field "grace_s": %v; seconds between 0 and 3600`, *g)
	}
	return time.Duration(*g * float64(time.Second)), nil
}

func (m *instanceManager) localOp(w http.ResponseWriter, r *http.Request, rt instanceRuntime, op, name string, body []byte) {
	ctx := r.Context()
	fail := func(err error) { writeInstanceError(w, err) }
	switch op {
	case "show":
		rec, err := m.localRecord(rt, name)
		if err != nil {
			fail(err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	case "stats":
		st, err := rt.Stats(name)
		if err != nil {
			fail(err)
			return
		}
		in, _ := rt.Get(name)
		status, _, _ := statusOf(in)
		writeJSON(w, http.StatusOK, InstanceStats{Name: name, Node: m.n.cfg.Node, Status: status,
			CPU: round(st.CPUPercent, 2), RAMMB: round(st.RAMMB, 2), DiskMB: round(st.DiskMB, 2), PIDs: st.PIDs,
			UptimeS: round(st.Uptime.Seconds(), 3), Restarts: st.Restarts, Limits: st.Limits})
	case "logs":
		m.serveLogs(w, r, rt, name)
	case "start":
		if err := decodeStrict(body, &struct{}{}, true); err != nil {
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
		m.answer(w, rt, name, err)
	case "stop":
		var req StopRequest
		if err := decodeStrict(body, &req, true); err != nil {
			fail(err)
			return
		}
		grace, err := graceOf(req.GraceS)
		if err == nil {
			err = rt.Stop(ctx, name, grace)
		}
		m.answer(w, rt, name, err)
	case "restart", "set-limits":
		var req LimitsRequest
		if err := decodeStrict(body, &req, true); err != nil {
			fail(err)
			return
		}
		grace, err := graceOf(req.GraceS)
		if err != nil {
			fail(err)
			return
		}
		if op == "set-limits" && req.GraceS != nil {
			fail(badRequest(`field "grace_s" belongs to restart, not set-limits`))
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
				err = badRequest("set-limits needs at least one of cpu_percent, cpu_cores, ram_mb, disk_mb, pids")
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
		m.answer(w, rt, name, err)
	case "wait":
		if err := decodeStrict(body, &struct{}{}, true); err != nil {
			fail(err)
			return
		}
		if t := r.URL.Query().Get("timeout"); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil || d <= 0 {
				fail(badRequest("invalid timeout %q: a duration like 30s or 5m", t))
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
		writeJSON(w, http.StatusOK, WaitResult{Name: name, Status: st, ExitCode: ex.Code, Reason: string(ex.Reason)})
	case "snapshot":
		var req SnapshotRequest
		if err := decodeStrict(body, &req, false); err != nil {
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
		writeJSON(w, http.StatusOK, SnapshotResult{Name: name, Tag: snap.Name, Node: m.n.cfg.Node, Bytes: snap.Bytes})
	case "restore":
		var req SnapshotRequest
		if err := decodeStrict(body, &req, false); err != nil {
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
				err = fmt.Errorf("%w: instance %s has no snapshot %q on node %s (snapshots belong to their instance and stay on its node)", sandbox.ErrNotFound, name, req.Tag, m.n.cfg.Node)
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
		writeJSON(w, http.StatusOK, SnapshotResult{Name: name, Tag: req.Tag, Node: m.n.cfg.Node, Restarted: running})
	case "rm":
		var req StopRequest
		if err := decodeStrict(body, &req, true); err != nil {
			fail(err)
			return
		}
		if q := r.URL.Query().Get("grace_s"); q != "" && req.GraceS == nil {
			g, err := strconv.ParseFloat(q, 64)
			if err != nil {
				fail(badRequest("invalid grace_s %q: seconds, e.g. 0 or 2.5", q))
				return
			}
			req.GraceS = &g
		}
		grace, err := graceOf(req.GraceS)
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
		writeJSON(w, http.StatusOK, map[string]string{"name": name, "node": m.n.cfg.Node, "status": "removed"})
	default:
		writeError(w, http.StatusNotFound, "not_found", "unknown instance operation "+op)
	}
}

func validTag(tag string) error {
	if !instanceNameRE.MatchString(tag) {
		return badRequest(`invalid field "tag" %q: 1-63 letters, digits, '_', '.' or '-', e.g. "before-upgrade"`, tag)
	}
	return nil
}

// answer writes an operation's result: the instance's record, or the error.
func (m *instanceManager) answer(w http.ResponseWriter, rt instanceRuntime, name string, err error) {
	if err != nil {
		writeInstanceError(w, err)
		return
	}
	m.syncRecord(name)
	rec, err := m.localRecord(rt, name)
	if err != nil {
		writeInstanceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// serveLogs streams an instance's output as text/plain. Query: follow=1, stream=stdout|
// stderr|all (default all: stdout then stderr, interleaved by line when following),
// rotated=1 (include rotated files).
func (m *instanceManager) serveLogs(w http.ResponseWriter, r *http.Request, rt instanceRuntime, name string) {
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
		writeInstanceError(w, badRequest("invalid stream %q: stdout, stderr or all", q.Get("stream")))
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
			writeInstanceError(w, err)
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
