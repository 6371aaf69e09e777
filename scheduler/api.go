package scheduler

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sched"
)

// registerRoutes adds the scheduling API to the local API.
func (s *Scheduler) registerRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/deployments", s.handleDeploy)
	route("GET /v1/deployments", s.handleDeployments)
	route("GET /v1/deployments/{name}", s.handleDeployment)
	route("POST /v1/deployments/{name}/scale", s.handleScale)
	route("DELETE /v1/deployments/{name}", s.handleUndeploy)
	route("POST /v1/nodes/{node}/drain", s.handleNodeDrain)
	route("POST /v1/drain", s.handleDrain) // the older form: the node in the body
	route("POST /v1/reservations", s.handleReserve)
	route("GET /v1/reservations", s.handleReservations)
	route("DELETE /v1/reservations/{id}", s.handleRelease)
	route("PUT /v1/quotas/{ns}", s.handleQuotaSet)
	route("PATCH /v1/quotas/{ns}", s.handleQuotaPatch)
	route("DELETE /v1/quotas/{ns}", s.handleQuotaDelete)
	route("GET /v1/quotas/{ns}", s.handleQuotaGet)
	route("GET /v1/quotas", s.handleQuotas)
}

// The collections each list's answer derives from: a blocking read (?index=N) waits for a
// change in them (httpapi.Block).
var (
	deploymentColls  = []string{CollDeployments, CollClaims, CollRejections, CollDeployStatus, instances.Coll, membership.Coll}
	reservationColls = []string{CollReservations}
	quotaColls       = []string{CollQuotas, CollQuotaRights, CollClaims}
)

func init() {
	httpapi.Classify(http.StatusNotFound, "not_found", ErrDeploymentNotFound, ErrReservationNotFound)
	httpapi.Classify(http.StatusConflict, "quota", ErrQuotaExceeded, sched.ErrQuota)
}

// SecretChecker is what the scheduler needs of the secrets store: that a deployment's
// secrets exist in its namespace (package security).
type SecretChecker interface {
	CheckSecrets(ns string, names []string) error
	// CheckNamespace refuses a deleted namespace.
	CheckNamespace(ns string) error
}

// SetSecrets connects the secrets store (before Start).
func (s *Scheduler) SetSecrets(c SecretChecker) { s.secrets = c }

// Deploy creates or updates a deployment (POST /v1/deployments).
func (s *Scheduler) Deploy(spec api.DeploymentSpec) (DeploymentRecord, bool, error) {
	if err := normalizeSpec(&spec); err != nil {
		return DeploymentRecord{}, false, err
	}
	if err := s.feasible(specOf(spec)); err != nil {
		return DeploymentRecord{}, false, err
	}
	if len(spec.MountFS) > 0 {
		mfs, err := instances.CheckMountFS(spec.MountFS)
		if err != nil {
			return DeploymentRecord{}, false, httpapi.BadRequest(`field "mount_fs": %v`, err)
		}
		spec.MountFS = mfs
	}
	if s.secrets != nil {
		if err := s.secrets.CheckNamespace(spec.Namespace); err != nil {
			return DeploymentRecord{}, false, err
		}
	}
	if len(spec.Secrets) > 0 {
		if s.secrets == nil {
			return DeploymentRecord{}, false, httpapi.BadRequest(`field "secrets": this node has no secrets store`)
		}
		if err := s.secrets.CheckSecrets(spec.Namespace, spec.Secrets); err != nil {
			return DeploymentRecord{}, false, err
		}
	}
	now := s.now()
	rec := DeploymentRecord{Spec: specOf(spec), Generation: now.UnixNano(), CreatedAt: now.UnixMilli(),
		UpdatedAt: now.UnixMilli(), UpdatedBy: s.cfg.Name}
	if _, err := state.Encode(rec); err != nil {
		return DeploymentRecord{}, false, httpapi.BadRequest("deployment %q is too large to replicate (%v): put the program under a code root and use \"code\" instead of \"script_content\"", spec.Name, err)
	}
	created := true
	if old, ok := s.deployment(spec.Name); ok && !old.Deleted {
		rec.CreatedAt, created = old.CreatedAt, false
	}
	var w schedWrites
	w.put(CollDeployments, spec.Name, rec)
	s.apply(&w)
	return rec, created, nil
}

