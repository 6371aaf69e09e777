package liveness

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

var wireCases = []struct {
	name string
	m    message
	size int // encoded size, -1 to skip
}{
	{"ping", message{typ: msgPing, seq: 0xbeef}, 3},
	{"ack", message{typ: msgAck, seq: 1}, 3},
	{"nack", message{typ: msgNack, seq: 65535}, 3},
	{"pingreq", message{typ: msgPingReq, seq: 9, target: "12D3KooWtarget"}, 3 + 1 + 14},
	{"gossip empty", message{typ: msgGossip}, 1},
	{"gossip all kinds", message{typ: msgGossip, entries: []entry{
		{kind: entryAlive, node: "a", inc: 1735689600000},
		{kind: entrySuspect, node: "b", inc: 0, from: "c"},
		{kind: entryDead, node: "d", inc: 1<<64 - 1, from: "e"},
		{kind: entryLeft, node: "f", inc: 127},
	}}, -1},
	{"ack with refutation", message{typ: msgAck, seq: 3, entries: []entry{{kind: entryAlive, node: "x", inc: 2}}}, 3 + 1 + 2 + 1},
}

func TestWireRoundTrip(t *testing.T) {
	for _, tt := range wireCases {
		b := encode(tt.m)
		if tt.size >= 0 && len(b) != tt.size {
			t.Errorf("%s: encoded size %d, want %d", tt.name, len(b), tt.size)
		}
		got, err := decode(b)
		if err != nil {
			t.Errorf("%s: decode(%x) error %v", tt.name, b, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.m) {
			t.Errorf("%s: decode(encode(m)) = %+v; want %+v", tt.name, got, tt.m)
		}
		for _, e := range tt.m.entries {
			if n := len(appendEntry(nil, e)); n != entrySize(e) {
				t.Errorf("%s: entrySize = %d, encoded %d", tt.name, entrySize(e), n)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	long := bytes.Repeat([]byte{'x'}, MaxIDLen+1)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"version 0", []byte{0x01, 0, 0}, ErrVersion},
		{"version 2", []byte{0x21, 0, 0}, ErrVersion},
		{"unknown type", []byte{0x1f}, ErrMalformed},
		{"type 0", []byte{0x10}, ErrMalformed},
		{"short seq", []byte{0x11, 0}, ErrMalformed},
		{"pingreq no target", []byte{0x14, 0, 1}, ErrMalformed},
		{"pingreq empty target", []byte{0x14, 0, 1, 0}, ErrMalformed},
		{"pingreq target too long", append([]byte{0x14, 0, 1, byte(len(long))}, long...), ErrMalformed},
		{"pingreq truncated target", []byte{0x14, 0, 1, 5, 'a'}, ErrMalformed},
		{"entry kind 0", []byte{0x15, 0, 1, 'a', 1}, ErrMalformed},
		{"entry kind 9", []byte{0x15, 9, 1, 'a', 1}, ErrMalformed},
		{"entry no inc", []byte{0x15, 1, 1, 'a'}, ErrMalformed},
		{"entry overlong varint", []byte{0x15, 1, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{"entry non-minimal varint", []byte{0x15, 1, 1, 'a', 0xf8, 0x00}, ErrMalformed},
		{"suspect no from", []byte{0x15, 2, 1, 'a', 1}, ErrMalformed},
		{"trailing byte", []byte{0x11, 0, 1, 1}, ErrMalformed},
		{"too large", make([]byte, MaxWirePacket+1), ErrTooLarge},
	}
	for _, tt := range tests {
		if _, err := decode(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: decode(%.16x) = %v; want %v", tt.name, tt.b, err, tt.want)
		}
	}
	many := []byte{0x15}
	for i := 0; i <= maxEntries; i++ {
		many = append(many, 4, 1, 'a', 1)
	}
	if _, err := decode(many); !errors.Is(err, ErrMalformed) {
		t.Errorf("decode(%d entries) = %v; want ErrMalformed", maxEntries+1, err)
	}
}

func TestQueuePiggyback(t *testing.T) {
	var q broadcastQueue
	q.push(entry{kind: entryAlive, node: "a", inc: 1})
	q.push(entry{kind: entrySuspect, node: "a", inc: 1, from: "b"}) // replaces
	q.push(entry{kind: entryAlive, node: "c", inc: 1})
	if q.len() != 2 {
		t.Fatalf("len %d, want 2 (one change per member)", q.len())
	}
	b := q.take(nil, 1000, 2, 10, "c")
	m, err := decode(append([]byte{0x15}, b...))
	if err != nil || len(m.entries) != 1 || m.entries[0].kind != entrySuspect {
		t.Fatalf("take skipping c = %+v, %v", m.entries, err)
	}
	q.take(nil, 1000, 2, 10, "")
	if q.len() != 1 {
		t.Fatalf("after reaching the limit len = %d, want 1", q.len())
	}
	if b := q.take(nil, 3, 2, 10, ""); len(b) != 0 {
		t.Fatalf("an entry was taken beyond the budget: %x", b)
	}
	if b := q.take(nil, 100, 2, 0, ""); len(b) != 0 {
		t.Fatalf("an entry was taken beyond maxN: %x", b)
	}
}

// FuzzDecode: decoding never panics, and whatever decodes re-encodes to the
// same bytes (the format has one encoding per message), and a Detector
// handles it without panicking.
func FuzzDecode(f *testing.F) {
	for _, tt := range wireCases {
		f.Add(encode(tt.m))
	}
	f.Add([]byte{})
	f.Add([]byte{0x15, 2, 1, 'a', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := encode(m); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
		d, _ := New("self", 5, DefaultConfig())
		_ = d.AddMember("a", simEpoch)
		_ = d.AddMember("b", simEpoch)
		for _, from := range []string{"a", "stranger"} {
			if _, err := d.Handle(from, b, simEpoch); err != nil {
				t.Fatalf("Handle rejected a decodable packet: %v", err)
			}
		}
		d.Tick(simEpoch.Add(10e9))
	})
}
