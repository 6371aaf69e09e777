package api

import (
	"context"
	"net/url"
)

// AddAlertRule is POST /v1/monitor/rules (create or replace).
func (c *Client) AddAlertRule(ctx context.Context, spec AlertRuleSpec) (AlertRuleInfo, error) {
	var r AlertRuleInfo
	err := c.Post(ctx, "/v1/monitor/rules", spec, &r)
	return r, err
}

// AlertRules is GET /v1/monitor/rules.
func (c *Client) AlertRules(ctx context.Context) ([]AlertRuleInfo, error) {
	var r []AlertRuleInfo
	err := c.Get(ctx, "/v1/monitor/rules", &r)
	return r, err
}

// AlertRule is GET /v1/monitor/rules/{name}.
func (c *Client) AlertRule(ctx context.Context, name string) (AlertRuleInfo, error) {
	var r AlertRuleInfo
	err := c.Get(ctx, "/v1/monitor/rules/"+url.PathEscape(name), &r)
	return r, err
}

// RemoveAlertRule is DELETE /v1/monitor/rules/{name}.
func (c *Client) RemoveAlertRule(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/monitor/rules/"+url.PathEscape(name), nil)
}

// Alerts is GET /v1/monitor/alerts: pending and firing alerts (all: resolved ones too).
func (c *Client) Alerts(ctx context.Context, all bool) ([]AlertInfo, error) {
	var r []AlertInfo
	p := "/v1/monitor/alerts"
	if all {
		p += "?all=1"
	}
	err := c.Get(ctx, p, &r)
	return r, err
}

// AddSilence is POST /v1/monitor/silences.
func (c *Client) AddSilence(ctx context.Context, spec SilenceSpec) (SilenceInfo, error) {
	var r SilenceInfo
	err := c.Post(ctx, "/v1/monitor/silences", spec, &r)
	return r, err
}

// Silences is GET /v1/monitor/silences (expired ones too when all).
func (c *Client) Silences(ctx context.Context, all bool) ([]SilenceInfo, error) {
	var r []SilenceInfo
	p := "/v1/monitor/silences"
	if all {
		p += "?all=1"
	}
	err := c.Get(ctx, p, &r)
	return r, err
}

// RemoveSilence is DELETE /v1/monitor/silences/{id}.
func (c *Client) RemoveSilence(ctx context.Context, id string) error {
	return c.Delete(ctx, "/v1/monitor/silences/"+url.PathEscape(id), nil)
}

// AddChannel is POST /v1/monitor/channels (create or replace).
func (c *Client) AddChannel(ctx context.Context, spec ChannelSpec) (ChannelInfo, error) {
	var r ChannelInfo
	err := c.Post(ctx, "/v1/monitor/channels", spec, &r)
	return r, err
}

// Channels is GET /v1/monitor/channels (secrets masked).
func (c *Client) Channels(ctx context.Context) ([]ChannelInfo, error) {
	var r []ChannelInfo
	err := c.Get(ctx, "/v1/monitor/channels", &r)
	return r, err
}

// RemoveChannel is DELETE /v1/monitor/channels/{name}.
func (c *Client) RemoveChannel(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/monitor/channels/"+url.PathEscape(name), nil)
}

// TestChannel is POST /v1/monitor/channels/{name}/test: a test notification, with retries.
func (c *Client) TestChannel(ctx context.Context, name string) (ChannelTestResult, error) {
	var r ChannelTestResult
	err := c.Post(ctx, "/v1/monitor/channels/"+url.PathEscape(name)+"/test", nil, &r)
	return r, err
}

// ChannelHistory is GET /v1/monitor/channels/{name}/history: the last delivery attempts of
// every node, newest first.
func (c *Client) ChannelHistory(ctx context.Context, name string) ([]ChannelAttempt, error) {
	var r []ChannelAttempt
	err := c.Get(ctx, "/v1/monitor/channels/"+url.PathEscape(name)+"/history", &r)
	return r, err
}
