package p2p

import (
	"bufio"
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	msgs := [][]byte{nil, []byte("a"), bytes.Repeat([]byte("x"), 5000)}
	for _, m := range msgs {
		if err := writeFrame(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, m := range msgs {
		got, err := readFrame(r, 10000)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("readFrame = %q, %v; want %q", got, err, m)
		}
	}
	buf.Reset()
	writeFrame(&buf, make([]byte, 100))
	if _, err := readFrame(bufio.NewReader(&buf), 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: err = %v; want ErrTooLarge", err)
	}
}

func TestSplitGossip(t *testing.T) {
	var deltas [][]byte
	for i := 0; i < 100; i++ {
		deltas = append(deltas, bytes.Repeat([]byte{byte(i)}, 100))
	}
	const max = 1024
	msgs := splitGossip(deltas, max)
	if len(msgs) < 10 {
		t.Errorf("%d messages for 10 KB of deltas at %d B each; want >= 10", len(msgs), max)
	}
	var back [][]byte
	for _, m := range msgs {
		if len(m) > max {
			t.Errorf("message of %d bytes exceeds %d", len(m), max)
		}
		g, err := decodeGossip(m, max)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, g.Deltas...)
	}
	if !slices.EqualFunc(back, deltas, bytes.Equal) {
		t.Error("deltas changed or reordered by splitting")
	}
}

func FuzzDecodeGossip(f *testing.F) {
	f.Add(encodeGossip(gossipMsg{Kind: gossipDeltas, Deltas: [][]byte{[]byte("a"), nil}}))
	f.Add(encodeGossip(gossipMsg{Kind: gossipPull}))
	f.Add([]byte{0xa1, 0x01, 0x03})
	f.Add([]byte{0x9f, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGossip(b, 1<<16)
		if err != nil {
			return
		}
		if g.Kind != gossipDeltas && g.Kind != gossipPull {
			t.Fatalf("accepted kind %d", g.Kind)
		}
		// Re-encoding a decoded message must decode to the same thing.
		g2, err := decodeGossip(encodeGossip(g), 1<<20)
		if err != nil || g2.Kind != g.Kind || !slices.EqualFunc(g2.Deltas, g.Deltas, bytes.Equal) {
			t.Fatalf("round trip: %+v -> %+v, %v", g, g2, err)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(wireMessage{ID: "abc", Type: "t", Data: []byte("{}"), At: 5}))
	f.Add(encodeMessage(wireMessage{ID: "", Type: "t"}))
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b, 1<<16)
		if err != nil {
			return
		}
		if m.ID == "" || len(m.ID) > maxMessageIDLen || len(m.Type) > maxMessageTypeLen {
			t.Fatalf("accepted invalid message %+v", m)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	writeFrame(&buf, []byte("hello"))
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x05, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for i := 0; i < 4; i++ {
			got, err := readFrame(r, 1024)
			if err != nil {
				return
			}
			if len(got) > 1024 {
				t.Fatalf("frame of %d bytes over limit", len(got))
			}
		}
	})
}

func FuzzAdmissionRecords(f *testing.F) {
	var hl hello
	hl.cluster = clusterHashFull("c")
	f.Add(hl.encode())
	f.Add(record{status: admitOK}.encode())
	f.Add(record{status: admitBadProof}.encode())
	f.Add(append([]byte{admitBadProof}, make([]byte, 31)...))
	f.Add([]byte("CAD2"))
	f.Add([]byte("CAD1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHello(b); err == nil {
			if !bytes.Equal(h.encode(), b) {
				t.Fatalf("hello round trip differs")
			}
		}
		r, err := decodeRecord("record", b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decodeRecord error %v is not ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(r.encode(), b) {
			t.Fatalf("record round trip differs")
		}
		if r.status > admitBlocked || r.status != admitOK && r.body != ([32]byte{}) {
			t.Fatalf("accepted record %+v: unknown status or a refusal carrying data", r)
		}
	})
}