func (s *Scheduler) deployment(name string) (DeploymentRecord, bool) {
	v, ok := s.get(CollDeployments, name)
	if !ok {
		return DeploymentRecord{}, false
	}
	d, err := decodeRecord[DeploymentRecord](v)
	return d, err == nil
}

func (s *Scheduler) handleDeploy(w http.ResponseWriter, r *http.Request) {
	dry, err := flagParam(r, "dry_run")
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	var spec api.DeploymentSpec
	if !httpapi.DecodeOptional(w, r, &spec, false) {
		return
	}
	if dry {
		plan, err := s.Plan(spec)
		if err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, plan)
		return
	}
	rec, created, err := s.Deploy(spec)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	st := s.snapshot()
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	httpapi.WriteJSON(w, code, s.status(st, rec))
}

// status summarises a deployment from a snapshot.
func (s *Scheduler) status(st *schedState, d DeploymentRecord) api.DeploymentStatus {
	out := api.DeploymentStatus{Name: d.Name, Namespace: d.Namespace, Instances: d.Instances, Strategy: d.Strategy,
		Priority: d.Priority, CPUPercent: d.CPUPercent, CPUCores: d.CPUCores, RAMMB: d.RAMMB, DiskMB: d.DiskMB,
		Constraints: orEmpty(d.Constraints), Affinity: orEmpty(d.Affinity), AntiAffinity: orEmpty(d.AntiAffinity),
		Owner: sched.Owner(d.Name, st.members), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		InstanceList: []api.DeploymentInstance{}}
	if m, ok := st.msgs[d.Name]; ok {
		out.Message = m.Message
	}
	for _, c := range st.claims {
		if c.Deployment != d.Name {
			continue
		}
		state, _ := s.claimState(st, c)
		di := api.DeploymentInstance{Name: c.Instance, Slot: c.Slot, Node: c.Node, Status: state, Replaces: c.Replaces}
		if rec, ok := st.insts[c.Instance]; ok && rec.NodeID == c.NodeID {
			di.Status = rec.Status
		}
		if _, ok := st.claims[c.Replaces]; ok && c.Replaces != "" && healthy(state) {
			out.Moves++
		}
		if healthy(state) {
			out.Placed++
			if state == claimRunning {
				out.Running++
			} else {
				out.Pending++
			}
		}
		out.InstanceList = append(out.InstanceList, di)
	}
	sort.Slice(out.InstanceList, func(i, j int) bool {
		a, b := out.InstanceList[i], out.InstanceList[j]
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.Name < b.Name
	})
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Deployments lists every deployment with its status.
func (s *Scheduler) Deployments() []api.DeploymentStatus {
	st := s.snapshot()
	out := []api.DeploymentStatus{}
	for _, name := range sortedKeys(st.deps) {
		if d := st.deps[name]; !d.Deleted {
			out = append(out, s.status(st, d))
		}
	}
	return out
}

// flagParam reads a boolean query parameter: absent, 0 or false is false; 1 or true is true.
func flagParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, httpapi.BadRequest("invalid %s %q: 1 or true (0 or false: off)", name, v)
	}
}

func (s *Scheduler) handleDeployments(w http.ResponseWriter, r *http.Request) {
	if !httpapi.Block(w, r, s.st, deploymentColls...) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.Deployments())
}

func (s *Scheduler) liveDeployment(name string) (DeploymentRecord, error) {
	d, ok := s.deployment(name)
	if !ok || d.Deleted {
		return d, fmt.Errorf("%w: %q; 'constellation deployments' lists them", ErrDeploymentNotFound, name)
	}
	return d, nil
}

func (s *Scheduler) handleDeployment(w http.ResponseWriter, r *http.Request) {
	if !httpapi.Block(w, r, s.st, deploymentColls...) {
		return
	}
	d, err := s.liveDeployment(r.PathValue("name"))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.status(s.snapshot(), d))
}

// Scale sets a deployment's instance count.
func (s *Scheduler) Scale(name string, instances int) (DeploymentRecord, error) {
	d, err := s.liveDeployment(name)
	if err != nil {
		return d, err
	}
	if instances < 0 || instances > maxDeployInstances {
		return d, httpapi.BadRequest(`invalid field "instances": %d; 0 to %d`, instances, maxDeployInstances)
	}
	now := s.now()
	d.Instances, d.Generation, d.UpdatedAt, d.UpdatedBy = instances, now.UnixNano(), now.UnixMilli(), s.cfg.Name
	var w schedWrites
	w.put(CollDeployments, name, d)
	s.apply(&w)
	return d, nil
}

