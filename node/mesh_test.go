package node

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/mesh/balance"
)

// meshCluster is 3 nodes with a cluster key; endpoints go on n1 and n2, calls from n0.
func meshCluster(t *testing.T, mod func(i int, c *Config)) []*testNode {
	t.Helper()
	ns := startCluster(t, 3, func(i int, c *Config) {
		c.ClusterKey = "mesh-test-key"
		if mod != nil {
			mod(i, c)
		}
	})
	waitFor(t, 10*time.Second, "all admitted", func() bool {
		return len(ns[0].Host().Admitted()) == 2 && len(ns[1].Host().Admitted()) == 2 && len(ns[2].Host().Admitted()) == 2
	})
	return ns
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !f() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoServer answers every request with its name and path.
func echoServer(t *testing.T, name string) (*httptest.Server, int) {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		fmt.Fprintf(w, "%s %s %s caller=%s tp=%s", name, r.Method, r.URL.Path, r.Header.Get("X-Mesh-Caller"), r.Header.Get("Traceparent"))
	}))
	t.Cleanup(s.Close)
	return s, s.Listener.Addr().(*net.TCPAddr).Port
}

func register(t *testing.T, n *testNode, req api.MeshRegisterRequest) {
	t.Helper()
	if _, err := n.Mesh().Register(req); err != nil {
		t.Fatalf("register on %s: %v", n.cfg.Node, err)
	}
}

// waitHealthy waits until observer sees want healthy endpoints of the service.
func waitHealthy(t *testing.T, observer *testNode, ns, name string, want int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d healthy endpoints of %s on %s", want, name, observer.cfg.Node), func() bool {
		eps, err := observer.Mesh().Endpoints(ns, name)
		if err != nil {
			return false
		}
		h := 0
		for _, e := range eps {
			if e.Health == "healthy" {
				h++
			}
		}
		return h == want
	})
}

// meshGet calls through the node's loopback entry point.
func meshGet(c *http.Client, n *testNode, service, path string, hdr map[string]string) (int, string, http.Header, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.Mesh().LocalAddr()+path, nil)
	req.Host = service + ".mesh"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

func TestMeshBalancersSpreadAcrossNodes(t *testing.T) {
	ns := meshCluster(t, nil)
	_, p1 := echoServer(t, "a")
	_, p2 := echoServer(t, "b")
	register(t, ns[1], api.MeshRegisterRequest{Name: "user-service", Version: "1.0.0", Port: p1, HealthCheck: "/health", Tags: []string{"api"}})
	register(t, ns[2], api.MeshRegisterRequest{Name: "user-service", Version: "1.0.1", Port: p2})
	waitHealthy(t, ns[0], "", "user-service", 2)
	c := &http.Client{Timeout: 10 * time.Second}
	count := func(n int, hdr func(i int) map[string]string) map[string]int {
		got := map[string]int{}
		for i := 0; i < n; i++ {
			st, body, h, err := meshGet(c, ns[0], "user-service", "/users/123", hdr(i))
			if err != nil || st != 200 {
				t.Fatalf("call %d: %d %q %v", i, st, body, err)
			}
			got[h.Get("X-Served-By")]++
		}
		return got
	}
	chi2 := func(got map[string]int, n int) float64 {
		x := 0.0
		for _, k := range []string{"a", "b"} {
			d := float64(got[k]) - float64(n)/2
			x += d * d / (float64(n) / 2)
		}
		return x
	}
	const n = 200
	none := func(int) map[string]string { return nil }
	noHedge := false
	for _, lb := range []string{"round_robin", "random", "least_conn", "p2c_ewma"} {
		// No hedging: a hedge answers from the other endpoint by design, blurring the picks.
		if _, err := ns[0].Mesh().Configure("", "user-service", api.MeshServiceConfig{LoadBalancer: lb, Hedge: &noHedge}); err != nil {
			t.Fatal(err)
		}
		got := count(n, none)
		// 1 degree of freedom: 10.83 is p = 0.001.
		limit := 10.83
		if lb == "round_robin" {
			limit = 0.5 // exact alternation, give or take one
		}
		if lb == "p2c_ewma" {
			continue // prefers the faster endpoint by design: every call must just succeed
		}
		if lb == "least_conn" {
			if got["a"] == 0 || got["b"] == 0 {
				t.Errorf("%s: %v: one endpoint got nothing (sequential calls tie on zero in flight)", lb, got)
			}
			continue
		}
		if x := chi2(got, n); x > limit {
			t.Errorf("%s: %v: chi-square %.2f > %.2f", lb, got, x, limit)
		}
	}
	if _, err := ns[0].Mesh().Configure("", "user-service", api.MeshServiceConfig{LoadBalancer: "ip_hash", Hedge: &noHedge}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"alice", "bob", "carol"} {
		got := count(30, func(int) map[string]string { return map[string]string{"X-Mesh-Hash-Key": key} })
		if len(got) != 1 {
			t.Errorf("ip_hash key %s spread over %v; want one endpoint", key, got)
		}
	}
	// The caller's identity reaches the endpoint verified, and the registry is complete.
	_, body, _, _ := meshGet(c, ns[0], "user-service", "/x", nil)
	if !strings.Contains(body, "caller=default/") {
		t.Errorf("endpoint saw %q; want the caller header default/", body)
	}
	svcs := ns[0].Mesh().Services("")
	if len(svcs) != 1 || svcs[0].Endpoints != 2 || svcs[0].Healthy != 2 || strings.Join(svcs[0].Versions, ",") != "1.0.0,1.0.1" {
		t.Errorf("services = %+v", svcs)
	}
}

