package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func (s LogSearch) values() url.Values {
	v := url.Values{}
	if s.Query != "" {
		v.Set("q", s.Query)
	}
	if s.Since > 0 {
		v.Set("since", s.Since.String())
	}
	if !s.Until.IsZero() {
		v.Set("until", s.Until.UTC().Format(time.RFC3339Nano))
	}
	if s.Limit > 0 {
		v.Set("limit", strconv.Itoa(s.Limit))
	}
	if s.Local {
		v.Set("local", "1")
	}
	return v
}

// SubmitLogs is POST /v1/monitor/logs.
func (c *Client) SubmitLogs(ctx context.Context, entries ...LogSubmit) (LogSubmitResult, error) {
	var r LogSubmitResult
	err := c.Post(ctx, "/v1/monitor/logs", LogSubmitRequest{Entries: entries}, &r)
	return r, err
}

// SearchLogs is GET /v1/monitor/logs: a cluster-wide search.
func (c *Client) SearchLogs(ctx context.Context, s LogSearch) (LogSearchResult, error) {
	var r LogSearchResult
	err := c.Get(ctx, "/v1/monitor/logs?"+s.values().Encode(), &r)
	return r, err
}

// FollowLogs is GET /v1/monitor/logs?follow=1 (Server-Sent Events): the entries matching
// s.Query as they are written on every alive node, until ctx ends. warn gets the nodes
// that cannot be followed (nil: ignored).
func (c *Client) FollowLogs(ctx context.Context, s LogSearch, fn func(LogEntry) error, warn func(string)) error {
	v := s.values()
	v.Set("follow", "1")
	return c.sse(ctx, "/v1/monitor/logs?"+v.Encode(), func(event string, data []byte) error {
		switch event {
		case "log":
			var e LogEntry
			if err := json.Unmarshal(data, &e); err != nil {
				return err
			}
			return fn(e)
		case "warning":
			var w string
			if json.Unmarshal(data, &w) == nil && warn != nil {
				warn(w)
			}
		}
		return nil
	})
}

// sse reads a Server-Sent Events stream, calling fn per event.
func (c *Client) sse(ctx context.Context, path string, fn func(event string, data []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ae APIError
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ae)
		return &RemoteError{Status: resp.StatusCode, APIError: ae}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data []byte
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[len("data: "):]...)
		case line == "":
			if len(data) > 0 {
				if err := fn(event, data); err != nil {
					return err
				}
			}
			data, event = data[:0], ""
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}
