package api

import (
	"bufio"
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
	base  string // "http://unix" or "http://host:port"
	token string
	http  *http.Client
	where string // for error messages
}

// ErrNoNode means no node answers at the given data dir or address.
var ErrNoNode = errors.New("node: no running node")

// NewClient finds the node: api ("host:port", "http://host:port" or "unix:/path/api.sock")
// wins; otherwise the Unix socket in dataDir (default DefaultDataDir()). token is the bearer
// token (default: $CONSTELLATION_API_TOKEN, the file $CONSTELLATION_API_TOKEN_FILE names,
// or <dataDir>/api.token when readable). Inside an instance the environment points to its
// socket and token file (CONSTELLATION_API=unix:/run/constellation/api.sock and
// CONSTELLATION_API_TOKEN_FILE=/run/constellation/token).
func NewClient(dataDir, api, token string) *Client {
	if api == "" {
		api = os.Getenv("CONSTELLATION_API")
	}
	if dataDir == "" {
		dataDir = DefaultDataDir()
	}
	if token == "" {
		token = os.Getenv("CONSTELLATION_API_TOKEN")
	}
	if f := os.Getenv("CONSTELLATION_API_TOKEN_FILE"); token == "" && f != "" {
		if b, err := os.ReadFile(f); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, "api.token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	c := &Client{token: token}
	sock := ""
	switch {
	case strings.HasPrefix(api, "unix:"):
		sock = strings.TrimPrefix(strings.TrimPrefix(api, "unix:"), "//")
	case api != "":
		base := api
		if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
			base = "http://" + base
		}
		c.base = strings.TrimRight(base, "/")
		c.where = api
		c.http = &http.Client{}
		return c
	default:
		sock = filepath.Join(dataDir, "api.sock")
	}
	c.base = "http://unix"
	c.where = sock
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	return c
}

// ErrTransport means the node was reached but the exchange failed (reset, timeout, a
// cancelled request): the node may have done what was asked.
var ErrTransport = errors.New("API request failed")

// transportError tells "no node there" (nothing listens: connection refused, no socket
// file) from a failure after connecting, so that a timeout is not reported as a missing node.
func (c *Client) transportError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%w at %s (%v); start one with 'constellation peer', or point to it with --data-dir DIR or --api HOST:PORT", ErrNoNode, c.where, op.Err)
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
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ae APIError
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ae)
		return &RemoteError{Status: resp.StatusCode, APIError: ae}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[len("data: "):]...)
		case line == "":
			if len(data) > 0 {
				var e Event
				if err := json.Unmarshal(data, &e); err == nil {
					if err := fn(e); err != nil {
						return err
					}
				}
				data = data[:0]
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
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
