package crdt

import (
	"bytes"
	"testing"
)

// fuzzSeeds returns encodings of every delta shape plus a full state.
func fuzzSeeds(t testing.TB) [][]byte {
	ft := newFakeTime()
	a, b := newDoc(t, 1, ft), newDoc(t, 2, ft)
	var out [][]byte
	add := func(d *Delta) {
		enc, err := EncodeDelta(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, enc)
	}
	m := must(t)
	add(m(a.PutLWW("c", "k", []byte("v"))))
	add(m(a.PutMV("c", "m", []byte("m"))))
	add(m(a.AddToSet("c", "s", "e")))
	add(m(a.RemoveFromSet("c", "s", "e")))
	add(m(a.IncGCounter("c", "g", 3)))
	add(m(a.AddPNCounter("c", "p", -3)))
	add(m(a.IncBounded("c", "b", 5)))
	add(m(a.TransferBounded("c", "b", 2, 2)))
	add(m(a.Remove("c", "k")))
	join(t, b, a.State())
	add(m(b.PutLWW("c", "x", nil)))
	add(a.State())
	add(b.State())
	batch, _ := Batch(m(a.PutLWW("d", "1", []byte("1"))), m(a.PutLWW("d", "2", []byte("2"))))
	add(batch)
	return out
}

// FuzzDecodeDelta checks that arbitrary bytes never panic the decoder, that
// whatever decodes re-encodes canonically, and that joining it never panics.
func FuzzDecodeDelta(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x84, 0x01, 0x01, 0x80, 0xf6})
	f.Add([]byte{0x9f, 0xff})
	lim := Limits{MaxBytes: 1 << 20, MaxDepth: 16, MaxEntries: 10000}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDelta(b, lim)
		if err != nil {
			return
		}
		enc, err := EncodeDelta(d)
		if err != nil {
			t.Fatalf("decoded delta does not encode: %v", err)
		}
		d2, err := DecodeDelta(enc, lim)
		if err != nil {
			t.Fatalf("re-encoded delta does not decode: %v", err)
		}
		enc2, _ := EncodeDelta(d2)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not canonical")
		}
		ft := newFakeTime()
		doc := newDoc(t, 3, ft)
		must(t)(doc.PutLWW("c", "k", []byte("local")))
		if _, err := doc.Join(d); err == nil {
			// Reads and anti-entropy on the result must not panic either.
			for _, c := range doc.Collections() {
				for _, k := range doc.Keys(c) {
					doc.GetLWW(c, k)
					doc.GetMV(c, k)
					doc.SetMembers(c, k)
					doc.PNCounter(c, k)
					doc.Bounded(c, k)
				}
			}
			doc.DeltaFor(VersionVector{})
			if _, err := EncodeDelta(doc.State()); err != nil {
				t.Fatalf("state after join does not encode: %v", err)
			}
		}
	})
}

// FuzzDecodeVersion checks the version-vector decoder.
func FuzzDecodeVersion(f *testing.F) {
	for _, v := range []VersionVector{{}, {1: 1}, {1: 5, 2: 9, 1 << 60: 3}} {
		b, err := EncodeVersion(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x82, 0x01, 0x83, 0x01, 0x02, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVersion(b, DefaultLimits)
		if err != nil {
			return
		}
		enc, err := EncodeVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := DecodeVersion(enc, DefaultLimits)
		if err != nil || len(v2) != len(v) {
			t.Fatalf("round trip: %v %v", v2, err)
		}
		for r, n := range v {
			if v2[r] != n {
				t.Fatalf("round trip: %v != %v", v2, v)
			}
		}
	})
}

func TestDecodeLimitsAndGarbage(t *testing.T) {
	seeds := fuzzSeeds(t)
	full := seeds[len(seeds)-2]
	if _, err := DecodeDelta(full, Limits{MaxBytes: 10, MaxDepth: 16, MaxEntries: 100}); !isErr(err, ErrLimit) {
		t.Fatalf("MaxBytes: %v", err)
	}
	if _, err := DecodeDelta(full, Limits{MaxBytes: 1 << 20, MaxDepth: 4, MaxEntries: 100}); !isErr(err, ErrLimit) {
		t.Fatalf("MaxDepth: %v", err)
	}
	if _, err := DecodeDelta(full, Limits{MaxBytes: 1 << 20, MaxDepth: 16, MaxEntries: 3}); !isErr(err, ErrLimit) {
		t.Fatalf("MaxEntries: %v", err)
	}
	for i, g := range [][]byte{nil, {0xff}, []byte("hello"), {0x84, 0x02, 0x01, 0x80, 0xf6}, {0x84, 0x01, 0x00, 0x80, 0xf6}, full[:len(full)/2]} {
		if _, err := DecodeDelta(g, DefaultLimits); err == nil {
			t.Errorf("garbage %d decoded", i)
		}
	}
	// A truncated or corrupted seed must fail or decode, never panic.
	for _, s := range seeds {
		for i := range s {
			c := append([]byte(nil), s...)
			c[i] ^= 0x5a
			DecodeDelta(c, DefaultLimits)
		}
	}
}
