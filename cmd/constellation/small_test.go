package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rads-lang/constellation/api"
)

// scripted is a local API answering from a table of "METHOD path" -> handler, recording
// the requests.
type scripted struct {
	mu     sync.Mutex
	reqs   []string
	routes map[string]http.HandlerFunc
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
	s.mu.Unlock()
	if h, ok := s.routes[r.Method+" "+r.URL.Path]; ok {
		h(w, r)
		return
	}
	http.Error(w, `{"error":"no route","code":"not_found"}`, http.StatusNotFound)
}

func serve(t *testing.T, routes map[string]http.HandlerFunc) (*scripted, string) {
	s := &scripted{routes: routes}
	srv := httptest.NewTLSServer(s) // a TCP API is TLS, its certificate pinned
	t.Cleanup(srv.Close)
	t.Setenv("CONSTELLATION_API_FINGERPRINT", api.Fingerprint(srv.Certificate().Raw))
	return s, strings.TrimPrefix(srv.URL, "https://")
}

// TestEventsCount: --count N prints exactly N events, even when more are already buffered.
func TestEventsCount(t *testing.T) {
	_, addr := serve(t, map[string]http.HandlerFunc{"GET /v1/events": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 70; i++ {
			fmt.Fprintf(w, "id: %d\nevent: message\ndata: {\"seq\":%d,\"type\":\"message\"}\n\n", i, i)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}})
	out, err := runCLI(t, "events", "--since", "0", "--count", "3", "--json", "--api", addr)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 3 {
		t.Fatalf("events --count 3 printed %d lines:\n%s", n, out)
	}
}

// TestWaitExitStatus: wait exits 0 only when the instance ended well; a failed instance's
// exit code (or 1) otherwise.
func TestWaitExitStatus(t *testing.T) {
	for _, c := range []struct {
		answer string
		code   int
	}{
		{`{"name":"a","status":"exited","exit_code":0,"reason":"exited"}`, 0},
		{`{"name":"a","status":"stopped","exit_code":143,"reason":"signaled"}`, 0},
		{`{"name":"a","status":"failed","exit_code":3,"reason":"exited"}`, 3},
		{`{"name":"a","status":"oom_killed","exit_code":0,"reason":"oom_killed"}`, 1},
	} {
		_, addr := serve(t, map[string]http.HandlerFunc{"POST /v1/instances/a/wait": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, c.answer)
		}})
		_, err := runCLI(t, "wait", "a", "--api", addr)
		var ee exitError
		got := 0
		if errors.As(err, &ee) {
			got = ee.code
		} else if err != nil {
			t.Fatalf("%s: %v", c.answer, err)
		}
		if got != c.code {
			t.Errorf("wait on %s exits %d; want %d", c.answer, got, c.code)
		}
	}
}

// TestQuotaSetChangesOnlyGiven: quota set sends only the limits given (PATCH), so setting
// --max-instances keeps the CPU and RAM limits; quota rm deletes.
func TestQuotaSetChangesOnlyGiven(t *testing.T) {
	s, addr := serve(t, map[string]http.HandlerFunc{
		"PATCH /v1/quotas/team":  func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"namespace":"team"}`) },
		"DELETE /v1/quotas/team": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"removed"}`) },
	})
	if _, err := runCLI(t, "quota", "set", "team", "--max-instances", "5", "--api", addr); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "quota", "rm", "team", "--api", addr); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "quota", "set", "team", "--api", addr); err == nil || !strings.Contains(err.Error(), "at least one limit") {
		t.Fatalf("quota set without limits: %v", err)
	}
	want := []string{`PATCH /v1/quotas/team {"max_instances":5}`, `DELETE /v1/quotas/team`}
	if strings.Join(s.reqs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(s.reqs, "\n"), strings.Join(want, "\n"))
	}
}

// TestLogsOfInstanceNamedSearch: an instance named like a logs subcommand is reached with
// --instance (plain `logs search` is the cluster search); NAME and --instance together are
// refused.
func TestLogsOfInstanceNamedSearch(t *testing.T) {
	s, addr := serve(t, map[string]http.HandlerFunc{"GET /v1/instances/search/logs": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from search\n")
	}})
	out, err := runCLI(t, "logs", "--instance", "search", "--api", addr)
	if err != nil || out != "hello from search\n" {
		t.Fatalf("logs --instance search: %q, %v (requests %v)", out, err, s.reqs)
	}
	if _, err := runCLI(t, "logs", "--instance", "search", "other", "--api", addr); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("NAME and --instance: %v", err)
	}
}
