package api

import (
	"context"
	"net/url"
	"strconv"
)

// SubmitSpans is POST /v1/monitor/spans.
func (c *Client) SubmitSpans(ctx context.Context, spans ...Span) (SpanSubmitResult, error) {
	var r SpanSubmitResult
	err := c.Post(ctx, "/v1/monitor/spans", SpanSubmitRequest{Spans: spans}, &r)
	return r, err
}

// Traces is GET /v1/monitor/traces: traces over the cluster with a span matching s.
func (c *Client) Traces(ctx context.Context, s TraceSearch) (TraceList, error) {
	v := url.Values{}
	if s.Service != "" {
		v.Set("service", s.Service)
	}
	if s.Operation != "" {
		v.Set("operation", s.Operation)
	}
	if s.MinDuration > 0 {
		v.Set("min_duration", s.MinDuration.String())
	}
	if s.Status != "" {
		v.Set("status", s.Status)
	}
	if s.Since > 0 {
		v.Set("since", s.Since.String())
	}
	if s.Limit > 0 {
		v.Set("limit", strconv.Itoa(s.Limit))
	}
	if s.Local {
		v.Set("local", "1")
	}
	var r TraceList
	err := c.Get(ctx, "/v1/monitor/traces?"+v.Encode(), &r)
	return r, err
}

// Trace is GET /v1/monitor/traces/{trace}: every span of a trace over the cluster.
func (c *Client) Trace(ctx context.Context, traceID string) (Trace, error) {
	var r Trace
	err := c.Get(ctx, "/v1/monitor/traces/"+url.PathEscape(traceID), &r)
	return r, err
}
