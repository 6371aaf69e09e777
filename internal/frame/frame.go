// Package frame reads and writes length-prefixed frames (a 4-byte big-endian length, then
// the bytes) on streams between nodes, refusing frames over a limit before reading them.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge means a peer announced a frame over the limit.
var ErrTooLarge = errors.New("frame too large")

// Write writes one frame.
func Write(w io.Writer, b []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// Read reads one frame of at most limit bytes.
func Read(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}
