package api

import (
	"context"
	"errors"
	"net"
	"net/http"
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
