package logs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/sandbox"
)

// Output captures instances' output into the store, one entry per line
// (sandbox.OutputSink). A line longer than MaxMessageBytes is cut into pieces; a partial
// last line waits for its end (at most MaxMessageBytes).
type Output struct {
	store *Store
	node  string
	// Meta returns an instance's deployment and namespace (nil: none).
	Meta func(instance string) (deployment, namespace string)

	mu      sync.Mutex // guards partial
	partial map[string][]byte
}

// NewOutput returns the capture of instance output into s, for node.
func NewOutput(s *Store, node string, meta func(instance string) (deployment, namespace string)) *Output {
	return &Output{store: s, node: node, Meta: meta, partial: map[string][]byte{}}
}

var _ sandbox.OutputSink = (*Output)(nil)

// InstanceOutput implements sandbox.OutputSink.
func (o *Output) InstanceOutput(instance string, stream sandbox.Stream, b []byte, at time.Time) {
	key := instance + "\x00" + string(stream)
	o.mu.Lock()
	buf := append(o.partial[key], b...)
	var lines []string
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			if len(buf) < MaxMessageBytes {
				break
			}
			i = MaxMessageBytes
			lines = append(lines, string(buf[:i]))
			buf = buf[i:]
			continue
		}
		line := buf[:i]
		for len(line) > MaxMessageBytes {
			lines = append(lines, string(line[:MaxMessageBytes]))
			line = line[MaxMessageBytes:]
		}
		lines = append(lines, string(bytes.TrimSuffix(line, []byte("\r"))))
		buf = buf[i+1:]
	}
	if len(buf) == 0 {
		delete(o.partial, key)
	} else {
		o.partial[key] = append([]byte(nil), buf...)
	}
	o.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	var dep, ns string
	if o.Meta != nil {
		dep, ns = o.Meta(instance)
	}
	level := ""
	if stream == sandbox.Stderr {
		level = "error"
	}
	es := make([]Entry, 0, len(lines))
	for _, l := range lines {
		lv := level
		if lv == "" {
			lv = sniffLevel(l)
		}
		es = append(es, Entry{Time: at, Node: o.node, Instance: instance, Deployment: dep, Namespace: ns,
			Stream: string(stream), Level: lv, Message: l})
	}
	_ = o.store.Append(es...) // refused only when closing
}

// sniffLevel guesses the level of a line of output by its first words ("ERROR ...",
// "level=warn", "[WARN]"); info otherwise.
func sniffLevel(l string) string {
	head := strings.ToLower(l[:min(len(l), 48)])
	for _, c := range []struct{ word, level string }{
		{"error", "error"}, {"fatal", "error"}, {"panic", "error"}, {"warn", "warn"}, {"debug", "debug"},
	} {
		if i := strings.Index(head, c.word); i >= 0 && (i == 0 || !isWordByte(head[i-1])) {
			return c.level
		}
	}
	return "info"
}

// Handler is a slog.Handler that writes the node's own log records into the store
// (stream "node", level info and above) and passes them to the next handler.
type Handler struct {
	next  slog.Handler
	store *Store
	node  string
	attrs []slog.Attr
	group string
}

// NewHandler wraps next so that the node's own log also goes into s.
func NewHandler(next slog.Handler, s *Store, node string) *Handler {
	return &Handler{next: next, store: s, node: node}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		e := Entry{Time: r.Time, Node: h.node, Stream: StreamNode, Level: levelName(r.Level), Message: r.Message}
		if len(e.Message) > MaxMessageBytes {
			e.Message = e.Message[:MaxMessageBytes]
		}
		fields := map[string]string{}
		for _, a := range h.attrs {
			addAttr(fields, "", a)
		}
		r.Attrs(func(a slog.Attr) bool {
			addAttr(fields, h.group, a)
			return len(fields) < MaxFields
		})
		if len(fields) > 0 {
			e.Fields = fields
		}
		if e.Validate() != nil {
			e.Fields = nil
		}
		_ = h.store.Append(e)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func addAttr(m map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Key == "" || len(m) >= MaxFields {
		return
	}
	key := prefix + a.Key
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			addAttr(m, key+".", g)
		}
		return
	}
	v := a.Value.String()
	if len(v) > MaxFieldValue {
		v = v[:MaxFieldValue]
	}
	if len(key) <= MaxFieldKey && validKey(key) {
		m[key] = v
	}
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), prefixed(h.group, as)...)
	return &c
}

func prefixed(group string, as []slog.Attr) []slog.Attr {
	if group == "" {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: group + a.Key, Value: a.Value}
	}
	return out
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// FieldText turns a JSON field value into stored text: a string as it is, anything else
// as compact JSON.
func FieldText(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("empty value")
	}
	if raw[0] == '"' {
		var s string
		if err := jsonUnmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var b bytes.Buffer
	if err := jsonCompact(&b, raw); err != nil {
		return "", err
	}
	return b.String(), nil
}
