package node

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rads-lang/constellation/api"
)

// TestMeshGRPC: a real gRPC server (the standard health service) registered on one node and
// a real gRPC client on another calling it by name through the loopback entry point
// (CONSTELLATION_MESH, :authority health.mesh): a unary call, and a server stream that
// delivers a status change made while it is open.
func TestMeshGRPC(t *testing.T) {
	ns := meshCluster(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("users", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(l)
	defer srv.Stop()
	register(t, ns[1], api.MeshRegisterRequest{Name: "health", Protocol: "grpc", Port: l.Addr().(*net.TCPAddr).Port})
	waitHealthy(t, ns[0], "", "health", 1)

	cc, err := grpc.NewClient("passthrough:///"+ns[0].Mesh().LocalAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("health.mesh"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "users"})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("unary Check through the mesh: %v %v", res, err)
	}
	// A gRPC error status (in the trailers) comes back as such.
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v; want NotFound", err)
	}

	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "users"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first streamed status: %v %v", first, err)
	}
	hs.SetServingStatus("users", healthpb.HealthCheckResponse_NOT_SERVING)
	next, err := stream.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("streamed status change: %v %v", next, err)
	}
}
