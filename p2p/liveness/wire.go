package liveness

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format (version 1). Every packet is
//
//	header  = version<<4 | type                        1 byte
//	body    = ping, ack, nack: seq                     2 bytes, big endian
//	          pingreq:         seq, target             2 bytes + id
//	          gossip:          (empty)
//	entries = entry*                                   up to the end of the packet
//	entry   = kind node incarnation [from]             from only for suspect and dead
//	kind    = 1 alive | 2 suspect | 3 dead | 4 left    1 byte
//	id      = len (1..MaxIDLen) bytes                  1 byte + len
//	incarnation = unsigned varint (at most 10 bytes)
//
// A steady-state ping or ack is 3 bytes. Packets come from authenticated
// peers (the transport says who sent them), so pings carry no sender ID.

const (
	wireVersion = 1

	// MaxWirePacket is the largest packet Decode accepts.
	MaxWirePacket = 16 << 10
	// MaxIDLen is the longest member ID, in bytes, that can be encoded.
	MaxIDLen = 128
	// maxEntries bounds the piggybacked changes per packet.
	maxEntries = 256
	// minPacketSize leaves room for a pingreq with a maximal ID and one entry.
	minPacketSize = 3 + 1 + MaxIDLen + 1 + 2*(1+MaxIDLen) + 10
)

type msgType uint8

const (
	msgPing    msgType = 1
	msgAck     msgType = 2
	msgNack    msgType = 3
	msgPingReq msgType = 4
	msgGossip  msgType = 5
)

type entryKind uint8

const (
	entryAlive   entryKind = 1
	entrySuspect entryKind = 2
	entryDead    entryKind = 3
	entryLeft    entryKind = 4
)

// entry is one piggybacked membership change.
type entry struct {
	kind entryKind
	node string
	inc  uint64
	from string // accuser, for suspect and dead
}

// message is a decoded packet.
type message struct {
	typ     msgType
	seq     uint16
	target  string // pingreq only
	entries []entry
}

// Decoding errors; every one Decode returns wraps ErrMalformed.
var (
	ErrMalformed = errors.New("liveness: malformed packet")
	ErrVersion   = fmt.Errorf("%w: unsupported version", ErrMalformed)
	ErrTooLarge  = fmt.Errorf("%w: packet too large", ErrMalformed)
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

func appendID(b []byte, id string) []byte {
	b = append(b, byte(len(id)))
	return append(b, id...)
}

func appendEntry(b []byte, e entry) []byte {
	b = append(b, byte(e.kind))
	b = appendID(b, e.node)
	b = binary.AppendUvarint(b, e.inc)
	if e.kind == entrySuspect || e.kind == entryDead {
		b = appendID(b, e.from)
	}
	return b
}

func entrySize(e entry) int {
	n := 1 + 1 + len(e.node) + uvarintLen(e.inc)
	if e.kind == entrySuspect || e.kind == entryDead {
		n += 1 + len(e.from)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendHeader encodes the header and body of m (not its entries).
func appendHeader(b []byte, m message) []byte {
	b = append(b, wireVersion<<4|byte(m.typ))
	switch m.typ {
	case msgPing, msgAck, msgNack:
		b = binary.BigEndian.AppendUint16(b, m.seq)
	case msgPingReq:
		b = binary.BigEndian.AppendUint16(b, m.seq)
		b = appendID(b, m.target)
	}
	return b
}

// encode encodes a whole message; used by tests and the fuzzer.
func encode(m message) []byte {
	b := appendHeader(nil, m)
	for _, e := range m.entries {
		b = appendEntry(b, e)
	}
	return b
}

func validID(id string) bool { return len(id) > 0 && len(id) <= MaxIDLen }

// decode parses a packet. It never panics and rejects trailing garbage,
// unknown types and kinds, empty or oversized IDs and overlong varints.
func decode(b []byte) (message, error) {
	var m message
	if len(b) > MaxWirePacket {
		return m, ErrTooLarge
	}
	if len(b) == 0 {
		return m, malformed("empty")
	}
	if b[0]>>4 != wireVersion {
		return m, fmt.Errorf("%w %d", ErrVersion, b[0]>>4)
	}
	m.typ = msgType(b[0] & 0x0f)
	r := reader{b: b[1:]}
	switch m.typ {
	case msgPing, msgAck, msgNack:
		m.seq = r.uint16()
	case msgPingReq:
		m.seq = r.uint16()
		m.target = r.id()
	case msgGossip:
	default:
		return m, malformed("unknown type %d", m.typ)
	}
	for r.err == nil && len(r.b) > 0 {
		if len(m.entries) == maxEntries {
			return m, malformed("more than %d entries", maxEntries)
		}
		var e entry
		e.kind = entryKind(r.byte())
		e.node = r.id()
		e.inc = r.uvarint()
		switch e.kind {
		case entryAlive, entryLeft:
		case entrySuspect, entryDead:
			e.from = r.id()
		default:
			if r.err == nil {
				r.err = malformed("unknown entry kind %d", e.kind)
			}
		}
		m.entries = append(m.entries, e)
	}
	if r.err != nil {
		return message{}, r.err
	}
	return m, nil
}

// reader consumes b and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = malformed("truncated or invalid %s", what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint16() uint16 {
	if len(r.b) < 2 {
		r.fail("sequence number")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) { // overflow, truncation or a non-minimal encoding
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) id() string {
	n := int(r.byte())
	if r.err != nil {
		return ""
	}
	if n == 0 || n > MaxIDLen || n > len(r.b) {
		r.fail("id")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
