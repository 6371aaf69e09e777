package api

import (
	"context"
	"net/url"
)

// FSShares is GET /v1/fs/shares.
func (c *Client) FSShares(ctx context.Context) ([]FSShare, error) {
	var out []FSShare
	return out, c.Get(ctx, "/v1/fs/shares", &out)
}

// FSShare is POST /v1/fs/shares: registers a share on the node.
func (c *Client) FSShare(ctx context.Context, req FSShareRequest) (FSShare, error) {
	var out FSShare
	return out, c.Post(ctx, "/v1/fs/shares", req, &out)
}

// FSUnshare is DELETE /v1/fs/shares?share=ID|LOCALDIR: stops and forgets a share (the
// files stay on both sides).
func (c *Client) FSUnshare(ctx context.Context, idOrDir string) (FSShare, error) {
	var out FSShare
	return out, c.Delete(ctx, "/v1/fs/shares?"+url.Values{"share": {idOrDir}}.Encode(), &out)
}
