package scheduler

import (
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sandbox"
	"github.com/rads-lang/constellation/sched"
)

// TestDecide runs the transcripts in testdata/decide: the scheduler's pure decisions on a
// cluster described line by line, without libp2p, nodes or clocks (the style of
// etcd-io/raft's interaction tests). Rewrite the expected output after a deliberate change
// with `go test ./scheduler -run TestDecide -rewrite`.
//
// Commands (arguments are key=value; lists are comma-separated):
//
//	node NAME [status=alive|suspect|dead|left] [left-at=MS (left: when; dead: last seen)] [cpu=CORES] [ram=MB] [disk=MB] [labels=k:v;k:v] [unavailable]
//	deploy NAME instances=N [cpu=PCT] [ram=MB] [strategy=S] [namespace=NS] [constraints=C;C] [deleted]
//	claim INSTANCE dep=D slot=I node=N [id=ID] [at=MS] [replaces=X] [avoid=A,B]
//	instance NAME node=N status=S
//	reject INSTANCE node=N claim=ID code=C [at=MS]
//	drain NODE
//	managed INSTANCE claim=ID [failures=F] [next=MS]      (this node's deployment instances)
//	local INSTANCE state=running|exited [started=MS] [exit=REASON:CODE] [cmd=ARG,ARG] (default cmd: true)
//	owner now=MS [self=NODE] [apply] -> every live node's owner pass (or only self's), by node
//	                                    (apply: write them into the state, as replication would)
//	agent self=NODE now=MS [apply]   -> this node's actions and writes
//	split | switch | heal   a partition: split copies the state to a second side, switch
//	                        goes to the other side, heal merges the sides' writes
//	reset
func TestDecide(t *testing.T) {
	datadriven.Walk(t, "testdata/decide", func(t *testing.T, path string) {
		h := newHarness()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := h.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type harness struct {
	nodes    map[string]harnessNode // by name
	deps     map[string]DeploymentRecord
	claims   map[string]ClaimRecord
	insts    map[string]instances.Record
	rejs     map[string]RejectionRecord
	drains   map[string]bool
	msgs     map[string]DeployStatusRecord
	managed  map[string]managedInstance
	local    map[string]sandbox.Info
	ids      int
	backoffs *mrand.Rand
	// other is the other side of a partition (split/switch/heal); base is the claims at the
	// split, to tell a deletion on one side from an addition on the other.
	other *harness
	base  map[string]ClaimRecord
}

type harnessNode struct {
	status         string
	leftAt         int64
	cpu, ram, disk int64
	labels         map[string]string
	unavailable    bool
}

func newHarness() *harness {
	return &harness{nodes: map[string]harnessNode{}, deps: map[string]DeploymentRecord{}, claims: map[string]ClaimRecord{},
		insts: map[string]instances.Record{}, rejs: map[string]RejectionRecord{}, drains: map[string]bool{},
		msgs: map[string]DeployStatusRecord{}, managed: map[string]managedInstance{}, local: map[string]sandbox.Info{},
		backoffs: mrand.New(mrand.NewPCG(1, 2))}
}

func id(name string) string { return "id-" + name }

func (h *harness) decider() *decider {
	return &decider{
		claimTimeout: 30 * time.Second,
		backoff:      sched.Backoff{Base: time.Second, Max: time.Minute, AvoidAfter: 3},
		newClaimID: func(now time.Time) string {
			h.ids++
			return fmt.Sprintf("c%d", h.ids)
		},
		rng:  h.backoffs,
		note: func(string, ...any) {},
	}
}

// args reads key=value arguments (a bare word is key=true) after the first positional one.
func args(d *datadriven.TestData) (string, map[string]string) {
	pos := ""
	kv := map[string]string{}
	for i, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			if i == 0 {
				pos = a.Key
			} else {
				kv[a.Key] = "true"
			}
			continue
		}
		kv[a.Key] = strings.Join(a.Vals, ",")
	}
	return pos, kv
}

func num(kv map[string]string, k string, def int64) int64 {
	if v, ok := kv[k]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			panic(fmt.Sprintf("%s=%q: not a number", k, v))
		}
		return n
	}
	return def
}

