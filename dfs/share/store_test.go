package share

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FuzzDecodeState: a share's state file (written by the node, but read back from disk
// where anything may have happened to it) never panics the decoder, and what it accepts
// has only clean relative paths and well-formed records.
func FuzzDecodeState(f *testing.F) {
	ok, _ := json.Marshal(State{Base: map[string]Synced{"a/b.txt": {Hash: strings.Repeat("ab", 32), CID: "bafy", Size: 3}},
		Hashes: map[string]string{"bafy": strings.Repeat("cd", 32)}, Round: time.Unix(5, 0)})
	f.Add(ok)
	f.Add([]byte(`{"base":{"../x":{"hash":"","cid":"c","size":1,"mtime":0}}}`))
	f.Add([]byte(`{"base":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		for p, s := range st.Base {
			if CheckRel(p) != nil || s.Size < 0 || !isHex(s.Hash) {
				t.Fatalf("accepted a bad record %q %+v", p, s)
			}
		}
		if st.Base == nil || st.Hashes == nil {
			t.Fatal("nil maps")
		}
	})
}

// FuzzDecodeSpecs: the persisted list of shares decodes to checked, non-overlapping specs
// or an error, never a panic.
func FuzzDecodeSpecs(f *testing.F) {
	s := Spec{LocalDir: "/srv/a", Path: "/shared/a", Sync: Realtime, Conflict: KeepBoth, Interval: time.Minute}
	s.ID = IDOf(s.LocalDir)
	ok, _ := json.Marshal([]Spec{s})
	f.Add(ok)
	f.Add([]byte(`[{"id":"x","local_dir":"rel","path":"/a"}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		specs, err := DecodeSpecs(b)
		if err != nil {
			return
		}
		for i, s := range specs {
			c := s
			if c.Check() != nil || c.ID != IDOf(c.LocalDir) || Conflicts(c, specs[:i], "") != nil {
				t.Fatalf("accepted a bad spec %+v", s)
			}
		}
	})
}

// TestDecodeRefuses: corrupt or hostile files are refused with the reason.
func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"base":{"../etc/passwd":{"hash":"` + strings.Repeat("a", 64) + `","cid":"c","size":1,"mtime":0}}}`, "bad relative path"},
		{`{"base":{"a":{"hash":"zz","cid":"c","size":1,"mtime":0}}}`, "bad record"},
		{`{"base":{},"extra":1}`, "unknown field"},
	} {
		if _, err := DecodeState([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeState(%s): %v, want %q", tc.in, err, tc.want)
		}
	}
	a := Spec{LocalDir: "/srv/a", Path: "/shared/a", Sync: Realtime, Conflict: KeepBoth, Interval: time.Minute}
	a.ID = IDOf(a.LocalDir)
	b := a
	b.LocalDir, b.ID, b.Path = "/srv/a/b", IDOf("/srv/a/b"), "/shared/b"
	two, _ := json.Marshal([]Spec{a, b})
	if _, err := DecodeSpecs(two); err == nil || !strings.Contains(err.Error(), "inside") {
		t.Errorf("nested shares in the file: %v", err)
	}
}

// TestCheckAndConflicts: every refused setting names what is wrong.
func TestCheckAndConflicts(t *testing.T) {
	base := Spec{LocalDir: "/srv/x", Path: "/shared/x"}
	for _, tc := range []struct {
		mod  func(s *Spec)
		want string
	}{
		{func(s *Spec) { s.Sync = "hourly" }, "use realtime or periodic"},
		{func(s *Spec) { s.Conflict = "newest" }, "last_write_wins or keep_both"},
		{func(s *Spec) { s.Interval = time.Millisecond }, "interval"},
		{func(s *Spec) { s.Path = "/" }, "whole file system"},
		{func(s *Spec) { s.Path = "/a//b" }, "empty component"},
		{func(s *Spec) { s.Path = "/a/x.conflict-n-1" }, "reserved"},
		{func(s *Spec) { s.LocalDir = "rel" }, "not absolute"},
	} {
		s := base
		tc.mod(&s)
		if err := s.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", s, err, tc.want)
		}
	}
	s := base
	if err := s.Check(); err != nil || s.Sync != Realtime || s.Conflict != LastWriteWins || s.Interval != DefaultInterval {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	existing := []Spec{{ID: "sh-1", LocalDir: "/srv/x", Path: "/shared/x"}}
	for _, tc := range []struct{ dir, path, want string }{
		{"/srv/x", "/shared/y", "already shared"},
		{"/srv/x/sub", "/shared/y", "inside"},
		{"/srv", "/shared/y", "contains"},
		{"/srv/y", "/shared/x/sub", "overlaps"},
		{"/data/node/dfs", "/shared/z", "data dir"},
		{"/data", "/shared/z", "data dir"},
	} {
		c := Spec{LocalDir: tc.dir, Path: tc.path}
		if err := Conflicts(c, existing, "/data/node"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v, want %q", tc.dir, tc.path, err, tc.want)
		}
	}
	if err := Conflicts(Spec{LocalDir: "/srv/xy", Path: "/shared/xy"}, existing, "/data/node"); err != nil {
		t.Errorf("a sibling whose name starts alike: %v", err)
	}
}

// TestScanSkips: links (escaping or not), special files, files over the limit and the
// editor's leftovers are left out; the first three are reported with the reason.
func TestScanSkips(t *testing.T) {
	root, _ := filepath.EvalSymlinks(t.TempDir())
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o600)
	os.WriteFile(filepath.Join(root, "ok.txt"), []byte("ok"), 0o644)
	os.WriteFile(filepath.Join(root, "big.bin"), make([]byte, 100), 0o644)
	os.WriteFile(filepath.Join(root, ".ok.txt.swp"), []byte("swap"), 0o644)
	os.WriteFile(filepath.Join(root, tempPrefix+"1.tmp"), []byte("tmp"), 0o644)
	os.Symlink(outside, filepath.Join(root, "escape"))
	os.Symlink("ok.txt", filepath.Join(root, "inner"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, skip, err := scanLocal(root, "/shared/s", 50, hashCache{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files["ok.txt"].Hash == "" {
		t.Fatalf("files %v", files)
	}
	for rel, want := range map[string]string{"big.bin": "size limit", "escape": "escaping", "inner": "not followed", "fifo": "special file"} {
		if !strings.Contains(skip[rel], want) {
			t.Errorf("%s: skipped as %q, want %q", rel, skip[rel], want)
		}
	}
	if len(skip) != 4 {
		t.Errorf("skipped %v", skip)
	}
	// a skipped file is never taken for a deletion
	plan := Plan(Input{Local: files, Remote: map[string]Remote{"big.bin": {CID: "c"}}, Base: map[string]Synced{"big.bin": {CID: "c"}},
		Skip: map[string]bool{"big.bin": true}, Writable: true, Policy: LastWriteWins})
	for _, a := range plan {
		if a.Path == "big.bin" {
			t.Fatalf("a skipped path got a step: %+v", a)
		}
	}
}

// TestCorruptSharesFile: a damaged shares file does not stop the node: it is moved aside
// (kept for the operator) and new shares can be made.
func TestCorruptSharesFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "shares.json"), []byte(`[{"id":`), 0o600)
	m, err := New(t.Context(), Config{Dir: dir}, nil)
	if err == nil {
		t.Fatal("New without a DFS should fail")
	}
	m, err = New(t.Context(), Config{Dir: dir}, fakeFS{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	aside, _ := filepath.Glob(filepath.Join(dir, "shares.json.corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("the damaged file was not kept aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != `[{"id":` {
		t.Fatalf("the kept file changed: %q", b)
	}
	if len(m.List()) != 0 {
		t.Fatal("shares from a damaged file")
	}
}
