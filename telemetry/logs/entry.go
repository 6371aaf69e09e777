package logs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"time"
)

// Entry is one log line: an instance's output line, a line of the node's own log, or a
// structured entry an instance submitted.
type Entry struct {
	Time       time.Time
	Node       string
	Instance   string // empty for the node's own log
	Deployment string
	Namespace  string
	Stream     string // stdout, stderr, node (the node's own log) or api (submitted)
	Level      string // debug, info, warn, error (lower case; may be empty for raw output)
	Message    string
	Fields     map[string]string
}

// Streams of entries.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamNode   = "node"
	StreamAPI    = "api"
)

// Limits of one entry (checked by Validate; the codec refuses larger ones).
const (
	MaxMessageBytes = 16 << 10
	MaxFields       = 32
	MaxFieldKey     = 64
	MaxFieldValue   = 1 << 10
	maxNameBytes    = 256
	// maxFrame bounds one encoded entry.
	maxFrame = MaxMessageBytes + MaxFields*(MaxFieldKey+MaxFieldValue+8) + 8*maxNameBytes + 64
)

// Levels are the accepted levels, in order of severity.
var Levels = []string{"debug", "info", "warn", "error"}

// NormalizeLevel maps common spellings (WARNING, Err, fatal) to one of Levels; ok is false
// for an unknown level.
func NormalizeLevel(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug", "trace":
		return "debug", true
	case "info", "notice", "":
		return "info", true
	case "warn", "warning":
		return "warn", true
	case "error", "err", "fatal", "critical", "crit", "panic":
		return "error", true
	}
	return "", false
}

// Validate checks an entry's sizes and field keys.
func (e *Entry) Validate() error {
	if len(e.Message) > MaxMessageBytes {
		return fmt.Errorf("message of %d bytes: at most %d", len(e.Message), MaxMessageBytes)
	}
	if len(e.Fields) > MaxFields {
		return fmt.Errorf("%d fields: at most %d", len(e.Fields), MaxFields)
	}
	for k, v := range e.Fields {
		if k == "" || len(k) > MaxFieldKey || !validKey(k) {
			return fmt.Errorf("field key %q: 1 to %d letters, digits, '_', '-' or '.'", k, MaxFieldKey)
		}
		if len(v) > MaxFieldValue {
			return fmt.Errorf("field %q: value of %d bytes, at most %d", k, len(v), MaxFieldValue)
		}
	}
	for _, s := range []string{e.Node, e.Instance, e.Deployment, e.Namespace, e.Stream, e.Level} {
		if len(s) > maxNameBytes {
			return fmt.Errorf("name %.20q...: at most %d bytes", s, maxNameBytes)
		}
	}
	return nil
}

func validKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Frames on disk:
//
//	frame   = uvarint(len(payload)) || crc32c(payload) (4 bytes, little endian) || payload
//	payload = varint(unix nanoseconds) || str(node) || str(instance) || str(deployment)
//	          || str(namespace) || str(stream) || str(level) || str(message)
//	          || uvarint(n) || n x (str(key) || str(value))      keys sorted
//	str     = uvarint(len) || bytes

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt means a frame does not decode or fails its checksum.
var ErrCorrupt = errors.New("logs: corrupt frame")

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendFrame appends e's frame to b.
func appendFrame(b []byte, e *Entry) []byte {
	var payload []byte
	var keys []string
	return appendFrameScratch(b, e, &payload, &keys)
}

// appendFrame is appendFrame with the store's scratch buffers.
func (s *Store) appendFrame(b []byte, e *Entry) []byte {
	return appendFrameScratch(b, e, &s.payload, &s.keys)
}

