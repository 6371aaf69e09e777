package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/testutil"
)

// TestSendAndBroadcast: send delivers one `message` event with the returned ID to the
// target only; broadcast delivers one to every node; an unknown node is a 404 that says
// what to use instead.
func TestSendAndBroadcast(t *testing.T) {
	ns := startCluster(t, 3, nil)
	testutil.WaitFor(t, 20*time.Second, "convergence", func() (bool, string) { return allSee(ns, ns, api.StatusAlive) })
	ctx := context.Background()
	cl := api.NewClient(ns[0].cfg.DataDir, "", "")

	sent, err := cl.Send(ctx, "n1", "greet", json.RawMessage(`{"hello":"n1"}`))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if sent.ID == "" || len(sent.Nodes) != 1 || sent.Nodes[0] != "n1" {
		t.Fatalf("send result = %+v; want an ID and nodes [n1]", sent)
	}
	// By peer ID too.
	sent2, err := cl.Send(ctx, ns[2].ID().String(), "greet", json.RawMessage(`"by-id"`))
	if err != nil {
		t.Fatalf("send by id: %v", err)
	}
	bc, err := cl.Broadcast(ctx, "announce", json.RawMessage(`[1,2,3]`))
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if bc.ID == "" || len(bc.Nodes) != 3 {
		t.Fatalf("broadcast result = %+v; want an ID and 3 nodes", bc)
	}

	messages := func(n *testNode) map[string][]api.MessageEvent {
		evs := readEvents(t, n.Node, time.Second, func(evs []api.Event) bool { return false }) // delivery precedes the ack
		out := map[string][]api.MessageEvent{}
		for _, e := range evs {
			if e.Type == api.EventMessage && e.Msg != nil {
				out[e.Msg.ID] = append(out[e.Msg.ID], *e.Msg)
			}
		}
		return out
	}
	for i, n := range ns {
		got := messages(n)
		if len(got[bc.ID]) != 1 {
			t.Errorf("n%d got the broadcast %d times; want once", i, len(got[bc.ID]))
		} else if m := got[bc.ID][0]; m.Type != "announce" || string(m.Data) != "[1,2,3]" || m.From != ns[0].ID().String() || m.FromName != "n0" {
			t.Errorf("n%d broadcast event = %+v", i, m)
		}
		wantSend := map[int]int{1: 1}[i]
		if len(got[sent.ID]) != wantSend {
			t.Errorf("n%d got the send to n1 %d times; want %d", i, len(got[sent.ID]), wantSend)
		}
		if i == 1 && wantSend == 1 {
			if m := got[sent.ID][0]; m.Type != "greet" || string(m.Data) != `{"hello":"n1"}` {
				t.Errorf("n1 message = %+v", m)
			}
		}
		if n := len(got[sent2.ID]); n != map[int]int{2: 1}[i] {
			t.Errorf("n%d got the send-by-id %d times", i, n)
		}
	}

	_, err = cl.Send(ctx, "nobody", "greet", json.RawMessage(`1`))
	var re *api.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusNotFound || re.Code != "not_found" || !strings.Contains(re.Error(), `"nobody"`) || !strings.Contains(re.Error(), "constellation nodes") {
		t.Fatalf("send to unknown node: err = %#v; want 404 not_found naming the node and where to look", err)
	}
}

type apiCase struct {
	name       string
	method     string
	path       string
	body       string
	wantStatus int
	wantIn     string // substring of the error message
}

func runAPICases(t *testing.T, cl *http.Client, base, token string, cases []apiCase) {
	t.Helper()
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.wantStatus {
			t.Errorf("%s: %s %s = HTTP %d %s; want %d", c.name, c.method, c.path, resp.StatusCode, b, c.wantStatus)
			continue
		}
		if c.wantStatus >= 300 {
			var ae api.APIError
			if err := json.Unmarshal(b, &ae); err != nil || ae.Error == "" || ae.Code == "" {
				t.Errorf("%s: error body %s is not {error, code}", c.name, b)
			} else if !strings.Contains(ae.Error, c.wantIn) {
				t.Errorf("%s: error %q does not mention %q", c.name, ae.Error, c.wantIn)
			}
		}
	}
}

