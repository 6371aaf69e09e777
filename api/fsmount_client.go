package api

import (
	"context"
	"net/url"
)

// FSMount is POST /v1/fs/mounts: the node mounts the DFS prefix at dir on its host.
func (c *Client) FSMount(ctx context.Context, q FSMountRequest) (FSMount, error) {
	var out FSMount
	return out, c.Post(ctx, "/v1/fs/mounts", q, &out)
}

// FSMounts is GET /v1/fs/mounts.
func (c *Client) FSMounts(ctx context.Context) ([]FSMount, error) {
	var out []FSMount
	return out, c.Get(ctx, "/v1/fs/mounts", &out)
}

// FSUnmount is DELETE /v1/fs/mounts?dir=DIR.
func (c *Client) FSUnmount(ctx context.Context, dir string) error {
	return c.Delete(ctx, "/v1/fs/mounts?"+url.Values{"dir": {dir}}.Encode(), nil)
}