func TestMeshResolveIsLocal(t *testing.T) {
	ns := meshCluster(t, nil)
	_, p := echoServer(t, "a")
	register(t, ns[1], api.MeshRegisterRequest{Name: "svc", Port: p})
	waitFor(t, 10*time.Second, "replication", func() bool { _, _, ok := ns[0].Mesh().Resolve("", "svc"); return ok })
	ns[1].Kill() // resolving needs no other node
	start := time.Now()
	const k = 10000
	for i := 0; i < k; i++ {
		if _, _, ok := ns[0].Mesh().Resolve("", "svc"); !ok {
			t.Fatal("lost")
		}
	}
	t.Logf("resolve: %v per name", time.Since(start)/k)
}

func TestMeshKilledEndpointNoClientErrors(t *testing.T) {
	ns := meshCluster(t, nil)
	_, p1 := echoServer(t, "a")
	s2, p2 := echoServer(t, "b")
	register(t, ns[1], api.MeshRegisterRequest{Name: "users", Port: p1})
	register(t, ns[2], api.MeshRegisterRequest{Name: "users", Port: p2})
	waitHealthy(t, ns[0], "", "users", 2)
	if _, err := ns[0].Mesh().Configure("", "users", api.MeshServiceConfig{HealthCheckInterval: 1, UnhealthyThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	var calls, errs atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var firstErr atomic.Value
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, body, _, err := meshGet(c, ns[0], "users", "/", nil)
				calls.Add(1)
				if err != nil || st != 200 {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", st, body, err))
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s2.CloseClientConnections()
	s2.Close() // killed mid-load
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if errs.Load() > 0 {
		t.Errorf("%d of %d calls failed after an endpoint died; first: %v", errs.Load(), calls.Load(), firstErr.Load())
	}
	t.Logf("%d calls, %d errors", calls.Load(), errs.Load())
	waitFor(t, 10*time.Second, "dead endpoint marked unhealthy", func() bool {
		eps, _ := ns[0].Mesh().Endpoints("", "users")
		for _, e := range eps {
			if e.Node == "n2" {
				return e.Health == "unhealthy" && e.Reason != ""
			}
		}
		return false
	})
	// No healthy endpoint: 503 naming the reason per endpoint.
	ns[1].Mesh().Deregister(api.MeshDeregisterRequest{Name: "users"})
	waitFor(t, 10*time.Second, "deregistration replicated", func() bool {
		eps, _ := ns[0].Mesh().Endpoints("", "users")
		return len(eps) == 1
	})
	st, body, _, _ := meshGet(c, ns[0], "users", "/", nil)
	if st != 503 || !strings.Contains(body, "n2") || !strings.Contains(body, "unhealthy") {
		t.Errorf("no healthy endpoint: %d %q; want 503 naming n2 unhealthy", st, body)
	}
	// Unknown: 404 naming similar services.
	st, body, _, _ = meshGet(c, ns[0], "user", "/", nil)
	if st != 404 || !strings.Contains(body, "users") {
		t.Errorf("unknown service: %d %q; want 404 naming users", st, body)
	}
}

func TestMeshCircuitBreaker(t *testing.T) {
	ns := meshCluster(t, nil)
	var failing atomic.Bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" && failing.Load() {
			http.Error(w, "boom", 500)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer s.Close()
	register(t, ns[1], api.MeshRegisterRequest{Name: "pay", Port: s.Listener.Addr().(*net.TCPAddr).Port, HealthCheck: "/health"})
	waitHealthy(t, ns[0], "", "pay", 1)
	zero := 0
	m := ns[0].Mesh()
	if _, err := m.Configure("", "pay", api.MeshServiceConfig{FailureThreshold: 3, BreakerTimeout: 1, HalfOpenRequests: 2, Retries: &zero}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	failing.Store(true)
	for i := 0; i < 3; i++ {
		if st, _, _, _ := meshGet(c, ns[0], "pay", "/", nil); st != 500 {
			t.Fatalf("failing call %d: status %d, want 500", i, st)
		}
	}
	b := m.Balancer("default", "pay")
	state := func() balance.BreakerState { return b.Status()[0].Breaker }
	if state() != balance.Open {
		t.Fatalf("breaker %v after 3 failures; want open", state())
	}
	st, body, _, _ := meshGet(c, ns[0], "pay", "/", nil)
	if st != 503 || !strings.Contains(body, "breaker open") {
		t.Errorf("open breaker: %d %q; want 503 naming the open breaker", st, body)
	}
	failing.Store(false)
	time.Sleep(1100 * time.Millisecond)
	st, _, _, _ = meshGet(c, ns[0], "pay", "/", nil)
	if st != 200 {
		t.Fatalf("half-open probe: %d", st)
	}
	if state() != balance.HalfOpen {
		t.Errorf("after one probe: %v; want half_open", state())
	}
	meshGet(c, ns[0], "pay", "/", nil)
	if state() != balance.Closed {
		t.Errorf("after two successful probes: %v; want closed", state())
	}
}

func TestMeshNonMemberCannotOpenHop(t *testing.T) {
	ns := meshCluster(t, nil)
	_, p := echoServer(t, "secret")
	register(t, ns[1], api.MeshRegisterRequest{Name: "secret", Port: p})
	raw, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.Connect(ctx, peer.AddrInfo{ID: ns[1].ID(), Addrs: ns[1].Host().Libp2p().Addrs()}); err != nil {
		t.Fatal(err)
	}
	pid := ns[1].Host().ProtocolID("mesh/1.0.0")
	s, err := raw.NewStream(ctx, ns[1].ID(), pid)
	if err == nil {
		key := ns[1].ID().String() + "/default/secret/port-" + fmt.Sprint(p)
		fmt.Fprintf(s, "GET / HTTP/1.1\r\nHost: secret.mesh\r\nX-Mesh-Endpoint: %s\r\nX-Mesh-Caller: default/\r\n\r\n", key)
		s.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(s)
		if strings.Contains(string(b), "secret GET") {
			t.Fatalf("a non-member called through the mesh: %q", b)
		}
		s.Reset()
	}
}

func TestMeshIntentionsAcrossNamespaces(t *testing.T) {
	ns := meshCluster(t, nil)
	_, p := echoServer(t, "a")
	// A registration needs its namespace.
	if _, err := ns[1].Mesh().Register(api.MeshRegisterRequest{Name: "ledger", Namespace: "team-a", Port: p}); err == nil || !strings.Contains(err.Error(), "namespace team-a does not exist") {
		t.Errorf("register in a namespace never created: %v; want namespace team-a does not exist", err)
	}
	mustNamespace(t, ns[1].Node, "team-a")
	register(t, ns[1], api.MeshRegisterRequest{Name: "ledger", Namespace: "team-a", Port: p})
	waitHealthy(t, ns[0], "team-a", "ledger", 1)
	c := &http.Client{Timeout: 10 * time.Second}
	// The loopback caller is in namespace default: team-a is denied by default.
	st, body, _, _ := meshGet(c, ns[0], "ledger.team-a", "/", nil)
	if st != 403 || !strings.Contains(body, "denied") {
		t.Fatalf("cross-namespace call: %d %q; want 403", st, body)
	}
	if _, err := ns[2].Mesh().SetIntention("default/*", "team-a/ledger", true, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "intention replicated and applied on the far node", func() bool {
		st, _, _, _ := meshGet(c, ns[0], "ledger.team-a", "/", nil)
		return st == 200
	})
	if _, err := ns[2].Mesh().SetIntention("default/*", "team-a/ledger", false, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "deny replicated", func() bool {
		st, _, _, _ := meshGet(c, ns[0], "ledger.team-a", "/", nil)
		return st == 403
	})
}

func TestMeshTraceAcrossTwoHops(t *testing.T) {
	exps := make([]*tracetest.InMemoryExporter, 3)
	ns := meshCluster(t, func(i int, c *Config) {
		exps[i] = tracetest.NewInMemoryExporter()
		c.MeshTracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exps[i]))
	})
	_, p := echoServer(t, "a")
	register(t, ns[1], api.MeshRegisterRequest{Name: "orders", Port: p})
	waitHealthy(t, ns[0], "", "orders", 1)
	res, err := ns[0].Mesh().Call(httptest.NewRequest("POST", "/v1/mesh/call", nil), api.MeshCallRequest{Service: "orders", Path: "/o/1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.TraceID == "" || !strings.Contains(res.Body, res.TraceID) {
		t.Fatalf("trace %q not propagated to the endpoint: %q", res.TraceID, res.Body)
	}
	var client, server bool
	for _, s := range exps[0].GetSpans() {
		if s.SpanContext.TraceID().String() == res.TraceID && strings.HasPrefix(s.Name, "mesh.call") {
			client = true
		}
	}
	waitFor(t, 5*time.Second, "server span", func() bool {
		for _, s := range exps[1].GetSpans() {
			if s.SpanContext.TraceID().String() == res.TraceID && strings.HasPrefix(s.Name, "mesh.serve") {
				server = true
			}
		}
		return server
	})
	if !client {
		t.Errorf("no client span with trace %s on the caller", res.TraceID)
	}
	// An instance's own spans.
	sp, err := ns[0].Mesh().StartSpan(api.MeshSpanRequest{Name: "process_order", Traceparent: "00-" + res.TraceID + "-0102030405060708-01"})
	if err != nil || sp.TraceID != res.TraceID {
		t.Fatalf("span: %+v %v", sp, err)
	}
	if _, err := ns[0].Mesh().StartSpan(api.MeshSpanRequest{SpanID: sp.SpanID, Attributes: map[string]string{"k": "v"}, End: true}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range exps[0].GetSpans() {
		found = found || s.Name == "process_order" && s.SpanContext.TraceID().String() == res.TraceID
	}
	if !found {
		t.Error("the instance's span was not exported")
	}
}

func TestMeshH2CWebSocketAndTCP(t *testing.T) {
	ns := meshCluster(t, nil)
	// h2c (what gRPC speaks): the endpoint must see HTTP/2 with trailers passed back.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("Content-Type", "application/grpc")
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "proto=%d body=%s", r.ProtoMajor, b)
		w.Header().Set("Grpc-Status", "0")
	}))
	h2.Config.Protocols = &protos
	h2.Start()
	defer h2.Close()
	register(t, ns[1], api.MeshRegisterRequest{Name: "greeter", Protocol: "grpc", Port: h2.Listener.Addr().(*net.TCPAddr).Port})
	// WebSocket-style upgrade: the endpoint echoes after 101.
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			io.WriteString(w, "ok")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		line, _ := brw.ReadString('\n')
		io.WriteString(conn, "echo:"+line)
	}))
	defer ws.Close()
	register(t, ns[2], api.MeshRegisterRequest{Name: "chat", Port: ws.Listener.Addr().(*net.TCPAddr).Port})
	// Raw TCP: an echo server.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	register(t, ns[1], api.MeshRegisterRequest{Name: "redis", Protocol: "tcp", Port: tl.Addr().(*net.TCPAddr).Port})
	waitHealthy(t, ns[0], "", "greeter", 1)
	waitHealthy(t, ns[0], "", "chat", 1)
	waitHealthy(t, ns[0], "", "redis", 1)

	h2c := &http.Client{Transport: &http.Transport{Protocols: &protos}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+ns[0].Mesh().LocalAddr()+"/helloworld.Greeter/SayHello", strings.NewReader("hi"))
	req.Host = "greeter.mesh"
	req.ContentLength = -1 // streamed, like gRPC
	resp, err := h2c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "proto=2 body=hi" || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Errorf("h2c through the mesh: %q trailer %v", b, resp.Trailer)
	}

	c, err := net.Dial("tcp", ns[0].Mesh().LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: chat.mesh\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	wr, err := http.ReadResponse(br, nil)
	if err != nil || wr.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", wr, err)
	}
	io.WriteString(c, "hello\n")
	line, _ := br.ReadString('\n')
	if line != "echo:hello\n" {
		t.Errorf("after upgrade: %q", line)
	}

	tc, err := net.Dial("tcp", ns[0].Mesh().LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(tc, "CONNECT redis.mesh:6379 HTTP/1.1\r\nHost: redis.mesh:6379\r\n\r\n")
	tbr := bufio.NewReader(tc)
	cr, err := http.ReadResponse(tbr, &http.Request{Method: "CONNECT"})
	if err != nil || cr.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", cr, err)
	}
	io.WriteString(tc, "PING\n")
	if l, _ := tbr.ReadString('\n'); l != "PING\n" {
		t.Errorf("tcp tunnel echo: %q", l)
	}
}

