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
)

// PushMetrics is POST /v1/monitor/metrics.
func (c *Client) PushMetrics(ctx context.Context, req MetricsPushRequest) (MetricsPushResult, error) {
	var r MetricsPushResult
	err := c.Post(ctx, "/v1/monitor/metrics", req, &r)
	return r, err
}

// MonitorQuery is POST /v1/monitor/query.
func (c *Client) MonitorQuery(ctx context.Context, q MonitorQuery) (MonitorQueryResult, error) {
	var r MonitorQueryResult
	err := c.Post(ctx, "/v1/monitor/query", q, &r)
	return r, err
}

// Dashboard is GET /v1/monitor/dashboard.
func (c *Client) Dashboard(ctx context.Context) (Dashboard, error) {
	var r Dashboard
	err := c.Get(ctx, "/v1/monitor/dashboard", &r)
	return r, err
}

// AddHealthCheck is POST /v1/monitor/checks.
func (c *Client) AddHealthCheck(ctx context.Context, spec HealthCheckSpec) (HealthCheck, error) {
	var r HealthCheck
	err := c.Post(ctx, "/v1/monitor/checks", spec, &r)
	return r, err
}

// HealthChecks is GET /v1/monitor/checks.
func (c *Client) HealthChecks(ctx context.Context) ([]HealthCheck, error) {
	var r []HealthCheck
	err := c.Get(ctx, "/v1/monitor/checks", &r)
	return r, err
}

// RemoveHealthCheck is DELETE /v1/monitor/checks/{name}.
func (c *Client) RemoveHealthCheck(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/monitor/checks/"+url.PathEscape(name), nil)
}

// Pprof is GET /v1/debug/pprof/{node}: the named node's profile (gzipped protobuf),
// copied to w. Admin only.
func (c *Client) Pprof(ctx context.Context, node, profile string, seconds int, w io.Writer) (int64, error) {
	q := url.Values{"profile": {profile}, "seconds": {strconv.Itoa(seconds)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/debug/pprof/"+url.PathEscape(node)+"?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, remoteErr(resp.StatusCode, b, fmt.Sprintf("GET /v1/debug/pprof/%s", node))
	}
	return io.Copy(w, resp.Body)
}

// remoteErr turns an error answer's body into a *RemoteError.
func remoteErr(status int, body []byte, what string) error {
	var ae APIError
	if json.Unmarshal(body, &ae) != nil || ae.Error == "" {
		ae = APIError{Error: fmt.Sprintf("%s: HTTP %d: %s", what, status, strings.TrimSpace(string(body))), Code: "http"}
	}
	return &RemoteError{Status: status, APIError: ae}
}
