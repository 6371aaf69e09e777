package api

import (
	"context"
	"net/url"
)

// Deploy is POST /v1/deployments (create or update).
func (c *Client) Deploy(ctx context.Context, spec DeploymentSpec) (DeploymentStatus, error) {
	var r DeploymentStatus
	err := c.Post(ctx, "/v1/deployments", spec, &r)
	return r, err
}

// Deployments is GET /v1/deployments.
func (c *Client) Deployments(ctx context.Context) ([]DeploymentStatus, error) {
	var r []DeploymentStatus
	err := c.Get(ctx, "/v1/deployments", &r)
	return r, err
}

// Deployment is GET /v1/deployments/{name}.
func (c *Client) Deployment(ctx context.Context, name string) (DeploymentStatus, error) {
	var r DeploymentStatus
	err := c.Get(ctx, "/v1/deployments/"+url.PathEscape(name), &r)
	return r, err
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

// Drain is POST /v1/drain.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (DrainResult, error) {
	var r DrainResult
	err := c.Post(ctx, "/v1/drain", req, &r)
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
	var r []Reservation
	err := c.Get(ctx, "/v1/reservations", &r)
	return r, err
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
	var r []QuotaInfo
	err := c.Get(ctx, "/v1/quotas", &r)
	return r, err
}
