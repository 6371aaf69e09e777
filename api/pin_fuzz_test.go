package api

import (
	"strings"
	"testing"
)

// FuzzParseFingerprint: any input is refused or gives the canonical form, which parses to
// itself.
func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha256:e210891cd3201d54257b2928185061fc85dbd85a0d0d8a15c11355159991acba")
	f.Add("E2:10:89:1C:D3:20:1D:54:25:7B:29:28:18:50:61:FC:85:DB:D8:5A:0D:0D:8A:15:C1:13:55:15:99:91:AC:BA")
	f.Add("sha256:12ab")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if len(fp) != len(fingerprintPrefix)+64 || fp != strings.ToLower(fp) {
			t.Fatalf("ParseFingerprint(%q) = %q; want sha256: and 64 lowercase hex digits", s, fp)
		}
		if again, err := ParseFingerprint(fp); err != nil || again != fp {
			t.Fatalf("ParseFingerprint(%q) = %q, %v; want itself", fp, again, err)
		}
	})
}

// FuzzKnownNodes: any known_nodes content is refused with an error naming the file, or gives
// entries whose fingerprints are canonical and whose lines exist.
func FuzzKnownNodes(f *testing.F) {
	f.Add([]byte("# nodes\n127.0.0.1:7947 sha256:e210891cd3201d54257b2928185061fc85dbd85a0d0d8a15c11355159991acba\n"), "127.0.0.1:7947")
	f.Add([]byte("[::1]:7947 sha256:e210891cd3201d54257b2928185061fc85dbd85a0d0d8a15c11355159991acba # local\nbad line\n"), "[::1]:7947")
	f.Fuzz(func(t *testing.T, b []byte, addr string) {
		ks, err := parseKnownNodes(b, "known_nodes", addr)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "known_nodes") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		lines := strings.Count(string(b), "\n") + 1
		for _, k := range ks {
			if _, err := ParseFingerprint(k.fingerprint); err != nil || k.line < 1 || k.line > lines {
				t.Fatalf("entry %+v of %q: bad fingerprint or line (%d lines)", k, b, lines)
			}
		}
	})
}
