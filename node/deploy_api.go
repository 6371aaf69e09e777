package node

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/sched"
)

// registerRoutes adds the scheduling API to the local API.
func (s *scheduler) registerRoutes(route func(string, http.HandlerFunc)) {
	route("POST /v1/deployments", s.handleDeploy)
	route("GET /v1/deployments", s.handleDeployments)
	route("GET /v1/deployments/{name}", s.handleDeployment)
	route("POST /v1/deployments/{name}/scale", s.handleScale)
	route("DELETE /v1/deployments/{name}", s.handleUndeploy)
	route("POST /v1/drain", s.handleDrain)
	route("POST /v1/reservations", s.handleReserve)
	route("GET /v1/reservations", s.handleReservations)
	route("DELETE /v1/reservations/{id}", s.handleRelease)
	route("PUT /v1/quotas/{ns}", s.handleQuotaSet)
	route("GET /v1/quotas/{ns}", s.handleQuotaGet)
	route("GET /v1/quotas", s.handleQuotas)
}

func init() {
	httpapi.Classify(http.StatusNotFound, "not_found", ErrDeploymentNotFound, ErrReservationNotFound)
	httpapi.Classify(http.StatusConflict, "quota", ErrQuotaExceeded, sched.ErrQuota)
}

// Deploy creates or updates a deployment (POST /v1/deployments).
func (s *scheduler) Deploy(spec api.DeploymentSpec) (DeploymentRecord, bool, error) {
	if err := normalizeSpec(&spec); err != nil {
		return DeploymentRecord{}, false, err
	}
	now := s.now()
	rec := DeploymentRecord{DeploymentSpec: spec, Generation: now.UnixNano(), CreatedAt: now.UnixMilli(),
		UpdatedAt: now.UnixMilli(), UpdatedBy: s.n.cfg.Node}
	created := true
	if old, ok := s.deployment(spec.Name); ok && !old.Deleted {
		rec.CreatedAt, created = old.CreatedAt, false
	}
	var w schedWrites
	w.put(CollDeployments, spec.Name, rec)
	s.apply(&w)
	return rec, created, nil
}

func (s *scheduler) deployment(name string) (DeploymentRecord, bool) {
	v, ok := s.n.GetState(CollDeployments, name)
	if !ok {
		return DeploymentRecord{}, false
	}
	d, err := decodeJSONLimited[DeploymentRecord](v)
	return d, err == nil
}

