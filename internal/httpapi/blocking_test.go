package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
)

// fakeIndex is an Indexer whose index the test raises.
type fakeIndex struct {
	mu  sync.Mutex // guards idx, ch
	idx uint64
	ch  chan struct{}
}

func newFakeIndex(i uint64) *fakeIndex { return &fakeIndex{idx: i, ch: make(chan struct{})} }

func (f *fakeIndex) Index(...string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idx
}

func (f *fakeIndex) raise() {
	f.mu.Lock()
	f.idx++
	close(f.ch)
	f.ch = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeIndex) WaitIndex(ctx context.Context, after uint64, _ ...string) (uint64, error) {
	for {
		f.mu.Lock()
		idx, ch := f.idx, f.ch
		f.mu.Unlock()
		if idx > after {
			return idx, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return idx, ctx.Err()
		}
	}
}

func TestParseBlocking(t *testing.T) {
	for _, c := range []struct {
		query string
		want  BlockingQuery
		err   string
	}{
		{"", BlockingQuery{0, MaxWait}, ""},
		{"index=7", BlockingQuery{7, MaxWait}, ""},
		{"index=7&wait=30s", BlockingQuery{7, 30 * time.Second}, ""},
		{"index=7&wait=1h", BlockingQuery{7, MaxWait}, ""}, // capped
		{"index=-1", BlockingQuery{}, `invalid index "-1"`},
		{"index=seven", BlockingQuery{}, "X-Constellation-Index"},
		{"index=7&wait=30", BlockingQuery{}, `invalid wait "30": a duration like 30s`},
		{"index=7&wait=-5s", BlockingQuery{}, `invalid wait "-5s"`},
		{"wait=5s", BlockingQuery{}, "needs index=N"},
	} {
		q, _ := url.ParseQuery(c.query)
		got, err := ParseBlocking(q)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v; want one containing %q", c.query, err, c.err)
			}
			if st, _, _ := Status(err); st != http.StatusBadRequest {
				t.Errorf("%q: status %d; want 400", c.query, st)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q = %+v, %v; want %+v", c.query, got, err, c.want)
		}
	}
}

// TestBlock: without index the answer is at once with the header; with the current index
// it waits for a change (and not longer); with an old index it answers at once; the wait
// parameter bounds the wait; bad parameters are answered with a 400.
func TestBlock(t *testing.T) {
	ix := newFakeIndex(5)
	h := func(w http.ResponseWriter, r *http.Request) {
		if Block(w, r, ix, "x") {
			WriteJSON(w, http.StatusOK, ix.Index())
		}
	}
	call := func(query string) (*httptest.ResponseRecorder, time.Duration) {
		t0 := time.Now()
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/v1/x?"+query, nil))
		return rec, time.Since(t0)
	}
	if rec, _ := call(""); rec.Code != 200 || rec.Header().Get(IndexHeader) != "5" {
		t.Fatalf("plain read: %d, header %q; want 200 with 5", rec.Code, rec.Header().Get(IndexHeader))
	}
	if rec, d := call("index=4&wait=10s"); rec.Header().Get(IndexHeader) != "5" || d > 2*time.Second {
		t.Fatalf("old index: header %q after %v; want 5 at once", rec.Header().Get(IndexHeader), d)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		ix.raise()
	}()
	if rec, d := call("index=5&wait=10s"); rec.Header().Get(IndexHeader) != "6" || d < 40*time.Millisecond || d > 5*time.Second {
		t.Fatalf("blocking read: header %q after %v; want 6 after the change (~50ms)", rec.Header().Get(IndexHeader), d)
	}
	if rec, d := call("index=6&wait=50ms"); rec.Code != 200 || rec.Header().Get(IndexHeader) != "6" || d < 40*time.Millisecond {
		t.Fatalf("wait ends: %d, header %q after %v; want 200 with 6 after ~50ms", rec.Code, rec.Header().Get(IndexHeader), d)
	}
	rec, _ := call("index=x")
	var ae api.APIError
	if rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &ae) != nil || !strings.Contains(ae.Error, "index") {
		t.Fatalf("bad index: %d %s; want 400 naming index", rec.Code, rec.Body)
	}
}

func TestNoBody(t *testing.T) {
	r := httptest.NewRequest("DELETE", "/v1/x", nil)
	if err := NoBody(r, "use ?grace=5s"); err != nil {
		t.Fatalf("no body: %v", err)
	}
	r = httptest.NewRequest("DELETE", "/v1/x", strings.NewReader(`{"grace_s":1}`))
	err := NoBody(r, "use ?grace=5s")
	if err == nil || !strings.Contains(err.Error(), "takes no request body; use ?grace=5s") {
		t.Fatalf("body: %v; want the hint", err)
	}
	if st, _, _ := Status(err); st != http.StatusBadRequest {
		t.Fatalf("body: status %d; want 400", st)
	}
}