// TestAPIBadInput: the local API answers malformed requests with a fitting status and an
// error that says what is wrong.
func TestAPIBadInput(t *testing.T) {
	n := startTestNode(t, nodeConfig(t, "solo"))
	big := `{"node":"solo","type":"t","data":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`
	runAPICases(t, unixHTTP(n.Node), "http://unix", "", []apiCase{
		{"ok", "POST", "/v1/send", `{"node":"solo","type":"t","data":{"a":1}}`, 200, ""},
		{"unknown field", "POST", "/v1/send", `{"node":"solo","type":"t","data":1,"colour":"red"}`, 400, `"colour"`},
		{"missing node", "POST", "/v1/send", `{"type":"t","data":1}`, 400, `"node"`},
		{"missing type", "POST", "/v1/send", `{"node":"solo","data":1}`, 400, `"type"`},
		{"missing data", "POST", "/v1/broadcast", `{"type":"t"}`, 400, `"data"`},
		{"wrong type", "POST", "/v1/send", `{"node":5,"type":"t","data":1}`, 400, `"node"`},
		{"not json", "POST", "/v1/broadcast", `type=t`, 400, "invalid JSON"},
		{"two values", "POST", "/v1/broadcast", `{"type":"t","data":1}{}`, 400, "more than one"},
		{"too large", "POST", "/v1/send", big, 413, "bytes"},
		{"unknown route", "GET", "/v1/nope", "", 404, "/v1/nope"},
		{"wrong method", "GET", "/v1/send", "", 405, "use POST"},
		{"unknown event type", "GET", "/v1/events?type=node_join,bogus", "", 400, "bogus"},
		{"unknown node", "POST", "/v1/send", `{"node":"ghost","type":"t","data":1}`, 404, "ghost"},
	})
}

// TestAPITCPToken: the TCP API is TLS only; it refuses requests without the right bearer
// token (401) and serves them with it; the Client finds the generated token and the
// certificate's fingerprint in the data dir.
func TestAPITCPToken(t *testing.T) {
	cfg := nodeConfig(t, "tcp")
	cfg.APIListen = "127.0.0.1:0"
	n := startTestNode(t, cfg)
	if n.APIAddr == "" || n.APIFingerprint == "" {
		t.Fatalf("APIAddr %q, APIFingerprint %q with APIListen set; want both", n.APIAddr, n.APIFingerprint)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"api.token", 0o600}, {httpapi.CertFile, 0o600}, {httpapi.KeyFile, 0o600}, {api.FingerprintFile, 0o644}} {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, f.name))
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Fatalf("%s: %v, mode %v; want %v", f.name, err, fi, f.mode)
		}
	}
	b, _ := os.ReadFile(filepath.Join(cfg.DataDir, "api.token"))
	token := strings.TrimSpace(string(b))
	if st := n.Status(); st.APIAddr != n.APIAddr || st.APIFingerprint != n.APIFingerprint {
		t.Fatalf("Status api_addr %q api_fingerprint %q; want %q %q", st.APIAddr, st.APIFingerprint, n.APIAddr, n.APIFingerprint)
	}
	if !strings.Contains(n.log.String(), "api_fingerprint="+n.APIFingerprint) {
		t.Fatalf("start log lacks api_fingerprint=%s:\n%s", n.APIFingerprint, n.log.String())
	}
	base := "https://" + n.APIAddr
	cl := pinnedHTTPClient(t, n.APIFingerprint)
	runAPICases(t, cl, base, "", []apiCase{{"no token", "GET", "/v1/status", "", 401, "bearer token"}})
	runAPICases(t, cl, base, "wrong-"+token, []apiCase{{"wrong token", "GET", "/v1/status", "", 401, "bearer token"}})
	runAPICases(t, cl, base, token, []apiCase{
		{"right token", "GET", "/v1/status", "", 200, ""},
		{"right token, bad body", "POST", "/v1/broadcast", `{}`, 400, `"type"`},
	})
	// Plain HTTP is not served: the TLS server answers it with a 400, never a route.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + n.APIAddr + "/v1/status")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), cfg.Node) {
			t.Fatalf("plain HTTP to the TLS API: HTTP %d %s; want a 400 and no answer", resp.StatusCode, body)
		}
	}
	// The Client reads the token and the pin from the data dir, or takes them explicitly.
	if _, err := api.NewClient(cfg.DataDir, n.APIAddr, "").Status(context.Background()); err != nil {
		t.Fatalf("client with the token and fingerprint from the data dir: %v", err)
	}
	c, err := api.NewClientConfig(api.ClientConfig{DataDir: t.TempDir(), API: "https://" + n.APIAddr, Token: token,
		Fingerprint: strings.ToUpper(strings.TrimPrefix(n.APIFingerprint, "sha256:")), KnownNodes: filepath.Join(t.TempDir(), "kn")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("client with an explicit fingerprint (upper case, no prefix): %v", err)
	}
	c, err = api.NewClientConfig(api.ClientConfig{DataDir: t.TempDir(), API: n.APIAddr, Token: "nope", Fingerprint: n.APIFingerprint})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	var re *api.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		t.Fatalf("client with a wrong token: %v; want a 401 RemoteError", err)
	}
	// The socket is only for its owner.
	if fi, err := os.Stat(n.SocketPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestAPITLSRestartKeepsCertificate: a restarted node serves the same certificate (clients'
// pins stay valid); a damaged certificate is replaced, with a new fingerprint in the file.
func TestAPITLSRestartKeepsCertificate(t *testing.T) {
	cfg := nodeConfig(t, "tls")
	cfg.APIListen = "127.0.0.1:0"
	n := startTestNode(t, cfg)
	first := n.APIFingerprint
	known := filepath.Join(t.TempDir(), "known_nodes")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startTestNode(t, cfg)
	if n.APIFingerprint != first {
		t.Fatalf("fingerprint after a restart %s; want the same %s", n.APIFingerprint, first)
	}
	c, err := api.NewClientConfig(api.ClientConfig{DataDir: t.TempDir(), API: n.APIAddr,
		Token: n.api.Token(), Fingerprint: first, KnownNodes: known})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("client pinned to the first certificate after a restart: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, httpapi.CertFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	n = startTestNode(t, cfg)
	fp, _ := os.ReadFile(filepath.Join(cfg.DataDir, api.FingerprintFile))
	if n.APIFingerprint == first || strings.TrimSpace(string(fp)) != n.APIFingerprint {
		t.Fatalf("after a damaged certificate: fingerprint %s (file %q); want a new one, also in the file", n.APIFingerprint, fp)
	}
	c, err = api.NewClientConfig(api.ClientConfig{DataDir: t.TempDir(), API: n.APIAddr,
		Token: n.api.Token(), Fingerprint: first, KnownNodes: known})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	if pe := (*api.PinError)(nil); !errors.As(err, &pe) || pe.Got != n.APIFingerprint || pe.Want != first {
		t.Fatalf("client pinned to the replaced certificate: %v; want a PinError naming both fingerprints", err)
	}
}

// pinnedHTTPClient is an HTTPS client that accepts only the certificate with fingerprint fp.
func pinnedHTTPClient(t testing.TB, fp string) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // the pin below is the check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if got := api.Fingerprint(cs.PeerCertificates[0].Raw); got != fp {
				return fmt.Errorf("certificate %s; want %s", got, fp)
			}
			return nil
		},
	}}}
}

