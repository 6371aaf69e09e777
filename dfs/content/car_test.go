package content

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	carv2 "github.com/ipld/go-car/v2"
)

func exportCAR(t *testing.T, s *Store, a Added) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.ExportCAR(ctxT(t), a.Root, &buf, nil); err != nil {
		t.Fatalf("ExportCAR: %v", err)
	}
	return buf.Bytes()
}

func TestCARRoundTripV1AndV2(t *testing.T) {
	src := newStore(t, nil, nil)
	data := randBytes(50, 1<<20+999)
	a := add(t, src, data, "")
	car1 := exportCAR(t, src, a)
	var car2 bytes.Buffer
	if err := carv2.WrapV1(bytes.NewReader(car1), &car2); err != nil {
		t.Fatal(err)
	}
	for name, car := range map[string][]byte{"v1": car1, "v2": car2.Bytes()} {
		dst := newStore(t, nil, nil)
		roots, err := dst.ImportCAR(ctxT(t), bytes.NewReader(car), 64<<20)
		if err != nil {
			t.Fatalf("%s: ImportCAR: %v", name, err)
		}
		if len(roots) != 1 || roots[0] != a.Root {
			t.Fatalf("%s: roots %v; want [%s]", name, roots, a.Root)
		}
		if got := readAll(t, dst, a.Root); !bytes.Equal(got, data) {
			t.Fatalf("%s: imported file differs", name)
		}
		if st, _ := dst.Stat(ctxT(t), a.Root); !st.Leased {
			t.Errorf("%s: imported blocks are not held by a lease: %+v", name, st)
		}
	}
}

func TestImportCARRejectsBadInput(t *testing.T) {
	src := newStore(t, nil, nil)
	a := add(t, src, randBytes(51, 600<<10), "")
	car := exportCAR(t, src, a)

	tampered := append([]byte(nil), car...)
	tampered[len(tampered)-100] ^= 1 // inside the last block's data
	truncated := car[:len(car)-5000]
	for name, c := range map[string]struct {
		in   []byte
		max  int64
		want error
	}{
		"tampered block": {tampered, 64 << 20, ErrBadData},
		"truncated":      {truncated, 64 << 20, ErrBadData},
		"over the bound": {car, 100 << 10, ErrTooLarge},
		"not a CAR":      {[]byte("hello, this is not a car file"), 64 << 20, ErrBadData},
		"empty":          {nil, 64 << 20, ErrBadData},
	} {
		dst := newStore(t, nil, nil)
		_, err := dst.ImportCAR(ctxT(t), bytes.NewReader(c.in), c.max)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v; want %v", name, err, c.want)
		}
		if u := dst.Usage(); u.LeasedBytes != 0 || u.PinnedBytes != 0 {
			t.Errorf("%s: a refused import left protected blocks: %+v", name, u)
		}
	}
}

func TestGateway(t *testing.T) {
	s := newStore(t, nil, nil)
	data := randBytes(52, 700<<10)
	a := add(t, s, data, "")
	srv := httptest.NewServer(s.Gateway())
	defer srv.Close()
	get := func(method, path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, car := get("GET", "/ipfs/"+a.Root.String()+"?format=car")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") == "" {
		t.Fatalf("format=car: %d %s", resp.StatusCode, car)
	}
	dst := newStore(t, nil, nil)
	roots, err := dst.ImportCAR(ctxT(t), bytes.NewReader(car), 64<<20)
	if err != nil || len(roots) != 1 || roots[0] != a.Root {
		t.Fatalf("gateway CAR import: %v %v", roots, err)
	}
	if got := readAll(t, dst, a.Root); !bytes.Equal(got, data) {
		t.Fatal("gateway CAR content differs")
	}
	resp, raw := get("GET", "/ipfs/"+a.Root.String()+"?format=raw")
	blk, _ := s.bs.Get(ctxT(t), a.Root)
	if resp.StatusCode != 200 || !bytes.Equal(raw, blk.RawData()) {
		t.Errorf("format=raw: %d, %d bytes; want the root block's %d", resp.StatusCode, len(raw), len(blk.RawData()))
	}
	if resp, _ := get("POST", "/ipfs/"+a.Root.String()); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d; want 405", resp.StatusCode)
	}
	if resp, _ := get("GET", "/ipns/example.com"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/ipns/: %d; want 404", resp.StatusCode)
	}
}
