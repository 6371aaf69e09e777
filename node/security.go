package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/scheduler"
	"github.com/rads-lang/constellation/security"
)

// newSecurity builds the security service (tokens, roles, the permission guard and the
// audit log) on the node's API server; after the instance service and the scheduler,
// whose records it asks the namespaces of.
func (n *Node) newSecurity() (*security.Service, error) {
	return security.New(n.ctx, security.Config{
		Name: n.cfg.Node, DataDir: n.cfg.DataDir, AuditRetention: n.cfg.AuditRetention, ClusterKey: n.cfg.ClusterKey,
		InstanceCaller: func(ctx context.Context) (string, string, bool) { return instances.CallerOf(ctx) },
		NamespaceOf:    n.namespaceOf,
	}, n.host, n.members, n.st, n.api, n.log)
}

// auditForwarded records a mutating request another node forwarded to this one.
func (n *Node) auditForwarded(f instances.Forwarded) {
	from, ok := n.members.NameOf(f.From.String())
	if !ok {
		from = f.From.String()
	}
	e := api.AuditEntry{Kind: "forwarded", Caller: "node " + from, Method: f.Method, Route: f.Method + " " + f.Path,
		Target: f.Path, Status: f.Status, RequestID: f.RequestID}
	if f.Instance != "" {
		e.Caller, e.CallerID = f.Instance, f.InstanceID
	}
	if err := n.security.Record(e); err != nil {
		n.log.Error("audit log append failed", "err", err)
	}
}

// namespaceOf is the namespace of a named instance or deployment.
func (n *Node) namespaceOf(resource, name string) (string, bool) {
	switch resource {
	case "instances":
		r, ok := n.instances.Lookup(name)
		if !ok {
			return "", false
		}
		if r.Namespace == "" {
			return api.DefaultNamespace, true
		}
		return r.Namespace, true
	case "deployments":
		d, err := n.sched.DeploymentStatus(name)
		if err != nil {
			return "", false
		}
		if d.Namespace == "" {
			return api.DefaultNamespace, true
		}
		return d.Namespace, true
	}
	return "", false
}

// workloads is what namespaces need of the instance service and the scheduler.
type workloads struct{ n *Node }

func (w workloads) SetQuota(ns string, q api.QuotaSpec) error {
	_, err := w.n.sched.SetQuota(ns, q)
	return err
}

func (w workloads) Quota(ns string) (api.QuotaInfo, bool) { return w.n.sched.Quota(ns) }
func (w workloads) RemoveQuota(ns string)                 { w.n.sched.RemoveQuota(ns) }

// RemoveNamespace removes the namespace's deployments (all: it is deleted) and this node's
// own instances of the namespace created before `before`.
func (w workloads) RemoveNamespace(ctx context.Context, ns string, before time.Time, all bool) (int, error) {
	removed := 0
	var errs []error
	if all {
		for _, d := range w.n.sched.Deployments() {
			if d.Namespace == ns {
				if err := w.n.sched.Undeploy(d.Name); err != nil && !errors.Is(err, scheduler.ErrDeploymentNotFound) {
					errs = append(errs, err)
				} else if err == nil {
					removed++
				}
			}
		}
	}
	for _, r := range w.n.instances.Local() {
		rns := r.Namespace
		if rns == "" {
			rns = api.DefaultNamespace
		}
		if rns != ns || !r.CreatedAt.Before(before) {
			continue
		}
		if err := w.n.instances.Remove(ctx, r.Name, 0); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", r.Name, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// Security is the node's security service (tokens, roles, audit log).
func (n *Node) Security() *security.Service { return n.security }