func list(kv map[string]string, k string) []string {
	if v := kv[k]; v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func (h *harness) run(d *datadriven.TestData) (string, error) {
	name, kv := args(d)
	switch d.Cmd {
	case "reset":
		*h = *newHarness()
		return "ok\n", nil
	case "split":
		// A partition: from now on the commands act on one side; switch goes to the other.
		o := h.clone()
		h.other, h.base = o, maps.Clone(h.claims)
		return "ok\n", nil
	case "switch":
		if h.other == nil {
			return "", fmt.Errorf("switch without split")
		}
		o, base := h.other, h.base
		h.other, h.base = nil, nil
		me := h.clone()
		*h = *o
		h.other, h.base = me, base
		return "ok\n", nil
	case "heal":
		// The two sides' writes merge: a claim either side deleted (present at the split) is
		// gone, a claim either side added is there; records and rejections are joined.
		if h.other == nil {
			return "", fmt.Errorf("heal without split")
		}
		o, base := h.other, h.base
		h.other, h.base = nil, nil
		merged := map[string]ClaimRecord{}
		for _, side := range []map[string]ClaimRecord{h.claims, o.claims} {
			for k, c := range side {
				merged[k] = c
			}
		}
		for k := range base {
			_, a := h.claims[k]
			_, b := o.claims[k]
			if !a || !b {
				delete(merged, k)
			}
		}
		h.claims = merged
		maps.Copy(h.insts, o.insts)
		maps.Copy(h.rejs, o.rejs)
		return "ok\n", nil
	case "node":
		labels := map[string]string{}
		for _, p := range strings.Split(kv["labels"], ";") {
			if k, v, ok := strings.Cut(p, ":"); ok {
				labels[k] = v
			}
		}
		st := kv["status"]
		if st == "" {
			st = api.StatusAlive
		}
		h.nodes[name] = harnessNode{status: st, leftAt: num(kv, "left-at", 0), cpu: num(kv, "cpu", 4),
			ram: num(kv, "ram", 8192), disk: num(kv, "disk", 100000), labels: labels, unavailable: kv["unavailable"] == "true"}
	case "deploy":
		spec := api.DeploymentSpec{Name: name, Instances: int(num(kv, "instances", 1)), CPUPercent: float64(num(kv, "cpu", 10)),
			RAMMB: num(kv, "ram", 64), Strategy: kv["strategy"], Namespace: kv["namespace"], Command: []string{"true"}}
		if c := kv["constraints"]; c != "" {
			spec.Constraints = strings.Split(c, ";")
		}
		if err := normalizeSpec(&spec); err != nil {
			return "", err
		}
		h.deps[name] = DeploymentRecord{Spec: specOf(spec), Generation: 1, Deleted: kv["deleted"] == "true"}
	case "claim":
		node := kv["node"]
		dep := h.deps[kv["dep"]]
		res := specResources(&dep.Spec)
		cid := kv["id"]
		if cid == "" {
			cid = "0-" + name
		}
		h.claims[name] = ClaimRecord{Instance: name, Deployment: kv["dep"], Namespace: dep.Namespace, Slot: int(num(kv, "slot", 0)),
			Node: node, NodeID: id(node), ClaimID: cid, Owner: "?", At: num(kv, "at", 0), Priority: dep.Priority,
			CPUMilli: res.CPUMilli, RAMMB: res.RAMMB, DiskMB: res.DiskMB, Replaces: kv["replaces"], Failover: kv["failover"] == "true", Avoid: list(kv, "avoid")}
	case "instance":
		h.insts[name] = instances.Record{Name: name, Node: kv["node"], NodeID: id(kv["node"]), Status: kv["status"]}
	case "reject":
		node := kv["node"]
		h.rejs[name+"@"+id(node)] = RejectionRecord{Instance: name, Node: node, NodeID: id(node), ClaimID: kv["claim"],
			Code: kv["code"], Reason: kv["code"], At: num(kv, "at", 0)}
	case "drain":
		h.drains[id(name)] = true
	case "managed":
		mi := managedInstance{ClaimID: kv["claim"], Failures: int(num(kv, "failures", 0))}
		if c, ok := h.claims[name]; ok {
			mi.Deployment = c.Deployment
		}
		if n := num(kv, "next", 0); n > 0 {
			mi.next = time.UnixMilli(n)
		}
		h.managed[name] = mi
	case "local":
		in := sandbox.Info{Name: name, State: sandbox.State(kv["state"]), Spec: sandbox.Spec{Command: []string{"true"}}}
		if c := kv["cmd"]; c != "" {
			in.Spec.Command = strings.Split(c, ",")
		}
		if s := num(kv, "started", -1); s >= 0 {
			in.StartedAt = time.UnixMilli(s)
		}
		if e := kv["exit"]; e != "" {
			r, c, _ := strings.Cut(e, ":")
			code, _ := strconv.Atoi(c)
			in.LastExit = &sandbox.Exit{Reason: sandbox.Reason(r), Code: code}
		}
		h.local[name] = in
	case "owner":
		// Every member that is not dead or left runs its owner pass on the same state; only
		// the rendezvous owner of a deployment writes for it. Each node's writes are shown
		// under its name.
		var b strings.Builder
		var all []*schedWrites
		for _, self := range sortedKeys(h.nodes) {
			if s := h.nodes[self].status; s == api.StatusDead || s == api.StatusLeft {
				continue
			}
			if only := kv["self"]; only != "" && only != self {
				continue
			}
			w := h.decider().decideOwner(h.snapshot(self, num(kv, "now", 0)))
			if out := h.writes(w); out != "no writes\n" {
				fmt.Fprintf(&b, "%s:\n%s", self, out)
			}
			all = append(all, w)
		}
		if kv["apply"] == "true" {
			for _, w := range all {
				h.apply(w)
			}
		}
		if b.Len() == 0 {
			return "no writes\n", nil
		}
		return b.String(), nil
	case "agent":
		st := h.snapshot(kv["self"], num(kv, "now", 0))
		plan := h.decider().decideAgent(st, agentView{managed: h.managed, removing: map[string]bool{}, local: h.local})
		var b strings.Builder
		for _, x := range plan.admit {
			fmt.Fprintf(&b, "admit %s\n", x)
		}
		for _, x := range plan.adopt {
			fmt.Fprintf(&b, "adopt %s\n", x)
		}
		for _, x := range plan.restart {
			fmt.Fprintf(&b, "restart %s\n", x)
		}
		for _, x := range plan.remove {
			fmt.Fprintf(&b, "remove %s\n", x)
		}
		for _, k := range sortedKeys(plan.managed) {
			mi := plan.managed[k]
			next := int64(0)
			if !mi.next.IsZero() {
				next = mi.next.UnixMilli()
			}
			fmt.Fprintf(&b, "managed %s: claim=%s failures=%d next=%d\n", k, mi.ClaimID, mi.Failures, next)
		}
		b.WriteString(h.writes(&plan.writes))
		if kv["apply"] == "true" {
			for k, mi := range plan.managed {
				h.managed[k] = mi
			}
			for _, x := range plan.remove {
				delete(h.managed, x)
			}
			h.apply(&plan.writes)
		}
		if b.Len() == 0 {
			return "nothing\n", nil
		}
		return b.String(), nil
	default:
		return "", fmt.Errorf("unknown command %q", d.Cmd)
	}
	return "ok\n", nil
}

func (h *harness) clone() *harness {
	c := *h
	c.nodes, c.deps, c.claims, c.insts = maps.Clone(h.nodes), maps.Clone(h.deps), maps.Clone(h.claims), maps.Clone(h.insts)
	c.rejs, c.drains, c.msgs, c.managed, c.local = maps.Clone(h.rejs), maps.Clone(h.drains), maps.Clone(h.msgs), maps.Clone(h.managed), maps.Clone(h.local)
	c.other, c.base = nil, nil
	return &c
}

// snapshot builds the decision input as Scheduler.snapshot does from replicated state.
func (h *harness) snapshot(self string, now int64) *schedState {
	st := &schedState{
		now: time.UnixMilli(now), leftGrace: defaultLeftGrace, self: self, selfID: id(self),
		status: map[string]string{}, leftAt: map[string]time.Time{}, deadSince: map[string]time.Time{}, nameOf: map[string]string{}, idOf: map[string]string{},
		labels: map[string]map[string]string{}, res: map[string]instances.ResourceRecord{},
		deps: h.deps, claims: h.claims, rejs: h.rejs, insts: h.insts, resv: map[string]ReservationRecord{},
		drains: h.drains, quotas: map[string]QuotaRecord{}, msgs: h.msgs,
	}
	for _, name := range sortedKeys(h.nodes) {
		n := h.nodes[name]
		nid := id(name)
		st.status[nid] = n.status
		switch n.status {
		case api.StatusLeft:
			st.leftAt[nid] = time.UnixMilli(n.leftAt)
		case api.StatusDead:
			st.deadSince[nid] = time.UnixMilli(n.leftAt) // dead-since: the left-at= argument
		}
		st.nameOf[nid], st.idOf[name] = name, nid
		st.labels[nid] = n.labels
		st.res[nid] = instances.ResourceRecord{CPUCores: int(n.cpu), CPUCapacity: float64(n.cpu * 100), RAMCapacityMB: n.ram,
			DiskCapacityMB: n.disk, Available: !n.unavailable}
		if n.status != api.StatusDead && n.status != api.StatusLeft {
			st.members = append(st.members, name)
		}
	}
	return st
}

// writes prints a pass's writes, sorted, one per line.
func (h *harness) writes(w *schedWrites) string {
	var lines []string
	for coll, kv := range w.puts {
		for k, v := range kv {
			lines = append(lines, fmt.Sprintf("put %s %s: %s", coll, k, describe(coll, v)))
		}
	}
	for coll, ks := range w.dels {
		for _, k := range ks {
			lines = append(lines, fmt.Sprintf("del %s %s", coll, k))
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return "no writes\n"
	}
	return strings.Join(lines, "\n") + "\n"
}

func describe(coll string, v []byte) string {
	switch coll {
	case CollClaims:
		var c ClaimRecord
		mustDecode(v, &c)
		s := fmt.Sprintf("node=%s slot=%d id=%s at=%d", c.Node, c.Slot, c.ClaimID, c.At)
		if c.Replaces != "" {
			s += " replaces=" + c.Replaces
		}
		if c.Failover {
			s += " failover"
		}
		if len(c.Avoid) > 0 {
			s += " avoid=" + strings.Join(c.Avoid, ",")
		}
		if len(c.Preempts) > 0 {
			s += " preempts=" + strings.Join(c.Preempts, ",")
		}
		return s
	case CollRejections:
		var r RejectionRecord
		mustDecode(v, &r)
		return fmt.Sprintf("claim=%s code=%s reason=%q", r.ClaimID, r.Code, r.Reason)
	case CollDeployStatus:
		var m DeployStatusRecord
		mustDecode(v, &m)
		return fmt.Sprintf("owner=%s message=%q", m.Owner, m.Message)
	}
	return string(v)
}

func mustDecode(b []byte, v any) {
	if err := state.Decode(b, v); err != nil {
		panic(err)
	}
}

// apply writes a pass's writes into the harness state (what replication would do).
func (h *harness) apply(w *schedWrites) {
	for coll, kv := range w.puts {
		for k, v := range kv {
			switch coll {
			case CollClaims:
				var c ClaimRecord
				mustDecode(v, &c)
				h.claims[k] = c
			case CollRejections:
				var r RejectionRecord
				mustDecode(v, &r)
				h.rejs[k] = r
			case CollDeployStatus:
				var m DeployStatusRecord
				mustDecode(v, &m)
				h.msgs[k] = m
			}
		}
	}
	for coll, ks := range w.dels {
		for _, k := range ks {
			switch coll {
			case CollClaims:
				delete(h.claims, k)
			case CollRejections:
				delete(h.rejs, k)
			}
		}
	}
}
