package node

import (
	"net"

	"go.opentelemetry.io/otel/trace"

	"github.com/rads-lang/constellation/mesh"
)

// newMesh builds the service mesh with adapters to the instance service and the scheduler
// (both built after it: the mesh's address goes into every instance's environment).
func (n *Node) newMesh() (*mesh.Service, error) {
	return mesh.New(n.ctx, mesh.Config{Name: n.cfg.Node, Labels: n.cfg.Labels, DataDir: n.cfg.DataDir, ListenAddr: n.cfg.MeshListen,
		TracerProvider: n.meshTracer(), Metrics: n.registry, CheckNamespace: n.checkNamespace,
		ExecChecks: n.cfg.MeshExecChecks},
		n.host, n.st, n.members, meshInstances{n}, meshDeployments{n}, n.events, n.api, n.log)
}

// meshTracer is the mesh's TracerProvider: the configured one (tests), else the node's, whose
// spans go into the node's span store (monitor traces) and to OTLP when configured.
func (n *Node) meshTracer() trace.TracerProvider {
	if n.cfg.MeshTracerProvider != nil {
		return n.cfg.MeshTracerProvider
	}
	return n.TracerProvider()
}

// Mesh is the node's service mesh (tests and benchmarks).
func (n *Node) Mesh() *mesh.Service { return n.mesh }

type meshInstances struct{ n *Node }

func (a meshInstances) LookupInstance(name string) (mesh.InstanceInfo, bool) {
	if a.n.instances == nil {
		return mesh.InstanceInfo{}, false
	}
	r, ok := a.n.instances.Lookup(name)
	if !ok {
		return mesh.InstanceInfo{}, false
	}
	return mesh.InstanceInfo{Name: r.Name, Namespace: r.Namespace, NodeID: r.NodeID, Status: r.Status, Network: r.Network, IP: r.IP}, true
}

// LocalInstances names the instances this node runs.
func (a meshInstances) LocalInstances() []string {
	if a.n.instances == nil || a.n.instances.InstanceCount() == 0 {
		return nil // the common idle case costs no scan of the cluster's instances
	}
	self := a.n.host.ID().String()
	var out []string
	for _, r := range a.n.instances.List() {
		if r.NodeID == self {
			out = append(out, r.Name)
		}
	}
	return out
}

type meshDeployments struct{ n *Node }

func (a meshDeployments) ServiceOf(instance string) (mesh.DeploymentService, bool) {
	if a.n.sched == nil {
		return mesh.DeploymentService{}, false
	}
	dep, svc, ns, proto, hc, port, ok := a.n.sched.MeshService(instance)
	return mesh.DeploymentService{Deployment: dep, Service: svc, Namespace: ns, Protocol: proto, HealthCheck: hc, Port: port}, ok
}

// ListenRunSocket opens the mesh's socket in a local instance's run directory.
func (a meshInstances) ListenRunSocket(name, file string) (net.Listener, string, error) {
	return a.n.instances.ListenRunSocket(name, file)
}

// checkNamespace is the mesh's namespace check: the security service's (none before it
// exists).
func (n *Node) checkNamespace(ns string) error {
	if n.security == nil {
		return nil
	}
	return n.security.CheckNamespace(ns)
}