func TestMeshDeadlineAndValidation(t *testing.T) {
	ns := meshCluster(t, nil)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
		}
		io.WriteString(w, "ok")
	}))
	defer slow.Close()
	register(t, ns[1], api.MeshRegisterRequest{Name: "slow", Port: slow.Listener.Addr().(*net.TCPAddr).Port})
	waitHealthy(t, ns[0], "", "slow", 1)
	cl := unixHTTP(ns[0].Node)
	post := func(path string, v any) (int, string) {
		b, _ := json.Marshal(v)
		resp, err := cl.Post("http://x"+path, "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	st, body := post("/v1/mesh/call", api.MeshCallRequest{Service: "slow", Path: "/slow", TimeoutMs: 300})
	if st != 504 || !strings.Contains(body, "attempt") {
		t.Errorf("over the deadline: %d %s; want 504 naming the attempts", st, body)
	}
	st, body = post("/v1/mesh/call", api.MeshCallRequest{Service: "slow", Path: "/"})
	if st != 200 || !strings.Contains(body, `"status": 200`) {
		t.Errorf("call: %d %s", st, body)
	}
	for _, c := range []struct {
		req   api.MeshRegisterRequest
		field string
	}{
		{api.MeshRegisterRequest{Name: "Bad_Name", Port: 80}, `\"name\"`},
		{api.MeshRegisterRequest{Name: "ok", Port: 0}, `\"port\"`},
		{api.MeshRegisterRequest{Name: "ok", Port: 80, Protocol: "udp"}, `\"protocol\"`},
		{api.MeshRegisterRequest{Name: "ok", Port: 80, HealthCheck: "health"}, `\"health_check\"`},
		{api.MeshRegisterRequest{Name: "ok", Port: 80, Tags: []string{"a b"}}, `\"tags\"`},
		{api.MeshRegisterRequest{Name: "ok", Port: 80, Instance: "nope"}, `\"instance\"`},
	} {
		st, body := post("/v1/mesh/services", c.req)
		if st != 400 || !strings.Contains(body, c.field) {
			t.Errorf("register %+v: %d %s; want 400 naming %s", c.req, st, body, c.field)
		}
	}
	if st, body := post("/v1/mesh/services/slow/config", api.MeshServiceConfig{LoadBalancer: "fastest"}); st != 400 || !strings.Contains(body, "load_balancer") {
		t.Errorf("configure: %d %s", st, body)
	}
}

// TestMeshDeploymentRegistersInstances deploys with --service: every instance is registered
// by the node running it, an instance that exits is unhealthy at once, and the endpoints go
// with the deployment.
func TestMeshDeploymentRegistersInstances(t *testing.T) {
	ns := startSchedClusterCfg(t, 3, func(_ int, c *Config) { c.ClusterKey = "mesh-test-key" })
	_, port := echoServer(t, "inst") // stands for the instances' port (they share the host network)
	if _, _, err := ns[0].sched.Deploy(api.DeploymentSpec{Name: "web", Instances: 3, CPUPercent: 1, RAMMB: 16,
		Command: []string{"sleep", "1000"}, Service: "web-svc", ServicePort: port, HealthCheck: "/health"}); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, ns[0].testNode, "", "web-svc", 3)
	eps, _ := ns[0].Mesh().Endpoints("", "web-svc")
	nodes := map[string]bool{}
	for _, e := range eps {
		nodes[e.Node] = true
		if !strings.HasPrefix(e.Instance, "web-") {
			t.Errorf("endpoint %+v is not a deployment instance", e)
		}
	}
	if len(nodes) != 3 {
		t.Errorf("endpoints on %v; want the 3 nodes running the instances", nodes)
	}
	// An instance calls through its own socket (CONSTELLATION_MESH_SOCKET) with its identity.
	var caller api.MeshEndpoint
	for _, e := range eps {
		if e.Node == "n2" {
			caller = e
		}
	}
	var sock string
	waitFor(t, 10*time.Second, "the instance's mesh socket", func() bool {
		sock = ns[2].Mesh().InstanceSocket(caller.Instance)
		return sock != ""
	})
	uc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := uc.Get("http://web-svc.mesh/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "caller=default/web-svc") {
		t.Errorf("call through the instance socket: %d %q; want the caller default/web-svc", resp.StatusCode, b)
	}
	// An instance that exits: its endpoint is unhealthy at once (no threshold wait).
	var victim api.MeshEndpoint
	for _, e := range eps {
		if e.Node == "n1" {
			victim = e
		}
	}
	if err := ns[1].fake().Exit(victim.Instance, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "exited instance unhealthy on n0", func() bool {
		eps, _ := ns[0].Mesh().Endpoints("", "web-svc")
		for _, e := range eps {
			if e.Instance == victim.Instance {
				return e.Health == "unhealthy" && strings.Contains(e.Reason, victim.Instance)
			}
		}
		return false
	})
	if err := ns[0].sched.Undeploy("web"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "endpoints removed with the deployment", func() bool {
		_, _, ok := ns[0].Mesh().Resolve("", "web-svc")
		return !ok
	})
}

