package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
		}
	}))
	defer ok.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		c    Check
		want string
		out  string
	}{
		{Check{Kind: KindHTTP, Target: ok.URL + "/health"}, Passing, "200"},
		{Check{Kind: KindHTTP, Target: ok.URL + "/bad"}, Failing, "503"},
		{Check{Kind: KindTCP, Target: strings.TrimPrefix(ok.URL, "http://")}, Passing, "connected"},
		{Check{Kind: KindExec, Target: "echo fine"}, Passing, "fine"},
		{Check{Kind: KindExec, Target: "echo broken; exit 3"}, Failing, "broken (exit status 3)"},
		{Check{Kind: KindExec, Target: "sleep 5", TimeoutS: 1}, Failing, "timed out after 1s"},
	} {
		st, out := Probe(ctx, tc.c)
		if st != tc.want || !strings.Contains(out, tc.out) {
			t.Errorf("%s %q: %s %q, want %s %q", tc.c.Kind, tc.c.Target, st, out, tc.want, tc.out)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Check{Name: "db", Kind: KindTCP, Target: "127.0.0.1:5432", IntervalS: 10, TimeoutS: 2}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Check{
		{Name: "", Kind: KindTCP, Target: "a:1"},
		{Name: "x", Kind: KindTCP, Target: "a:1", Node: "n1", Instance: "i"},
		{Name: "x", Kind: KindTCP, Target: "a:1", IntervalS: 2, TimeoutS: 5},
		{Name: "x", Kind: KindHTTP, Target: "ftp://a/"},
		{Name: "x", Kind: KindExec, Target: " "},
	} {
		if err := c.Validate(); !errors.Is(err, ErrBadCheck) {
			t.Errorf("%+v: %v, want ErrBadCheck", c, err)
		}
	}
}
