package node

import (
	"context"
	"encoding/json"
	"errors"
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

// TestAPITCPToken: the TCP API refuses requests without the right bearer token (401) and
// serves them with it; the Client finds the generated token in the data dir.
func TestAPITCPToken(t *testing.T) {
	cfg := nodeConfig(t, "tcp")
	cfg.APIListen = "127.0.0.1:0"
	n := startTestNode(t, cfg)
	if n.APIAddr == "" {
		t.Fatal("APIAddr empty with APIListen set")
	}
	tokFile := filepath.Join(cfg.DataDir, "api.token")
	fi, err := os.Stat(tokFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, fi)
	}
	b, _ := os.ReadFile(tokFile)
	token := strings.TrimSpace(string(b))
	base := "http://" + n.APIAddr
	cl := &http.Client{Timeout: 10 * time.Second}
	runAPICases(t, cl, base, "", []apiCase{{"no token", "GET", "/v1/status", "", 401, "bearer token"}})
	runAPICases(t, cl, base, "wrong-"+token, []apiCase{{"wrong token", "GET", "/v1/status", "", 401, "bearer token"}})
	runAPICases(t, cl, base, token, []apiCase{
		{"right token", "GET", "/v1/status", "", 200, ""},
		{"right token, bad body", "POST", "/v1/broadcast", `{}`, 400, `"type"`},
	})
	// The Client reads the token from the data dir, or takes it explicitly.
	if _, err := api.NewClient(cfg.DataDir, n.APIAddr, "").Status(context.Background()); err != nil {
		t.Fatalf("client with the token from the data dir: %v", err)
	}
	_, err = api.NewClient(t.TempDir(), n.APIAddr, "nope").Status(context.Background())
	var re *api.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
		t.Fatalf("client with a wrong token: %v; want a 401 RemoteError", err)
	}
	// The socket is only for its owner.
	if fi, err := os.Stat(n.SocketPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v; want 0600", fi.Mode().Perm(), err)
	}
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
