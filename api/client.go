package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Client talks to a node's local API, over its Unix socket or a TCP address.
type Client struct {
	base  string // "http://unix", "https://host:port" or (instance API) "http://host:port"
	token string
	http  *http.Client
	where string // for error messages
	err   error  // a configuration error, returned by every request
}

// ErrNoNode means no node answers at the given data dir or address.
var ErrNoNode = errors.New("node: no running node")

// ClientConfig says how a Client finds and verifies its node. Zero values take the
// documented defaults.
type ClientConfig struct {
	// DataDir is the node's data directory (default DefaultDataDir()): its api.sock, and for
	// a TCP API its api.token and api.fingerprint.
	DataDir string
	// API is the node's address (default $CONSTELLATION_API; empty: the Unix socket in
	// DataDir): "HOST:PORT" or "https://HOST:PORT" for the TLS API, "unix:/path/api.sock", or
	// "http://HOST:PORT" for the plain instance API (see Token).
	API string
	// Token is the bearer token (default $CONSTELLATION_API_TOKEN, else the file
	// $CONSTELLATION_API_TOKEN_FILE names, else <DataDir>/api.token when readable). Over plain http:// only an instance token (ci1.…)
	// is ever sent: a node's admin token goes only to a verified TLS server.
	Token string
	// Fingerprint pins the TLS API's certificate ("sha256:<64 hex>"; default
	// $CONSTELLATION_API_FINGERPRINT). When set it is the only pin; otherwise the pins are
	// <DataDir>/api.fingerprint and the entries for the address in KnownNodes.
	Fingerprint string
	// Trust records the certificate of an address with no known pin in KnownNodes (trust on
	// first use). A certificate that differs from a recorded one is refused all the same.
	Trust bool
	// KnownNodes is the trust-on-first-use file (default KnownNodesPath()).
	KnownNodes string
	// OnTrust, when set, is told when Trust records a new pin.
	OnTrust func(addr, fingerprint, file string)
}

// instanceTokenPrefix starts the tokens nodes give their instances (instances package);
// only such a token may travel over the plain-HTTP instance API.
const instanceTokenPrefix = "ci1."

// FailedClient is a client whose every request returns err (a configuration error found
// where the caller cannot return it).
func FailedClient(err error) *Client { return &Client{err: err} }

// NewClient is NewClientConfig with the data dir, address and token given (the other
// settings from the environment). A configuration error is returned by every request.
// Inside an instance the environment points to its socket and token file
// (CONSTELLATION_API=unix:/run/constellation/api.sock, CONSTELLATION_API_TOKEN_FILE).
func NewClient(dataDir, api, token string) *Client {
	c, err := NewClientConfig(ClientConfig{DataDir: dataDir, API: api, Token: token})
	if err != nil {
		return FailedClient(err)
	}
	return c
}

// NewClientConfig finds the node: cfg.API wins; otherwise the Unix socket in the data dir.
// A TCP API is reached over TLS 1.3 and its certificate must match a pin (see ClientConfig)
// during the handshake, before any request byte (and the token) is written.
func NewClientConfig(cfg ClientConfig) (*Client, error) {
	if cfg.API == "" {
		cfg.API = os.Getenv("CONSTELLATION_API")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv("CONSTELLATION_API_TOKEN")
	}
	if f := os.Getenv("CONSTELLATION_API_TOKEN_FILE"); cfg.Token == "" && f != "" {
		if b, err := os.ReadFile(f); err == nil {
			cfg.Token = strings.TrimSpace(string(b))
		}
	}
	if cfg.Token == "" {
		if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "api.token")); err == nil {
			cfg.Token = strings.TrimSpace(string(b))
		}
	}
	if cfg.Fingerprint == "" {
		cfg.Fingerprint = os.Getenv("CONSTELLATION_API_FINGERPRINT")
	}
	if cfg.Fingerprint != "" {
		fp, err := ParseFingerprint(cfg.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("bad --api-fingerprint or $CONSTELLATION_API_FINGERPRINT: %w", err)
		}
		cfg.Fingerprint = fp
	}
	if cfg.KnownNodes == "" {
		cfg.KnownNodes = KnownNodesPath()
	}
	c := &Client{token: cfg.Token, where: cfg.API}
	var sock string
	switch {
	case strings.HasPrefix(cfg.API, "unix:"):
		sock = strings.TrimPrefix(strings.TrimPrefix(cfg.API, "unix:"), "//")
	case strings.HasPrefix(cfg.API, "http://"):
		if _, err := canonicalHostPort(trimURL(cfg.API, "http://")); err != nil {
			return nil, fmt.Errorf("--api %q: %w", cfg.API, err)
		}
		if cfg.Token != "" && !strings.HasPrefix(cfg.Token, instanceTokenPrefix) {
			return nil, fmt.Errorf("--api %q is plain HTTP: the node's TCP API is served over TLS and its token is never sent unencrypted to an unverified server; use %s (or https://%s)",
				cfg.API, trimURL(cfg.API, "http://"), trimURL(cfg.API, "http://"))
		}
		c.base = "http://" + trimURL(cfg.API, "http://")
		c.http = &http.Client{CheckRedirect: sameOrigin}
		return c, nil
	case cfg.API != "":
		addr, err := canonicalHostPort(trimURL(cfg.API, "https://"))
		if err != nil {
			return nil, fmt.Errorf("--api %q: %w; or unix:/path/api.sock", cfg.API, err)
		}
		p := &pinner{addr: addr, explicit: cfg.Fingerprint, dataDirFile: filepath.Join(cfg.DataDir, FingerprintFile),
			knownNodes: cfg.KnownNodes, trust: cfg.Trust, onTrust: cfg.OnTrust}
		c.base = "https://" + addr
		c.http = &http.Client{CheckRedirect: sameOrigin, Transport: &http.Transport{
			Proxy:          nil, // the token goes to the pinned node only, never via a proxy
			DialTLSContext: p.dialTLS,
		}}
		return c, nil
	default:
		sock = filepath.Join(cfg.DataDir, "api.sock")
	}
	c.base = "http://unix"
	c.where = sock
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	return c, nil
}