func (s *Scheduler) handleScale(w http.ResponseWriter, r *http.Request) {
	var req api.ScaleRequest
	if !httpapi.DecodeOptional(w, r, &req, false) {
		return
	}
	if req.Instances == nil {
		httpapi.WriteErr(w, httpapi.BadRequest(`field "instances" is required, e.g. {"instances": 5}`))
		return
	}
	d, err := s.Scale(r.PathValue("name"), *req.Instances)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.status(s.snapshot(), d))
}

// Undeploy removes a deployment: its owner withdraws every claim and the nodes stop the
// instances.
func (s *Scheduler) Undeploy(name string) error {
	d, err := s.liveDeployment(name)
	if err != nil {
		return err
	}
	now := s.now()
	d.Deleted, d.Instances, d.Generation, d.UpdatedAt, d.UpdatedBy = true, 0, now.UnixNano(), now.UnixMilli(), s.cfg.Name
	d.ScriptContent = ""
	var w schedWrites
	w.put(CollDeployments, name, d)
	s.apply(&w)
	return nil
}

func (s *Scheduler) handleUndeploy(w http.ResponseWriter, r *http.Request) {
	if err := httpapi.NoBody(r, "DELETE /v1/deployments/{name} has no options"); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	name := r.PathValue("name")
	if err := s.Undeploy(name); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"name": name, "status": "undeployed"})
}

// Drain marks a node draining (or not): its deployment instances move elsewhere,
// make-before-break.
func (s *Scheduler) Drain(req api.DrainRequest) (api.DrainResult, error) {
	if req.Node == "" {
		return api.DrainResult{}, httpapi.BadRequest(`field "node" is required: a node name or peer ID from 'constellation nodes'`)
	}
	st := s.snapshot()
	id := ""
	if _, ok := st.nameOf[req.Node]; ok {
		id = req.Node
	} else if x, ok := st.idOf[req.Node]; ok {
		id = x
	}
	if id == "" {
		return api.DrainResult{}, fmt.Errorf("%w: %q is neither a node name nor a peer ID in 'constellation nodes'", membership.ErrNodeNotFound, req.Node)
	}
	res := api.DrainResult{Node: st.nameOf[id], Draining: !req.Cancel}
	for _, c := range st.claims {
		if c.NodeID == id {
			res.ToMove++
		}
	}
	for name, r := range st.insts {
		if _, ok := st.claims[name]; !ok && r.NodeID == id {
			res.Unmanaged++
		}
	}
	var w schedWrites
	w.put(CollDrains, id, DrainRecord{Node: res.Node, Draining: !req.Cancel, By: st.self, At: st.now.UnixMilli()})
	s.apply(&w)
	if req.Cancel {
		res.ToMove = 0
	}
	return res, nil
}

func (s *Scheduler) handleDrain(w http.ResponseWriter, r *http.Request) {
	var req api.DrainRequest
	if !httpapi.DecodeOptional(w, r, &req, false) {
		return
	}
	s.answerDrain(w, req)
}

// handleNodeDrain is POST /v1/nodes/{node}/drain with an optional {"cancel": true}.
func (s *Scheduler) handleNodeDrain(w http.ResponseWriter, r *http.Request) {
	var req api.NodeDrainRequest
	if !httpapi.DecodeOptional(w, r, &req, true) {
		return
	}
	s.answerDrain(w, api.DrainRequest{Node: r.PathValue("node"), Cancel: req.Cancel})
}

func (s *Scheduler) answerDrain(w http.ResponseWriter, req api.DrainRequest) {
	res, err := s.Drain(req)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (s *Scheduler) handleReserve(w http.ResponseWriter, r *http.Request) {
	var req api.ReservationRequest
	if !httpapi.DecodeOptional(w, r, &req, false) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	rec, err := s.reserve(ctx, req)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, api.Reservation(rec))
}

// Reservations lists the live reservations.
func (s *Scheduler) Reservations() []api.Reservation {
	st := s.snapshot()
	out := []api.Reservation{}
	for _, id := range sortedKeys(st.resv) {
		if r := st.resv[id]; r.live(st.now) {
			out = append(out, api.Reservation(r.withStatus(st.now)))
		}
	}
	return out
}

