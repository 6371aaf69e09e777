package fsutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentWriters: many goroutines replace one file at once (the managed-list bug:
// a shared temporary name and no lock left a mix of two contents). Every write succeeds,
// the file is always one writer's whole content, and no temporary file is left behind.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "managed.json")
	contents := make([][]byte, 32)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte(fmt.Sprintf("{writer %02d}", i)), 200+i*37)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() { // a reader sees whole contents only
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			ok := false
			for _, c := range contents {
				ok = ok || bytes.Equal(b, c)
			}
			if !ok {
				select {
				case bad <- fmt.Sprintf("read %d bytes that no writer wrote", len(b)):
				default:
				}
			}
		}
	}()
	for i := range contents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := WriteFile(p, contents[i], 0o600); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	select {
	case m := <-bad:
		t.Fatal(m)
	default:
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries; want only the file (no temporaries)", len(ents))
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v; want 0600", fi.Mode().Perm())
	}
}
