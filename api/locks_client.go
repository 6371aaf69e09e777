package api

import (
	"context"
	"time"
)

// LockAcquire is POST /v1/locks/acquire (wait 0: try once).
func (c *Client) LockAcquire(ctx context.Context, path, holder string, ttl, wait time.Duration) (Lock, error) {
	req := LockAcquireRequest{Path: path, Holder: holder, TTL: ttl.String()}
	if wait > 0 {
		req.Wait = wait.String()
	}
	var r Lock
	err := c.Post(ctx, "/v1/locks/acquire", req, &r)
	return r, err
}

// LockRenew is POST /v1/locks/renew.
func (c *Client) LockRenew(ctx context.Context, path string, token uint64) (Lock, error) {
	var r Lock
	err := c.Post(ctx, "/v1/locks/renew", LockRequest{Path: path, Token: token}, &r)
	return r, err
}

// LockRelease is POST /v1/locks/release.
func (c *Client) LockRelease(ctx context.Context, path string, token uint64) error {
	return c.Post(ctx, "/v1/locks/release", LockRequest{Path: path, Token: token}, nil)
}

// Locks is GET /v1/locks: the held locks.
func (c *Client) Locks(ctx context.Context) ([]Lock, error) {
	var r []Lock
	err := c.Get(ctx, "/v1/locks", &r)
	return r, err
}

// LockStatus is GET /v1/locks/status.
func (c *Client) LockStatus(ctx context.Context) (LockStatus, error) {
	var r LockStatus
	err := c.Get(ctx, "/v1/locks/status", &r)
	return r, err
}