func (s *scheduler) handleDeploy(w http.ResponseWriter, r *http.Request) {
	var spec api.DeploymentSpec
	if !httpapi.DecodeOptional(w, r, &spec, false) {
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
func (s *scheduler) status(st *schedState, d DeploymentRecord) api.DeploymentStatus {
	out := api.DeploymentStatus{Name: d.Name, Namespace: d.Namespace, Instances: d.Instances, Strategy: d.Strategy,
		Priority: specPriority(&d.DeploymentSpec), CPUPercent: d.CPUPercent, CPUCores: d.CPUCores, RAMMB: d.RAMMB, DiskMB: d.DiskMB,
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
func (s *scheduler) Deployments() []api.DeploymentStatus {
	st := s.snapshot()
	out := []api.DeploymentStatus{}
	for _, name := range sortedKeys(st.deps) {
		if d := st.deps[name]; !d.Deleted {
			out = append(out, s.status(st, d))
		}
	}
	return out
}

func (s *scheduler) handleDeployments(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.Deployments())
}

func (s *scheduler) liveDeployment(name string) (DeploymentRecord, error) {
	d, ok := s.deployment(name)
	if !ok || d.Deleted {
		return d, fmt.Errorf("%w: %q; 'constellation deployments' lists them", ErrDeploymentNotFound, name)
	}
	return d, nil
}

func (s *scheduler) handleDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := s.liveDeployment(r.PathValue("name"))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.status(s.snapshot(), d))
}

// Scale sets a deployment's instance count.
func (s *scheduler) Scale(name string, instances int) (DeploymentRecord, error) {
	d, err := s.liveDeployment(name)
	if err != nil {
		return d, err
	}
	if instances < 0 || instances > maxDeployInstances {
		return d, httpapi.BadRequest(`invalid field "instances": %d; 0 to %d`, instances, maxDeployInstances)
	}
	now := s.now()
	d.Instances, d.Generation, d.UpdatedAt, d.UpdatedBy = instances, now.UnixNano(), now.UnixMilli(), s.n.cfg.Node
	var w schedWrites
	w.put(CollDeployments, name, d)
	s.apply(&w)
	return d, nil
}

func (s *scheduler) handleScale(w http.ResponseWriter, r *http.Request) {
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
func (s *scheduler) Undeploy(name string) error {
	d, err := s.liveDeployment(name)
	if err != nil {
		return err
	}
	now := s.now()
	d.Deleted, d.Instances, d.Generation, d.UpdatedAt, d.UpdatedBy = true, 0, now.UnixNano(), now.UnixMilli(), s.n.cfg.Node
	d.ScriptContent = ""
	var w schedWrites
	w.put(CollDeployments, name, d)
	s.apply(&w)
	return nil
}

func (s *scheduler) handleUndeploy(w http.ResponseWriter, r *http.Request) {
	if !httpapi.DecodeOptional(w, r, &struct{}{}, true) {
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
func (s *scheduler) Drain(req api.DrainRequest) (api.DrainResult, error) {
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
		return api.DrainResult{}, fmt.Errorf("%w: %q is neither a node name nor a peer ID in 'constellation nodes'", ErrNodeNotFound, req.Node)
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

func (s *scheduler) handleDrain(w http.ResponseWriter, r *http.Request) {
	var req api.DrainRequest
	if !httpapi.DecodeOptional(w, r, &req, false) {
		return
	}
	res, err := s.Drain(req)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (s *scheduler) handleReserve(w http.ResponseWriter, r *http.Request) {
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
	httpapi.WriteJSON(w, http.StatusCreated, rec)
}

// Reservations lists the live reservations.
func (s *scheduler) Reservations() []ReservationRecord {
	st := s.snapshot()
	out := []ReservationRecord{}
	for _, id := range sortedKeys(st.resv) {
		if r := st.resv[id]; r.live(st.now) {
			out = append(out, r.withStatus(st.now))
		}
	}
	return out
}

func (s *scheduler) handleReservations(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.Reservations())
}

// Release frees a reservation (any node may release any reservation).
func (s *scheduler) Release(id string) error {
	r, ok := s.reservation(id)
	if !ok || !r.live(s.now()) {
		return fmt.Errorf("%w: %q", ErrReservationNotFound, id)
	}
	var w schedWrites
	w.del(CollReservations, id)
	s.apply(&w)
	return nil
}

func (s *scheduler) handleRelease(w http.ResponseWriter, r *http.Request) {
	if !httpapi.DecodeOptional(w, r, &struct{}{}, true) {
		return
	}
	id := r.PathValue("id")
	if err := s.Release(id); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"id": id, "status": "released"})
}

func (s *scheduler) handleQuotaSet(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if !namespaceRE.MatchString(ns) {
		httpapi.WriteErr(w, httpapi.BadRequest("invalid namespace %q: 1-63 lowercase letters, digits or '-'", ns))
		return
	}
	var spec api.QuotaSpec
	if !httpapi.DecodeOptional(w, r, &spec, false) {
		return
	}
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

func (s *scheduler) handleQuotaGet(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	info, ok := s.quotaInfo(s.snapshot(), ns)
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no quota for namespace %q; set one with 'constellation quota set %s --max-cpu-cores N ...'", ns, ns))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, info)
}

func (s *scheduler) handleQuotas(w http.ResponseWriter, r *http.Request) {
	st := s.snapshot()
	out := []api.QuotaInfo{}
	for _, ns := range sortedKeys(st.quotas) {
		if info, ok := s.quotaInfo(st, ns); ok {
			out = append(out, info)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}