// TestClientNoNode: a client pointed at a data dir without a node says how to fix it.
func TestClientNoNode(t *testing.T) {
	_, err := api.NewClient(t.TempDir(), "", "").Status(context.Background())
	if !errors.Is(err, api.ErrNoNode) || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("err = %v; want ErrNoNode suggesting --data-dir", err)
	}
}

// TestDataDirInUse: a second node on a running node's data dir refuses to start, and the
// running node is unharmed.
func TestDataDirInUse(t *testing.T) {
	cfg := nodeConfig(t, "first")
	n := startTestNode(t, cfg)
	cfg2 := cfg
	cfg2.Node = "second"
	_, err := newTestNode(t, cfg2)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Fatalf("second node on the same dir: err = %v; want ErrDataDirInUse naming the dir", err)
	}
	if _, err := api.NewClient(cfg.DataDir, "", "").Status(context.Background()); err != nil {
		t.Fatalf("first node after the refused second: %v", err)
	}
	if n.Status().Name != "first" {
		t.Fatal("first node changed")
	}
}

// TestCorruptStateRefused: a corrupt state file stops the node with a message naming the
// file and how to recover, and the file is left exactly as it was.
func TestCorruptStateRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func([]byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte(strings.Repeat("not a bolt file ", 4096)) }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/3] }},
		{"both metas flipped", func(b []byte) []byte { return flipBytes(flipBytes(b, 16, 64), 4096+16, 4096+64) }},
		{"flipped data pages", func(b []byte) []byte { return flipBytes(b, 2*4096, len(b)) }},
	} {
		// Each case on a fresh dir: a file bbolt panics on may leave its lock held in this
		// process (a real node exits after refusing).
		t.Run(tc.name, func(t *testing.T) {
			cfg := nodeConfig(t, "c")
			n := startTestNode(t, cfg)
			if err := n.PutState("test", map[string][]byte{"k": []byte("v")}); err != nil {
				t.Fatal(err)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(cfg.DataDir, "state.db")
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			bad := tc.mangle(orig)
			if err := os.WriteFile(p, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = newTestNode(t, cfg)
			var ce *CorruptStateError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "mv ") {
				t.Fatalf("New = %v; want a CorruptStateError naming %s and how to recover", err, p)
			}
			after, _ := os.ReadFile(p)
			if string(after) != string(bad) {
				t.Fatal("the corrupt state file was modified")
			}
		})
	}
}

func flipBytes(b []byte, from, to int) []byte {
	out := append([]byte(nil), b...)
	for i := from; i < to && i < len(out); i++ {
		out[i] ^= 0xff
	}
	return out
}
