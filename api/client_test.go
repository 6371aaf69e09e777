package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClientTransportErrors: nothing listening is ErrNoNode (with how to start one); a node
// that answers too late is ErrTransport wrapping the deadline, not "no running node".
func TestClientTransportErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := NewClient(dir, "", "").Status(context.Background())
	if !errors.Is(err, ErrNoNode) || errors.Is(err, ErrTransport) {
		t.Fatalf("no socket: err = %v; want ErrNoNode", err)
	}

	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release })}
	go srv.Serve(l)
	defer func() { close(release); srv.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = NewClient(dir, "", "").Status(ctx)
	if errors.Is(err, ErrNoNode) || !errors.Is(err, ErrTransport) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow node: err = %v; want ErrTransport wrapping the deadline", err)
	}
}

// TestClientTokenFile: inside an instance the client finds the socket in
// CONSTELLATION_API and reads the token from the file CONSTELLATION_API_TOKEN_FILE names.
func TestClientTokenFile(t *testing.T) {
	dir := t.TempDir()
	sock, tokFile := filepath.Join(dir, "api.sock"), filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("ci1.x.0123\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.Write([]byte(`{}`))
	})}
	go srv.Serve(l)
	defer srv.Close()
	t.Setenv("CONSTELLATION_API", "unix:"+sock)
	t.Setenv("CONSTELLATION_API_TOKEN", "")
	t.Setenv("CONSTELLATION_API_TOKEN_FILE", tokFile)
	if _, err := NewClient(t.TempDir(), "", "").Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h != "Bearer ci1.x.0123" {
		t.Fatalf("Authorization = %q; want the token file's content", h)
	}
}