func (s *Scheduler) handleReservations(w http.ResponseWriter, r *http.Request) {
	if !httpapi.Block(w, r, s.st, reservationColls...) {
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.Reservations())
}

// Release frees a reservation (any node may release any reservation).
func (s *Scheduler) Release(id string) error {
	r, ok := s.reservation(id)
	if !ok || !r.live(s.now()) {
		return fmt.Errorf("%w: %q", ErrReservationNotFound, id)
	}
	var w schedWrites
	w.del(CollReservations, id)
	s.apply(&w)
	return nil
}

func (s *Scheduler) handleRelease(w http.ResponseWriter, r *http.Request) {
	if err := httpapi.NoBody(r, "DELETE /v1/reservations/{id} has no options"); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	id := r.PathValue("id")
	if err := s.Release(id); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"id": id, "status": "released"})
}

func (s *Scheduler) handleQuotaSet(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if !api.ValidNamespace(ns) {
		httpapi.WriteErr(w, httpapi.BadRequest("invalid namespace %q: %s", ns, api.NamespaceRule))
		return
	}
	var spec api.QuotaSpec
	if !httpapi.DecodeOptional(w, r, &spec, false) {
		return
	}
	s.writeQuota(w, ns, spec)
}

// writeQuota validates and sets a quota, and answers its info.
func (s *Scheduler) writeQuota(w http.ResponseWriter, ns string, spec api.QuotaSpec) {
	if err := validateQuota(&spec); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if _, err := s.setQuota(ns, spec); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	info, _ := s.quotaInfo(s.snapshot(), ns)
	httpapi.WriteJSON(w, http.StatusOK, info)
}

// handleQuotaPatch changes only the fields the body gives (`quota set` with some flags):
// the others keep their values.
func (s *Scheduler) handleQuotaPatch(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if !api.ValidNamespace(ns) {
		httpapi.WriteErr(w, httpapi.BadRequest("invalid namespace %q: %s", ns, api.NamespaceRule))
		return
	}
	var p api.QuotaPatch
	if !httpapi.DecodeOptional(w, r, &p, false) {
		return
	}
	spec := api.QuotaSpec{}
	if q, ok := s.snapshot().quotas[ns]; ok {
		spec = q.spec()
	}
	p.Apply(&spec)
	s.writeQuota(w, ns, spec)
}

// handleQuotaDelete removes a namespace's quota (`quota rm`): its deployments are no longer
// limited. Rights already consumed stay consumed until their instances go.
func (s *Scheduler) handleQuotaDelete(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if _, ok := s.snapshot().quotas[ns]; !ok {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no quota for namespace %q ('constellation quota show' lists them)", ns))
		return
	}
	var wr schedWrites
	wr.del(CollQuotas, ns)
	s.apply(&wr)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"namespace": ns, "status": "removed"})
}

func (s *Scheduler) handleQuotaGet(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	info, ok := s.quotaInfo(s.snapshot(), ns)
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no quota for namespace %q; set one with 'constellation quota set %s --max-cpu-cores N ...'", ns, ns))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, info)
}

