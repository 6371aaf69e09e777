package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rads-lang/constellation/api"
)

// Blocking reads, as in Consul and Nomad: every list answer carries IndexHeader, the index
// of the last change to the state it shows; a client that passes that index back
// (?index=N) is answered when the state has changed since, or after ?wait= (default and
// at most MaxWait), with the list as it is then.

// IndexHeader carries a list's change index.
const IndexHeader = api.IndexHeader

// MaxWait is the longest (and the default) wait of a blocking read.
const MaxWait = 5 * time.Minute

// Indexer is the node's change index (state.Store).
type Indexer interface {
	Index(colls ...string) uint64
	WaitIndex(ctx context.Context, after uint64, colls ...string) (uint64, error)
}

// BlockingQuery is a parsed ?index=N&wait=D.
type BlockingQuery struct {
	Index uint64        // block while the index is at most this (0: do not block)
	Wait  time.Duration // the longest wait (capped at MaxWait)
}

// ParseBlocking reads index and wait from a query. wait without index, a negative or
// non-numeric index and a wait that is not a positive duration are errors naming the
// parameter and the accepted form.
func ParseBlocking(q url.Values) (BlockingQuery, error) {
	var b BlockingQuery
	if s := q.Get("index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return b, BadRequest("invalid index %q: the %s value of a previous answer, e.g. index=42", s, IndexHeader)
		}
		b.Index = n
	}
	b.Wait = MaxWait
	if s := q.Get("wait"); s != "" {
		if !q.Has("index") {
			return b, BadRequest("wait=%s needs index=N (the %s of a previous answer) to wait for a change after", s, IndexHeader)
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return b, BadRequest("invalid wait %q: a duration like 30s or 5m (at most %v)", s, MaxWait)
		}
		b.Wait = min(d, MaxWait)
	}
	return b, nil
}

// Block serves the blocking part of a read of the given collections: with ?index=N it
// waits until their index passes N, the wait ends or the request ends; then it sets
// IndexHeader to their index. The handler then reads its answer (after the index, so the
// answer holds at least every change the index counts). On bad parameters Block has
// answered the error and returns false.
func Block(w http.ResponseWriter, r *http.Request, ix Indexer, colls ...string) bool {
	q, err := ParseBlocking(r.URL.Query())
	if err != nil {
		WriteErr(w, err)
		return false
	}
	var idx uint64
	if q.Index > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), q.Wait)
		idx, _ = ix.WaitIndex(ctx, q.Index, colls...) // a wait that ends answers the list as it is
		cancel()
	} else {
		idx = ix.Index(colls...)
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(idx, 10))
	return true
}

// NoBody refuses a request body (DELETE takes its options in the query): any body is a 400
// ending with hint (e.g. "give the grace period as a query parameter: ?grace=5s").
func NoBody(r *http.Request, hint string) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	var b [1]byte
	n, _ := io.ReadFull(r.Body, b[:])
	if n > 0 || r.ContentLength > 0 {
		return BadRequest("%s %s takes no request body; %s", r.Method, r.URL.Path, hint)
	}
	return nil
}