// trimURL strips scheme and a trailing slash from an address.
func trimURL(s, scheme string) string {
	return strings.TrimRight(strings.TrimPrefix(s, scheme), "/")
}

// sameOrigin refuses redirects that leave the first request's scheme and host, so that a
// redirect can never carry the token elsewhere or downgrade it to plain HTTP.
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("api: stopped after 10 redirects")
	}
	if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("api: refusing a redirect from %s to %s", first.Redacted(), req.URL.Redacted())
	}
	return nil
}

// CloseIdleConnections closes the client's kept-alive connections.
func (c *Client) CloseIdleConnections() {
	if c.http != nil {
		c.http.CloseIdleConnections()
	}
}

// ErrTransport means the node was reached but the exchange failed (reset, timeout, a
// cancelled request): the node may have done what was asked.
var ErrTransport = errors.New("API request failed")

// send sends req with the token and classifies transport errors. Over TLS, the transport
// writes the request only after the handshake and its pin check succeeded.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	return resp, nil
}

// transportError tells "no node there" (nothing listens: connection refused, no socket
// file) from a failure after connecting, so that a timeout is not reported as a missing node;
// a server that failed verification is ErrUnverified.
func (c *Client) transportError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w at %s (%v); start one with 'constellation peer', or point to it with --data-dir DIR or --api HOST:PORT", ErrNoNode, c.where, op.Err)
	}
	if errors.Is(err, ErrUnverified) {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrTransport, c.where, errors.Unwrap(err))
}

// RemoteError is an error answer of the API.
type RemoteError struct {
	Status int
	APIError
}

func (e *RemoteError) Error() string { return e.APIError.Error }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.doHeader(ctx, method, path, in, out)
	return err
}

// doHeader is do that also returns the answer's headers.
func (c *Client) doHeader(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var ae APIError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			ae = APIError{Error: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b))), Code: "http"}
		}
		return resp.Header, &RemoteError{Status: resp.StatusCode, APIError: ae}
	}
	if out == nil {
		return resp.Header, nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		*raw = b
		return resp.Header, err
	}
	return resp.Header, json.NewDecoder(resp.Body).Decode(out)
}

// Get fetches path into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// Post sends in as JSON and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out)
}

// Delete sends a DELETE.
func (c *Client) Delete(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodDelete, path, nil, out)
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (StatusInfo, error) {
	var s StatusInfo
	err := c.Get(ctx, "/v1/status", &s)
	return s, err
}

// Nodes is GET /v1/nodes.
func (c *Client) Nodes(ctx context.Context) ([]NodeInfo, error) {
	ns, _, err := c.NodesQuery(ctx, nil)
	return ns, err
}

// NodesQuery is GET /v1/nodes with a blocking read (q may be nil).
func (c *Client) NodesQuery(ctx context.Context, q *QueryOptions) ([]NodeInfo, QueryMeta, error) {
	var ns []NodeInfo
	meta, err := c.query(ctx, "/v1/nodes", q.values(), &ns)
	return ns, meta, err
}

// Send is POST /v1/send.
func (c *Client) Send(ctx context.Context, node, typ string, data json.RawMessage) (SendResult, error) {
	var r SendResult
	err := c.Post(ctx, "/v1/send", SendRequest{Node: node, Type: typ, Data: data}, &r)
	return r, err
}

// Broadcast is POST /v1/broadcast.
func (c *Client) Broadcast(ctx context.Context, typ string, data json.RawMessage) (SendResult, error) {
	var r SendResult
	err := c.Post(ctx, "/v1/broadcast", BroadcastRequest{Type: typ, Data: data}, &r)
	return r, err
}

// Events streams GET /v1/events until ctx ends or the node stops, calling fn per event.
// types filters (nil = all); replay asks for the retained events after sequence number
// after (after 0: all retained) before the new ones; without replay only new events come.
func (c *Client) Events(ctx context.Context, types []string, replay bool, after uint64, fn func(Event) error) error {
	q := url.Values{}
	if len(types) > 0 {
		q.Set("type", strings.Join(types, ","))
	}
	if replay {
		q.Set("since", strconv.FormatUint(after, 10))
	}
	path := "/v1/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.sse(ctx, path, func(_ string, data []byte) error {
		var e Event
		if json.Unmarshal(data, &e) != nil {
			return nil // a newer node's event this client cannot read: skip it
		}
		return fn(e)
	})
}

// WaitReady polls until the node answers or the timeout passes.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.Status(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DefaultDataDir returns the data directory used when none is given.
func DefaultDataDir() string {
	if d := os.Getenv("CONSTELLATION_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/constellation"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "constellation")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "constellation")
	}
	return ".constellation"
}