func appendFrameScratch(b []byte, e *Entry, scratch *[]byte, keysBuf *[]string) []byte {
	var p [binary.MaxVarintLen64]byte
	payload := (*scratch)[:0]
	payload = binary.AppendVarint(payload, e.Time.UnixNano())
	for _, s := range [...]string{e.Node, e.Instance, e.Deployment, e.Namespace, e.Stream, e.Level, e.Message} {
		payload = appendStr(payload, s)
	}
	payload = binary.AppendUvarint(payload, uint64(len(e.Fields)))
	keys := (*keysBuf)[:0]
	for k := range e.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		payload = appendStr(appendStr(payload, k), e.Fields[k])
	}
	*scratch, *keysBuf = payload, keys
	n := binary.PutUvarint(p[:], uint64(len(payload)))
	b = append(b, p[:n]...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

// view is an undecoded entry: its strings point into the frame (valid until the next read).
type view struct {
	t                                                             int64
	node, instance, deployment, namespace, stream, level, message []byte
	fields                                                        [][2][]byte
}

// nextFrame splits the first frame off b: the payload and the rest. io: need more data
// (n < 0 says how many bytes a frame needs at least), or ErrCorrupt.
func nextFrame(b []byte) (payload []byte, size int, err error) { return splitFrame(b, true) }

// splitFrame is nextFrame; verify false skips the checksum (sealed segments: zstd checks
// its content checksum when decompressing).
func splitFrame(b []byte, verify bool) (payload []byte, size int, err error) {
	l, n := binary.Uvarint(b)
	if n == 0 {
		return nil, 0, nil // need more
	}
	if n < 0 || l > maxFrame {
		return nil, 0, fmt.Errorf("%w: frame length", ErrCorrupt)
	}
	total := n + 4 + int(l)
	if len(b) < total {
		return nil, 0, nil
	}
	payload = b[n+4 : total]
	if verify && crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[n:]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return payload, total, nil
}

func readStr(b []byte) ([]byte, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}

// decodeView decodes a payload into v, reusing v.fields.
func decodeView(p []byte, v *view) error {
	t, n := binary.Varint(p)
	if n <= 0 {
		return fmt.Errorf("%w: time", ErrCorrupt)
	}
	v.t, p = t, p[n:]
	var ok bool
	for _, dst := range []*[]byte{&v.node, &v.instance, &v.deployment, &v.namespace, &v.stream, &v.level, &v.message} {
		if *dst, p, ok = readStr(p); !ok {
			return fmt.Errorf("%w: string", ErrCorrupt)
		}
	}
	nf, n := binary.Uvarint(p)
	if n <= 0 || nf > MaxFields {
		return fmt.Errorf("%w: field count", ErrCorrupt)
	}
	p = p[n:]
	v.fields = v.fields[:0]
	for range nf {
		var k, val []byte
		if k, p, ok = readStr(p); !ok {
			return fmt.Errorf("%w: field key", ErrCorrupt)
		}
		if val, p, ok = readStr(p); !ok {
			return fmt.Errorf("%w: field value", ErrCorrupt)
		}
		v.fields = append(v.fields, [2][]byte{k, val})
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: trailing bytes", ErrCorrupt)
	}
	return nil
}

// entry copies v out.
func (v *view) entry() Entry {
	e := Entry{Time: time.Unix(0, v.t).UTC(), Node: string(v.node), Instance: string(v.instance),
		Deployment: string(v.deployment), Namespace: string(v.namespace), Stream: string(v.stream),
		Level: string(v.level), Message: string(v.message)}
	if len(v.fields) > 0 {
		e.Fields = make(map[string]string, len(v.fields))
		for _, f := range v.fields {
			e.Fields[string(f[0])] = string(f[1])
		}
	}
	return e
}

// field returns the value of a named attribute: the entry's own ones, then its
// structured fields. service is the structured field "service", else the deployment, else
// the instance.
func (v *view) field(name string) ([]byte, bool) {
	switch name {
	case "level":
		return v.level, true
	case "instance":
		return v.instance, true
	case "node":
		return v.node, true
	case "deployment":
		return v.deployment, true
	case "namespace":
		if len(v.namespace) == 0 {
			return []byte("default"), true
		}
		return v.namespace, true
	case "stream":
		return v.stream, true
	}
	for _, f := range v.fields {
		if string(f[0]) == name {
			return f[1], true
		}
	}
	if name == "service" {
		if len(v.deployment) > 0 {
			return v.deployment, true
		}
		return v.instance, true
	}
	return nil, false
}
