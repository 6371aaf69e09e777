package locks

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeRequest feeds the forward protocol's decoder (network input from members):
// it must never panic, and what it accepts passes check and encodes back to an equal
// request.
func FuzzDecodeRequest(f *testing.F) {
	for _, r := range []Request{
		{Op: opAcquire, Path: "/cluster/critical", Holder: "a", TTL: int64(time.Second)},
		{Op: opRenew, Path: "/a", Token: 7},
		{Op: opCAS, Path: "/data/x#version", ExpectRev: 3, Value: []byte("v"), Token: 9, Hops: 1},
		{Op: opStatus},
	} {
		b, err := encMode.Marshal(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x01, 0x18, 0x64})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if err := r.check(); err != nil {
			t.Fatalf("accepted a request check refuses: %v", err)
		}
		b2, err := encMode.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeRequest(b2)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if r2.Op != r.Op || r2.Path != r.Path || r2.Token != r.Token || !bytes.Equal(r2.Value, r.Value) {
			t.Fatalf("round trip changed the request: %+v -> %+v", r, r2)
		}
	})
}

// FuzzDecodeSnapshot feeds the snapshot decoder (file input at restore).
func FuzzDecodeSnapshot(f *testing.F) {
	s := newState()
	s.apply(&command{Op: opAcquire, Now: 1, Path: "/a", Holder: "h", TTL: 5})
	s.apply(&command{Op: opCAS, Now: 1, Path: "/k", Value: []byte("v")})
	b, _ := encMode.Marshal(s)
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeState(b)
		if err != nil {
			return
		}
		// A decoded state must be usable: applying entries must not panic.
		s.apply(&command{Op: opLeader, Now: 10})
		s.apply(&command{Op: opAcquire, Now: 10, Path: "/a", Holder: "x", TTL: 5})
		s.apply(&command{Op: opCAS, Now: 10, Path: "/k", ExpectRev: 1, Value: []byte("w"), Token: 3})
	})
}
