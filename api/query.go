package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Blocking reads, as Consul's and Nomad's: every list answer carries IndexHeader; a read
// with WaitIndex set to that value is answered once the list has changed, or after
// WaitTime with the list as it is.

// IndexHeader carries the change index of a list answer (per node and process: pass it
// back to the node that gave it).
const IndexHeader = "X-Constellation-Index"

// NextHeader carries where the next page of GET /v1/instances starts (pass it as after=).
const NextHeader = "X-Constellation-Next"

// QueryOptions make a list read blocking.
type QueryOptions struct {
	// WaitIndex is the QueryMeta.LastIndex of a previous answer: the read is answered when
	// the list has changed since (0: at once).
	WaitIndex uint64
	// WaitTime bounds the wait (0: the node's maximum, 5 minutes).
	WaitTime time.Duration
}

// QueryMeta is what a list answer says besides the list.
type QueryMeta struct {
	LastIndex uint64 // IndexHeader: pass it as the next WaitIndex
	Next      string // NextHeader: where the next page starts ("" on the last page)
}

// values is the query string of q (nil: none).
func (q *QueryOptions) values() url.Values {
	v := url.Values{}
	if q == nil || q.WaitIndex == 0 {
		return v
	}
	v.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	if q.WaitTime > 0 {
		v.Set("wait", q.WaitTime.String())
	}
	return v
}

// query is a GET of path with the query v, decoded into out, with the answer's QueryMeta.
func (c *Client) query(ctx context.Context, path string, v url.Values, out any) (QueryMeta, error) {
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	h, err := c.doHeader(ctx, http.MethodGet, path, nil, out)
	var meta QueryMeta
	if h != nil {
		meta.LastIndex, _ = strconv.ParseUint(h.Get(IndexHeader), 10, 64)
		meta.Next = h.Get(NextHeader)
	}
	return meta, err
}
