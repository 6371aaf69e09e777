package api

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
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

// FSHold is GET /v1/fs/mounts/hold?dir=DIR: it holds the API mount at dir until ctx ends
// (then the node unmounts it, as it does when this process dies) or the mount goes
// another way (fs umount, node stop: unmounted is true).
func (c *Client) FSHold(ctx context.Context, dir string) (unmounted bool, err error) {
	resp, err := c.rawDo(ctx, http.MethodGet, "/v1/fs/mounts/hold?"+url.Values{"dir": {dir}}.Encode(), nil, -1)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "event: unmounted" {
			return true, nil
		}
	}
	if ctx.Err() != nil {
		return false, nil
	}
	return false, sc.Err()
}