func (s *Scheduler) handleQuotas(w http.ResponseWriter, r *http.Request) {
	if !httpapi.Block(w, r, s.st, quotaColls...) {
		return
	}
	st := s.snapshot()
	out := []api.QuotaInfo{}
	for _, ns := range sortedKeys(st.quotas) {
		if info, ok := s.quotaInfo(st, ns); ok {
			out = append(out, info)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// DeploymentStatus is the status of a live deployment as this node sees it.
func (s *Scheduler) DeploymentStatus(name string) (api.DeploymentStatus, error) {
	d, err := s.liveDeployment(name)
	if err != nil {
		return api.DeploymentStatus{}, err
	}
	return s.status(s.snapshot(), d), nil
}

// RemoveQuota removes a namespace's quota (a deleted namespace); false when it had none.
func (s *Scheduler) RemoveQuota(ns string) bool {
	if _, ok := s.snapshot().quotas[ns]; !ok {
		return false
	}
	var wr schedWrites
	wr.del(CollQuotas, ns)
	s.apply(&wr)
	return true
}

// SetQuota sets a namespace's quota (PUT /v1/quotas/{ns}).
func (s *Scheduler) SetQuota(ns string, spec api.QuotaSpec) (api.QuotaInfo, error) {
	if _, err := s.setQuota(ns, spec); err != nil {
		return api.QuotaInfo{}, err
	}
	info, _ := s.quotaInfo(s.snapshot(), ns)
	return info, nil
}

// Quota reports a namespace's quota, usage and rights (ok false: no quota).
func (s *Scheduler) Quota(ns string) (api.QuotaInfo, bool) { return s.quotaInfo(s.snapshot(), ns) }

// Reserve places and holds a reservation (POST /v1/reservations).
func (s *Scheduler) Reserve(ctx context.Context, req api.ReservationRequest) (api.Reservation, error) {
	r, err := s.reserve(ctx, req)
	return api.Reservation(r), err
}

// Claims lists the claims this node knows (instance name -> node name, burst flag).
func (s *Scheduler) Claims() []ClaimRecord {
	st := s.snapshot()
	out := make([]ClaimRecord, 0, len(st.claims))
	for _, c := range st.claims {
		out = append(out, c)
	}
	return out
}

// SetLeftGrace sets how long a node that left gracefully keeps its deployment instances
// before they are placed again (default 30 s).
func (s *Scheduler) SetLeftGrace(d time.Duration) {
	s.passMu.Lock()
	s.leftGrace = d
	s.passMu.Unlock()
}

// SetBackoff sets the restart backoff of failed deployment instances.
func (s *Scheduler) SetBackoff(b sched.Backoff) {
	s.passMu.Lock()
	s.backoff = b
	s.passMu.Unlock()
}

// feasible refuses a deployment no known node could ever run: an instance larger than every
// node's capacity, or constraints no node's labels satisfy. Nodes that have not reported
// their resources yet are not held against it; a cluster with none accepts everything.
func (s *Scheduler) feasible(spec Spec) error {
	st := s.snapshot()
	cons, err := sched.ParseConstraints(spec.Constraints)
	if err != nil {
		return httpapi.BadRequest(`invalid field "constraints": %v`, err)
	}
	need := specResources(&spec)
	type cand struct {
		name string
		res  instances.ResourceRecord
	}
	var cands []cand
	for _, id := range sortedKeys(st.res) {
		r := st.res[id]
		if !r.Available || st.status[id] == api.StatusLeft {
			continue
		}
		n := &sched.Node{ID: st.nameOf[id], Labels: st.labels[id]}
		ok := true
		for _, c := range cons {
			ok = ok && c.Match(n)
		}
		if ok {
			cands = append(cands, cand{st.nameOf[id], r})
		}
	}
	if len(st.res) == 0 {
		return nil
	}
	if len(cands) == 0 {
		return httpapi.Errorf(http.StatusUnprocessableEntity, "unsatisfiable", "no node can run %s: no node that can run instances matches the constraints %v ('constellation nodes' shows the labels)", spec.Name, spec.Constraints)
	}
	var best cand
	for _, c := range cands {
		cpu := c.res.CPUCapacity * 10 // millicores
		if float64(need.CPUMilli) <= cpu && need.RAMMB <= c.res.RAMCapacityMB && need.DiskMB <= c.res.DiskCapacityMB {
			return nil
		}
		if c.res.RAMCapacityMB > best.res.RAMCapacityMB {
			best = c
		}
	}
	return httpapi.Errorf(http.StatusUnprocessableEntity, "unsatisfiable",
		"no node can run %s: each instance asks cpu %s%%, ram_mb %d, disk_mb %d; the largest node (%s) has cpu %s%%, ram_mb %d, disk_mb %d after its reserve",
		spec.Name, fmtNum(float64(need.CPUMilli)/10), need.RAMMB, need.DiskMB, best.name, fmtNum(best.res.CPUCapacity), best.res.RAMCapacityMB, best.res.DiskCapacityMB)
}

// Draining reports the nodes (by peer ID) that are draining.
func (s *Scheduler) Draining() map[string]bool {
	out := map[string]bool{}
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollDrains) {
			if b, _, ok := v.GetLWW(CollDrains, k); ok {
				if r, err := decodeRecord[DrainRecord](b); err == nil && r.Draining {
					out[k] = true
				}
			}
		}
	})
	return out
}
