package p2p

// Wire formats. Every decoder here takes untrusted bytes and a limit; they are fuzzed
// in wire_test.go.
//
//   frame:        uvarint(len) || len bytes              (streams: sync, packets, every Service)
//   gossip:       CBOR {1: kind, 2: [bstr...]}           (pubsub message body)
//   message:      CBOR {1: id, 2: type, 3: data, 4: at}  (Send/Broadcast request)
//   admission:    fixed-size binary records, see admit.go

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// writeFrame writes uvarint(len(b)) || b.
func writeFrame(w io.Writer, b []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(b)))
	if len(b) < 4096 {
		// One write for small frames (one packet on the wire).
		buf := make([]byte, 0, n+len(b))
		buf = append(buf, hdr[:n]...)
		buf = append(buf, b...)
		_, err := w.Write(buf)
		return err
	}
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame of at most max bytes.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := readFrameLen(r, max)
	if err != nil {
		return nil, err
	}
	return readFrameBody(r, n)
}

// readFrameLen reads a frame header; io.EOF means a clean end between frames.
func readFrameLen(r *bufio.Reader, max int) (uint64, error) {
	var n uint64
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, frameErr("length", err)
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, fmt.Errorf("%w: frame length overflows 64 bits", ErrMalformed)
		}
		n |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			break
		}
	}
	if n > uint64(max) {
		return 0, fmt.Errorf("%w: frame of %d bytes exceeds limit %d", ErrTooLarge, n, max)
	}
	return n, nil
}

func readFrameBody(r *bufio.Reader, n uint64) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, frameErr("body", err)
	}
	return b, nil
}

// frameErr classifies a read error: a clean EOF between frames stays io.EOF, a frame cut
// short or an overlong length is ErrMalformed, a transport error (reset, deadline) is
// wrapped as is so callers can tell a timeout.
func frameErr(part string, err error) error {
	switch {
	case err == io.EOF && part == "length":
		return io.EOF
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: frame %s: %v", ErrMalformed, part, err)
	default:
		return fmt.Errorf("p2p: frame %s: %w", part, err)
	}
}

const (
	gossipDeltas = 1 // Deltas holds deltas to Apply
	gossipPull   = 2 // the publisher has a change too big to gossip: sync with it
)

type gossipMsg struct {
	Kind   uint8    `cbor:"1,keyasint"`
	Deltas [][]byte `cbor:"2,keyasint,omitempty"`
}

type wireMessage struct {
	ID   string `cbor:"1,keyasint"`
	Type string `cbor:"2,keyasint"`
	Data []byte `cbor:"3,keyasint,omitempty"`
	At   int64  `cbor:"4,keyasint"` // unix nanoseconds
}

const (
	maxMessageIDLen   = 64
	maxMessageTypeLen = 256
	maxGossipDeltas   = 1 << 16
)

// Immutable codec modes (built once; no init side effects).
var (
	cborEnc = mustEncMode()
	cborDec = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  maxGossipDeltas,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}

func encodeGossip(m gossipMsg) []byte {
	b, err := cborEnc.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("p2p: encode gossip: %v", err)) // cannot happen for this type
	}
	return b
}

// decodeGossip decodes a gossip body of at most max bytes.
func decodeGossip(b []byte, max int) (gossipMsg, error) {
	var m gossipMsg
	if len(b) > max {
		return m, fmt.Errorf("%w: gossip of %d bytes exceeds %d", ErrTooLarge, len(b), max)
	}
	if err := cborDec.Unmarshal(b, &m); err != nil {
		return gossipMsg{}, fmt.Errorf("%w: gossip: %v", ErrMalformed, err)
	}
	switch m.Kind {
	case gossipDeltas:
	case gossipPull:
		if len(m.Deltas) != 0 {
			return gossipMsg{}, fmt.Errorf("%w: gossip pull notice carries deltas", ErrMalformed)
		}
	default:
		return gossipMsg{}, fmt.Errorf("%w: gossip kind %d", ErrMalformed, m.Kind)
	}
	return m, nil
}

func encodeMessage(m wireMessage) []byte {
	b, err := cborEnc.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("p2p: encode message: %v", err))
	}
	return b
}

// decodeMessage decodes a Send/Broadcast request of at most max bytes.
func decodeMessage(b []byte, max int) (wireMessage, error) {
	var m wireMessage
	if len(b) > max {
		return m, fmt.Errorf("%w: message of %d bytes exceeds %d", ErrTooLarge, len(b), max)
	}
	if err := cborDec.Unmarshal(b, &m); err != nil {
		return wireMessage{}, fmt.Errorf("%w: message: %v", ErrMalformed, err)
	}
	if m.ID == "" || len(m.ID) > maxMessageIDLen {
		return wireMessage{}, fmt.Errorf("%w: message id length %d", ErrMalformed, len(m.ID))
	}
	if len(m.Type) > maxMessageTypeLen {
		return wireMessage{}, fmt.Errorf("%w: message type length %d", ErrMalformed, len(m.Type))
	}
	return m, nil
}

func (m wireMessage) time() time.Time { return time.Unix(0, m.At) }
