package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/mesh"
)

// TestMeshRegisterForwarded: a registration for an instance running on another node, made
// on any node, is forwarded to the instance's node, which then owns, checks and serves the
// endpoint; a deregistration made on a third node removes it on its host.
func TestMeshRegisterForwarded(t *testing.T) {
	ns := startSchedClusterCfg(t, 3, func(i int, c *Config) { c.ClusterKey = "mesh-test-key" })
	a, b, c := ns[0], ns[1], ns[2]
	waitFor(t, 10*time.Second, "all admitted", func() bool {
		return len(a.Host().Admitted()) == 2 && len(b.Host().Admitted()) == 2 && len(c.Host().Admitted()) == 2
	})
	_, port := echoServer(t, "web-1")
	if _, err := b.instances.Create(context.Background(), &api.CreateRequest{Name: "web-1", Command: []string{"serve"}, Network: "host"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a sees web-1 running on b", func() bool {
		in, ok := a.instances.Lookup("web-1")
		return ok && in.NodeID == b.ID().String() && in.Status == api.InstanceRunning
	})
	ep, err := a.Mesh().Register(api.MeshRegisterRequest{Name: "web", Port: port, Instance: "web-1", HealthCheck: "/health"})
	if err != nil {
		t.Fatalf("register on a for an instance on b: %v", err)
	}
	if ep.NodeID != b.ID().String() || ep.Instance != "web-1" {
		t.Fatalf("endpoint %+v; want one hosted by %s", ep, b.cfg.Node)
	}
	waitHealthy(t, c.testNode, "", "web", 1)
	// Bad input is refused with an error naming the field: a namespace that does not exist
	// (checked by the receiving node) or another than the instance's (by the host).
	_, err = a.Mesh().Register(api.MeshRegisterRequest{Name: "web", Port: port, Instance: "web-1", Namespace: "other"})
	if err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Fatalf("forwarded bad registration: %v", err)
	}
	n, err := c.Mesh().Deregister(api.MeshDeregisterRequest{Name: "web", Instance: "web-1"})
	if err != nil || n != 1 {
		t.Fatalf("deregister on c: %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "the endpoint gone on a", func() bool {
		eps, err := a.Mesh().Endpoints("", "web")
		return err != nil || len(eps) == 0
	})
	if _, err := c.Mesh().Deregister(api.MeshDeregisterRequest{Name: "web", Instance: "web-1"}); !errors.Is(err, mesh.ErrUnknownService) {
		t.Fatalf("second deregister: %v; want unknown service", err)
	}
}
