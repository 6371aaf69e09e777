package api

import "context"

// ClusterOverview is GET /v1/cluster/overview with a blocking read (q may be nil).
func (c *Client) ClusterOverview(ctx context.Context, q *QueryOptions) (ClusterOverview, QueryMeta, error) {
	var ov ClusterOverview
	meta, err := c.query(ctx, "/v1/cluster/overview", q.values(), &ov)
	return ov, meta, err
}

// UISession is GET /ui/session: the caller as the dashboard sees it.
func (c *Client) UISession(ctx context.Context) (UISession, error) {
	var s UISession
	err := c.Get(ctx, "/ui/session", &s)
	return s, err
}