// TestMeshHedgingCutsSlowEndpoint: once the service's p95 is known, an idempotent call stuck
// on a slow endpoint is hedged on the other, and the hedge answers.
func TestMeshHedgingCutsSlowEndpoint(t *testing.T) {
	ns := meshCluster(t, nil)
	var slow atomic.Bool
	mk := func(name string, slowed bool) int {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slowed && slow.Load() && r.URL.Path != "/health" {
				select {
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().(*net.TCPAddr).Port
	}
	register(t, ns[1], api.MeshRegisterRequest{Name: "search", Port: mk("fast", false), HealthCheck: "/health"})
	register(t, ns[2], api.MeshRegisterRequest{Name: "search", Port: mk("slow", true), HealthCheck: "/health"})
	waitHealthy(t, ns[0], "", "search", 2)
	m := ns[0].Mesh()
	req := httptest.NewRequest("POST", "/v1/mesh/call", nil)
	for i := 0; i < 60; i++ { // the latency history hedging needs (p95)
		if _, err := m.Call(req, api.MeshCallRequest{Service: "search"}); err != nil {
			t.Fatal(err)
		}
	}
	slow.Store(true)
	hedged := 0
	for i := 0; i < 10; i++ {
		res, err := m.Call(req, api.MeshCallRequest{Service: "search", TimeoutMs: 2000})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if res.Body != "fast" {
			t.Fatalf("call %d answered by %q after %v", i, res.Body, res.Attempts)
		}
		for _, a := range res.Attempts {
			if a.Hedge {
				hedged++
			}
		}
	}
	if hedged == 0 {
		t.Error("no call was hedged although half went to the slow endpoint first")
	}
}

// TestMeshMTLSLastHop: an endpoint that demands a client certificate is reached with the
// node's enable-mtls certificate, its own verified against the CA.
func TestMeshMTLSLastHop(t *testing.T) {
	ns := meshCluster(t, nil)
	dir := t.TempDir()
	ca, caKey := testCert(t, nil, nil, "mesh-ca", true)
	srvCert, srvKey := testCert(t, ca, caKey, "127.0.0.1", false)
	cliCert, cliKey := testCert(t, ca, caKey, "n1", false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}}}
	s.StartTLS()
	defer s.Close()
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	certPath, keyPath, caPath := writePEM("c.crt", "CERTIFICATE", cliCert.Raw), writePEM("c.key", "EC PRIVATE KEY", keyDER), writePEM("ca.crt", "CERTIFICATE", ca.Raw)
	if err := ns[1].Mesh().EnableMTLS(certPath, keyPath, "/nonexistent"); err == nil {
		t.Error("enable-mtls accepted a missing CA file")
	}
	if err := ns[1].Mesh().EnableMTLS(certPath, keyPath, caPath); err != nil {
		t.Fatal(err)
	}
	register(t, ns[1], api.MeshRegisterRequest{Name: "vault", Port: s.Listener.Addr().(*net.TCPAddr).Port, HealthCheck: "/health", TLS: true})
	waitHealthy(t, ns[0], "", "vault", 1)
	res, err := ns[0].Mesh().Call(httptest.NewRequest("POST", "/v1/mesh/call", nil), api.MeshCallRequest{Service: "vault"})
	if err != nil || res.Status != 200 || res.Body != "hello n1" {
		t.Fatalf("call over mTLS: %+v %v", res, err)
	}
}

