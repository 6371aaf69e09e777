package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CreateInstance is POST /v1/instances.
func (c *Client) CreateInstance(ctx context.Context, req CreateRequest) (Instance, error) {
	var r Instance
	err := c.Post(ctx, "/v1/instances", req, &r)
	return r, err
}

// Instances is GET /v1/instances: every instance in the cluster.
func (c *Client) Instances(ctx context.Context) ([]Instance, error) {
	rs, _, err := c.ListInstances(ctx, InstanceFilter{}, nil)
	return rs, err
}

// InstanceFilter selects and pages GET /v1/instances on the node.
type InstanceFilter struct {
	Status    []string // any of these statuses (InstanceRunning, ...)
	Node      string   // name or peer ID
	Namespace string
	Limit     int    // at most this many (0: all); QueryMeta.Next names the next page
	After     string // the instances after this name in natural order (a previous QueryMeta.Next)
}

// ListInstances is GET /v1/instances with filters, a page and a blocking read (q may be
// nil), in natural name order (web-2 before web-10).
func (c *Client) ListInstances(ctx context.Context, f InstanceFilter, q *QueryOptions) ([]Instance, QueryMeta, error) {
	v := q.values()
	if len(f.Status) > 0 {
		v.Set("status", strings.Join(f.Status, ","))
	}
	if f.Node != "" {
		v.Set("node", f.Node)
	}
	if f.Namespace != "" {
		v.Set("namespace", f.Namespace)
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		v.Set("after", f.After)
	}
	var rs []Instance
	meta, err := c.query(ctx, "/v1/instances", v, &rs)
	return rs, meta, err
}

// Instance is GET /v1/instances/{name}.
func (c *Client) Instance(ctx context.Context, name string) (Instance, error) {
	var r Instance
	err := c.Get(ctx, "/v1/instances/"+url.PathEscape(name), &r)
	return r, err
}

// InstanceOp is POST /v1/instances/{name}/{op} (start, stop, restart, set-limits, wait,
// snapshot, restore) with an optional body; the answer is decoded into out.
func (c *Client) InstanceOp(ctx context.Context, name, op string, body, out any) error {
	return c.Post(ctx, "/v1/instances/"+url.PathEscape(name)+"/"+op, body, out)
}

// InstanceStats is GET /v1/instances/{name}/stats.
func (c *Client) InstanceStats(ctx context.Context, name string) (InstanceStats, error) {
	var s InstanceStats
	err := c.Get(ctx, "/v1/instances/"+url.PathEscape(name)+"/stats", &s)
	return s, err
}

// RemoveInstance is DELETE /v1/instances/{name}: stop (SIGTERM, SIGKILL after 10 s)
// and destroy.
func (c *Client) RemoveInstance(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/instances/"+url.PathEscape(name), nil)
}

// RemoveInstanceGrace is RemoveInstance with another grace period before SIGKILL.
func (c *Client) RemoveInstanceGrace(ctx context.Context, name string, grace time.Duration) error {
	return c.Delete(ctx, "/v1/instances/"+url.PathEscape(name)+"?grace="+url.QueryEscape(grace.String()), nil)
}

// Resources is GET /v1/resources.
func (c *Client) Resources(ctx context.Context) (ResourcesInfo, error) {
	var r ResourcesInfo
	err := c.Get(ctx, "/v1/resources", &r)
	return r, err
}

// InstanceLogs is GET /v1/instances/{name}/logs: stream is stdout, stderr or all ("").
// The caller closes the reader; with follow it ends when ctx ends or the instance has
// exited for good.
func (c *Client) InstanceLogs(ctx context.Context, name, stream string, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if stream != "" {
		q.Set("stream", stream)
	}
	if follow {
		q.Set("follow", "1")
	}
	path := "/v1/instances/" + url.PathEscape(name) + "/logs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var ae APIError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			ae = APIError{Error: fmt.Sprintf("GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b))), Code: "http"}
		}
		return nil, &RemoteError{Status: resp.StatusCode, APIError: ae}
	}
	return resp.Body, nil
}

// Snapshots lists an instance's snapshots (GET /v1/instances/{name}/snapshots).
func (c *Client) Snapshots(ctx context.Context, name string) ([]Snapshot, error) {
	var out []Snapshot
	err := c.do(ctx, http.MethodGet, "/v1/instances/"+url.PathEscape(name)+"/snapshots", nil, &out)
	return out, err
}

// DeleteSnapshot deletes one of an instance's snapshots.
func (c *Client) DeleteSnapshot(ctx context.Context, name, tag string) error {
	return c.do(ctx, http.MethodDelete, "/v1/instances/"+url.PathEscape(name)+"/snapshots/"+url.PathEscape(tag), nil, nil)
}
