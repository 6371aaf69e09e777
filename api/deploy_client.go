package api

import (
	"context"
	"errors"
	"net/url"
)

// Deploy is POST /v1/deployments (create or update).
func (c *Client) Deploy(ctx context.Context, spec DeploymentSpec) (DeploymentStatus, error) {
	var r DeploymentStatus
	err := c.Post(ctx, "/v1/deployments", spec, &r)
	return r, err
}

// DeployPlan is POST /v1/deployments?dry_run=1: the placement the spec would get, with
// nothing written.
func (c *Client) DeployPlan(ctx context.Context, spec DeploymentSpec) (DeploymentPlan, error) {
	var r DeploymentPlan
	err := c.Post(ctx, "/v1/deployments?dry_run=1", spec, &r)
	return r, err
}

// Deployments is GET /v1/deployments.
func (c *Client) Deployments(ctx context.Context) ([]DeploymentStatus, error) {
	r, _, err := c.DeploymentsQuery(ctx, nil)
	return r, err
}

// DeploymentsQuery is GET /v1/deployments with a blocking read (q may be nil).
func (c *Client) DeploymentsQuery(ctx context.Context, q *QueryOptions) ([]DeploymentStatus, QueryMeta, error) {
	var r []DeploymentStatus
	meta, err := c.query(ctx, "/v1/deployments", q.values(), &r)
	return r, meta, err
}

// Deployment is GET /v1/deployments/{name}.
func (c *Client) Deployment(ctx context.Context, name string) (DeploymentStatus, error) {
	r, _, err := c.DeploymentQuery(ctx, name, nil)
	return r, err
}

// DeploymentQuery is GET /v1/deployments/{name} with a blocking read (q may be nil).
func (c *Client) DeploymentQuery(ctx context.Context, name string, q *QueryOptions) (DeploymentStatus, QueryMeta, error) {
	var r DeploymentStatus
	meta, err := c.query(ctx, "/v1/deployments/"+url.PathEscape(name), q.values(), &r)
	return r, meta, err
}

// Scale is POST /v1/deployments/{name}/scale.
func (c *Client) Scale(ctx context.Context, name string, instances int) (DeploymentStatus, error) {
	var r DeploymentStatus
	err := c.Post(ctx, "/v1/deployments/"+url.PathEscape(name)+"/scale", ScaleRequest{Instances: &instances}, &r)
	return r, err
}

// Undeploy is DELETE /v1/deployments/{name}.
func (c *Client) Undeploy(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/deployments/"+url.PathEscape(name), nil)
}

// Drain is POST /v1/nodes/{node}/drain.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (DrainResult, error) {
	var r DrainResult
	if req.Node == "" {
		return r, errors.New("drain: a node name or peer ID is required")
	}
	var body any
	if req.Cancel {
		body = NodeDrainRequest{Cancel: true}
	}
	err := c.Post(ctx, "/v1/nodes/"+url.PathEscape(req.Node)+"/drain", body, &r)
	return r, err
}

// Reserve is POST /v1/reservations.
func (c *Client) Reserve(ctx context.Context, req ReservationRequest) (Reservation, error) {
	var r Reservation
	err := c.Post(ctx, "/v1/reservations", req, &r)
	return r, err
}

// Reservations is GET /v1/reservations (the live ones).
func (c *Client) Reservations(ctx context.Context) ([]Reservation, error) {
	r, _, err := c.ReservationsQuery(ctx, nil)
	return r, err
}

// ReservationsQuery is GET /v1/reservations with a blocking read (q may be nil). A
// reservation expiring is not a change: the wait ends at WaitTime.
func (c *Client) ReservationsQuery(ctx context.Context, q *QueryOptions) ([]Reservation, QueryMeta, error) {
	var r []Reservation
	meta, err := c.query(ctx, "/v1/reservations", q.values(), &r)
	return r, meta, err
}

// Release is DELETE /v1/reservations/{id}.
func (c *Client) Release(ctx context.Context, id string) error {
	return c.Delete(ctx, "/v1/reservations/"+url.PathEscape(id), nil)
}

// SetQuota is PUT /v1/quotas/{namespace}.
func (c *Client) SetQuota(ctx context.Context, ns string, q QuotaSpec) (QuotaInfo, error) {
	var r QuotaInfo
	err := c.do(ctx, "PUT", "/v1/quotas/"+url.PathEscape(ns), q, &r)
	return r, err
}

// Quota is GET /v1/quotas/{namespace}.
func (c *Client) Quota(ctx context.Context, ns string) (QuotaInfo, error) {
	var r QuotaInfo
	err := c.Get(ctx, "/v1/quotas/"+url.PathEscape(ns), &r)
	return r, err
}

// Quotas is GET /v1/quotas.
func (c *Client) Quotas(ctx context.Context) ([]QuotaInfo, error) {
	r, _, err := c.QuotasQuery(ctx, nil)
	return r, err
}

// QuotasQuery is GET /v1/quotas with a blocking read (q may be nil).
func (c *Client) QuotasQuery(ctx context.Context, q *QueryOptions) ([]QuotaInfo, QueryMeta, error) {
	var r []QuotaInfo
	meta, err := c.query(ctx, "/v1/quotas", q.values(), &r)
	return r, meta, err
}

// PatchQuota changes only the given fields of a namespace's quota (PATCH /v1/quotas/{ns}).
func (c *Client) PatchQuota(ctx context.Context, ns string, p QuotaPatch) (QuotaInfo, error) {
	var r QuotaInfo
	err := c.do(ctx, "PATCH", "/v1/quotas/"+url.PathEscape(ns), p, &r)
	return r, err
}

// RemoveQuota removes a namespace's quota (DELETE /v1/quotas/{ns}).
func (c *Client) RemoveQuota(ctx context.Context, ns string) error {
	return c.do(ctx, "DELETE", "/v1/quotas/"+url.PathEscape(ns), nil, nil)
}
