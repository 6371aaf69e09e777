package traces

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// stored is a span as the ring keeps it: IDs as bytes, times as nanoseconds, repeated
// names interned, attributes in one string ("k\x00v\x00k\x00v"). A span with three
// attributes takes about a third of the memory of a Span with its map.
type stored struct {
	trace     [16]byte
	span      [8]byte
	parent    [8]byte
	hasParent bool
	start     int64
	end       int64
	service   string
	name      string
	kind      string
	status    string
	statusMsg string
	node      string
	instance  string
	attrs     string
}

// interner shares the strings spans repeat (services, operations, kinds, nodes).
type interner struct {
	m map[string]string
}

const maxInterned = 20000

func (in *interner) get(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 256)
	}
	s = strings.Clone(s)
	in.m[s] = s
	return s
}

// compact converts a validated span (called with the store's lock held).
func (in *interner) compact(sp *Span) stored {
	var c stored
	hex.Decode(c.trace[:], []byte(sp.TraceID))
	hex.Decode(c.span[:], []byte(sp.SpanID))
	if sp.ParentID != "" {
		hex.Decode(c.parent[:], []byte(sp.ParentID))
		c.hasParent = true
	}
	c.start, c.end = sp.Start.UnixNano(), sp.End.UnixNano()
	c.service, c.name, c.kind, c.status = in.get(sp.Service), in.get(sp.Name), in.get(sp.Kind), in.get(sp.Status)
	c.node, c.instance, c.statusMsg = in.get(sp.Node), in.get(sp.Instance), sp.StatusMsg
	if len(sp.Attrs) > 0 {
		keys := make([]string, 0, len(sp.Attrs))
		for k := range sp.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k)
			b.WriteByte(0)
			b.WriteString(sp.Attrs[k])
			b.WriteByte(0)
		}
		c.attrs = b.String()
	}
	return c
}

func (c *stored) traceID() string { return hex.EncodeToString(c.trace[:]) }

func (c *stored) duration() time.Duration { return time.Duration(c.end - c.start) }

// span expands c.
func (c *stored) expand() Span {
	sp := Span{TraceID: c.traceID(), SpanID: hex.EncodeToString(c.span[:]), Service: c.service, Name: c.name,
		Kind: c.kind, Start: time.Unix(0, c.start).UTC(), End: time.Unix(0, c.end).UTC(), Status: c.status,
		StatusMsg: c.statusMsg, Node: c.node, Instance: c.instance}
	if c.hasParent {
		sp.ParentID = hex.EncodeToString(c.parent[:])
	}
	if c.attrs != "" {
		sp.Attrs = map[string]string{}
		rest := c.attrs
		for rest != "" {
			k, r, _ := strings.Cut(rest, "\x00")
			v, r2, _ := strings.Cut(r, "\x00")
			sp.Attrs[k] = v
			rest = r2
		}
	}
	return sp
}
