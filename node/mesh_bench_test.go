package node

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// BenchmarkMeshHop measures one call through the mesh to an endpoint on another node
// (loopback entry point on n0 -> libp2p stream over QUIC -> n1 -> endpoint) against
// calling the endpoint directly, sequentially; the added latency is the difference.
func BenchmarkMeshHop(b *testing.B) {
	ns := startCluster(b, 2, func(_ int, c *Config) { c.ClusterKey = "bench-key" })
	srv, port := benchEcho(b)
	defer srv.Close()
	if _, err := ns[1].Mesh().Register(api.MeshRegisterRequest{Name: "bench", Port: port}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		eps, _ := ns[0].Mesh().Endpoints("", "bench")
		if len(eps) == 1 && eps[0].Health == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("endpoint not healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(url, host string) {
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	measure := func(url, host string) time.Duration {
		for i := 0; i < 100; i++ {
			get(url, host)
		}
		start := time.Now()
		for i := 0; i < b.N; i++ {
			get(url, host)
		}
		return time.Since(start) / time.Duration(b.N)
	}
	b.ResetTimer()
	direct := measure("http://"+srv.Listener.Addr().String()+"/", "")
	mesh := measure("http://"+ns[0].Mesh().LocalAddr()+"/", "bench.mesh")
	b.ReportMetric(float64(direct.Nanoseconds())/1000, "direct-us/op")
	b.ReportMetric(float64(mesh.Nanoseconds())/1000, "mesh-us/op")
	b.ReportMetric(float64((mesh-direct).Nanoseconds())/1000, "added-us/op")
}

// BenchmarkMeshResolve measures resolving a service name (a read of the local replica).
func BenchmarkMeshResolve(b *testing.B) {
	ns := startCluster(b, 1, nil)
	if _, err := ns[0].Mesh().Register(api.MeshRegisterRequest{Name: "bench", Port: 1}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, ok := ns[0].Mesh().Resolve("", "bench"); !ok {
			b.Fatal("not found")
		}
	}
}

func benchEcho(b testing.TB) (*httptest.Server, int) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	return s, s.Listener.Addr().(*net.TCPAddr).Port
}

// BenchmarkMeshThroughput measures requests through the mesh with concurrent clients
// (compare BenchmarkMeshHop's direct figure; `constellation bench mesh` adds nginx).
func BenchmarkMeshThroughput(b *testing.B) {
	ns := startCluster(b, 2, func(_ int, c *Config) { c.ClusterKey = "bench-key" })
	srv, port := benchEcho(b)
	defer srv.Close()
	if _, err := ns[1].Mesh().Register(api.MeshRegisterRequest{Name: "bench", Port: port}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		eps, _ := ns[0].Mesh().Endpoints("", "bench")
		if len(eps) == 1 && eps[0].Health == "healthy" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("endpoint not healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := "http://" + ns[0].Mesh().LocalAddr() + "/"
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "bench.mesh"
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
