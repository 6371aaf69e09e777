package api

import (
	"context"
	"strconv"
)

// Client methods of strong trees' fenced mutations (docs/dfs.md, "Strong trees"): the
// fencing token of a lock the caller holds travels with the request (0: unfenced).

// FSRemoveFenced is DELETE /v1/fs/files?path=P&lock_token=N.
func (c *Client) FSRemoveFenced(ctx context.Context, path string, recursive bool, token uint64) (FSCount, error) {
	var out FSCount
	route := "/v1/fs/files" + fsPath(path)
	if recursive {
		route += "&recursive=true"
	}
	if token != 0 {
		route += "&lock_token=" + strconv.FormatUint(token, 10)
	}
	return out, c.Delete(ctx, route, &out)
}

// FSMoveWith is POST /v1/fs/move with every field of the request (LockToken too).
func (c *Client) FSMoveWith(ctx context.Context, q FSMoveRequest) (FSCount, error) {
	var out FSCount
	return out, c.Post(ctx, "/v1/fs/move", q, &out)
}

// FSRevertWith is POST /v1/fs/revert with every field of the request (LockToken too).
func (c *Client) FSRevertWith(ctx context.Context, q FSRevertRequest) (FSEntry, error) {
	var out FSEntry
	return out, c.Post(ctx, "/v1/fs/revert", q, &out)
}
