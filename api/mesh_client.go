package api

import (
	"context"
	"net/url"
)

func nsQuery(ns string) string {
	if ns == "" {
		return ""
	}
	return "?namespace=" + url.QueryEscape(ns)
}

// MeshRegister is POST /v1/mesh/services.
func (c *Client) MeshRegister(ctx context.Context, req MeshRegisterRequest) (MeshEndpoint, error) {
	var r MeshEndpoint
	err := c.Post(ctx, "/v1/mesh/services", req, &r)
	return r, err
}

// MeshDeregister is POST /v1/mesh/deregister; it returns how many endpoints went.
func (c *Client) MeshDeregister(ctx context.Context, req MeshDeregisterRequest) (int, error) {
	var r struct {
		Removed int `json:"removed"`
	}
	err := c.Post(ctx, "/v1/mesh/deregister", req, &r)
	return r.Removed, err
}

// MeshServices is GET /v1/mesh/services (ns empty: every namespace).
func (c *Client) MeshServices(ctx context.Context, ns string) ([]MeshService, error) {
	var r []MeshService
	err := c.Get(ctx, "/v1/mesh/services"+nsQuery(ns), &r)
	return r, err
}

// MeshEndpoints is GET /v1/mesh/services/{name}.
func (c *Client) MeshEndpoints(ctx context.Context, ns, name string) ([]MeshEndpoint, error) {
	var r []MeshEndpoint
	err := c.Get(ctx, "/v1/mesh/services/"+url.PathEscape(name)+nsQuery(ns), &r)
	return r, err
}

// MeshConfigure is POST /v1/mesh/services/{name}/config.
func (c *Client) MeshConfigure(ctx context.Context, ns, name string, cfg MeshServiceConfig) (MeshServiceConfig, error) {
	var r MeshServiceConfig
	err := c.Post(ctx, "/v1/mesh/services/"+url.PathEscape(name)+"/config"+nsQuery(ns), cfg, &r)
	return r, err
}

// MeshIntentions is GET /v1/mesh/intentions.
func (c *Client) MeshIntentions(ctx context.Context) ([]MeshIntention, error) {
	var r []MeshIntention
	err := c.Get(ctx, "/v1/mesh/intentions", &r)
	return r, err
}

// MeshSetIntention is POST /v1/mesh/intentions (action allow, deny or delete).
func (c *Client) MeshSetIntention(ctx context.Context, in MeshIntention) (MeshIntention, error) {
	var r MeshIntention
	err := c.Post(ctx, "/v1/mesh/intentions", in, &r)
	return r, err
}

// MeshEnableMTLS is POST /v1/mesh/mtls.
func (c *Client) MeshEnableMTLS(ctx context.Context, req MeshTLSRequest) error {
	return c.Post(ctx, "/v1/mesh/mtls", req, nil)
}

// MeshCall is POST /v1/mesh/call.
func (c *Client) MeshCall(ctx context.Context, req MeshCallRequest) (MeshCallResult, error) {
	var r MeshCallResult
	err := c.Post(ctx, "/v1/mesh/call", req, &r)
	return r, err
}

// MeshSpan is POST /v1/mesh/spans.
func (c *Client) MeshSpan(ctx context.Context, req MeshSpanRequest) (MeshSpan, error) {
	var r MeshSpan
	err := c.Post(ctx, "/v1/mesh/spans", req, &r)
	return r, err
}

// MeshMetrics is GET /v1/mesh/metrics/{name} over window (e.g. "60s"; empty: 60 s).
func (c *Client) MeshMetrics(ctx context.Context, ns, name, window string) (MeshMetrics, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if window != "" {
		q.Set("window", window)
	}
	path := "/v1/mesh/metrics/" + url.PathEscape(name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var r MeshMetrics
	err := c.Get(ctx, path, &r)
	return r, err
}