// testCert makes an ECDSA certificate for name signed by parent (self-signed when nil).
func testCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tpl.IPAddresses = []net.IP{ip}
	}
	signer, signKey := tpl, key
	if parent != nil {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// TestMeshExecHealthCheck: an exec health check run by the hosting node flips the
// endpoint's health as its command starts failing and passing again, and every node sees it.
func TestMeshExecHealthCheck(t *testing.T) {
	ns := meshCluster(t, func(i int, c *Config) { c.MeshExecChecks = i == 1 })
	_, port := echoServer(t, "db")
	flag := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Attacker: whoever may register a service must not run commands on a node that did
	// not opt in (--mesh-exec-checks).
	if _, err := ns[2].Mesh().Register(api.MeshRegisterRequest{Name: "db", Protocol: "tcp", Port: port,
		HealthCheck: "exec:touch " + flag + ".pwned"}); err == nil || !strings.Contains(err.Error(), "exec checks are off") {
		t.Fatalf("exec check on a node without --mesh-exec-checks: %v; want refused", err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(flag + ".pwned"); err == nil {
		t.Fatal("the refused exec check ran")
	}
	if _, err := ns[1].Mesh().Configure("", "db", api.MeshServiceConfig{HealthCheckInterval: 1, UnhealthyThreshold: 1, HealthyThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	register(t, ns[1], api.MeshRegisterRequest{Name: "db", Protocol: "tcp", Port: port, HealthCheck: "exec:test -e " + flag})
	waitHealthy(t, ns[0], "", "db", 1)
	os.Remove(flag)
	waitHealthy(t, ns[0], "", "db", 0)
	eps, _ := ns[0].Mesh().Endpoints("", "db")
	if len(eps) != 1 || !strings.Contains(eps[0].Reason, "exec test: exit status 1") {
		t.Fatalf("unhealthy endpoint: %+v", eps)
	}
	os.WriteFile(flag, nil, 0o644)
	waitHealthy(t, ns[0], "", "db", 1)
}
