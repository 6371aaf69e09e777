package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreCorruptAndWrongCluster(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.db")
	s, err := openBolt(p, "c1", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.appendDeltas([][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := s.snapshot([]byte("S")); err != nil {
		t.Fatal(err)
	}
	s.appendDeltas([][]byte{[]byte("c")})
	var got []string
	if _, err := s.load(func(b []byte) error { got = append(got, string(b)); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "S,c" {
		t.Fatalf("load = %v; want [S c]", got)
	}
	s.close()

	if _, err := openBolt(p, "c2", false); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("other cluster: err = %v; want ErrWrongCluster", err)
	}
	// A garbage file is refused with a message naming it, and is left as it was.
	junk := []byte(strings.Repeat("not a bolt file ", 1000))
	os.WriteFile(p, junk, 0o600)
	_, err = openBolt(p, "c1", false)
	var ce *CorruptStateError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "mv ") {
		t.Fatalf("corrupt file: err = %v; want CorruptStateError naming %s and how to recover", err, p)
	}
	after, _ := os.ReadFile(p)
	if string(after) != string(junk) {
		t.Fatal("corrupt state file was modified")
	}
}
