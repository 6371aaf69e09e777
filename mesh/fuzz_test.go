package mesh

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/rads-lang/constellation/api"
)

// FuzzParseHop feeds arbitrary mesh headers (as another node could send them) to the hop
// header decoder: it must never panic, and whatever it accepts names an endpoint of this
// node with a valid service, namespace and caller.
func FuzzParseHop(f *testing.F) {
	const self = "12D3KooWSelf"
	f.Add(self+"/default/user-service/port-8080", "default/")
	f.Add(self+"/team-a/ledger/ledger-0", "default/web")
	f.Add("other/default/x/y", "default/a")
	f.Add(self+"/default/x", "nonamespace")
	f.Add(self+"/Default/x/y", "/x")
	f.Fuzz(func(t *testing.T, ep, caller string) {
		h := http.Header{}
		h.Set(hdrEndpoint, ep)
		h.Set(hdrCaller, caller)
		r, err := parseHop(h, self)
		if err != nil {
			return
		}
		if !strings.HasPrefix(r.endpoint, self+"/") || validName("s", r.service) != nil || r.targetNS == "" || r.callerNS == "" {
			t.Fatalf("accepted %q %q as %+v", ep, caller, r)
		}
		if r.caller != "" && validName("c", r.caller) != nil {
			t.Fatalf("accepted caller %q", r.caller)
		}
	})
}

// FuzzMeshTarget feeds arbitrary Host headers and paths to the loopback entry point's
// service naming.
func FuzzMeshTarget(f *testing.F) {
	f.Add("user-service.mesh", "/users/1")
	f.Add("127.0.0.1:9000", "/user-service/users/1")
	f.Add("ledger.team-a.mesh:80", "/")
	f.Fuzz(func(t *testing.T, host, path string) {
		req, err := http.NewRequest("GET", "http://x/", nil)
		if err != nil {
			return
		}
		req.Host = host
		req.URL.Path = path
		ns, name, rest, ok := meshTarget(req)
		if ok && name == "" {
			t.Fatalf("accepted an empty name from %q %q", host, path)
		}
		_, _ = ns, rest
	})
}

// FuzzDecodeControl feeds arbitrary bodies (as another member could send them) to the
// decoder of forwarded registry writes: no panic, and nothing over the bound is accepted.
func FuzzDecodeControl(f *testing.F) {
	f.Add([]byte(`{"name":"web","port":8080,"instance":"web-1"}`))
	f.Add([]byte(`{"name":"web","bogus":1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req api.MeshRegisterRequest
		if decodeControl(bytes.NewReader(b), &req) == nil && len(b) > maxControlBody {
			t.Fatalf("accepted a body of %d bytes", len(b))
		}
		var d api.MeshDeregisterRequest
		_ = decodeControl(bytes.NewReader(b), &d)
	})
}
