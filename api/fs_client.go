package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// FSPutOptions tune FSPut.
type FSPutOptions struct {
	Replication int
	Ack         int
	Chunker     string
	Mode        uint32 // 0: 0644
	// LockToken is the fencing token of a lock the writer holds (strong trees; 0: none).
	LockToken uint64
}

// fsPath is the query naming a DFS path (sent as given: the node checks it).
func fsPath(p string) string { return "?" + url.Values{"path": {p}}.Encode() }

// rawError reads an error answer.
func rawError(resp *http.Response, method, path string) error {
	var ae APIError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
		ae = APIError{Error: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b))), Code: "http"}
	}
	return &RemoteError{Status: resp.StatusCode, APIError: ae}
}

// rawDo sends a request with a streaming body and returns the answer (2xx only).
func (c *Client) rawDo(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, rawError(resp, method, path)
	}
	return resp, nil
}

// FSPut is PUT /v1/fs/files/{path}: r's bytes (size, or -1 when unknown) streamed to the
// node, acknowledged once the file's holders confirmed it.
func (c *Client) FSPut(ctx context.Context, path string, r io.Reader, size int64, o FSPutOptions) (FSEntry, error) {
	v := url.Values{}
	if o.Replication > 0 {
		v.Set("replication", strconv.Itoa(o.Replication))
	}
	if o.Ack > 0 {
		v.Set("ack", strconv.Itoa(o.Ack))
	}
	if o.Chunker != "" {
		v.Set("chunker", o.Chunker)
	}
	if o.Mode != 0 {
		v.Set("mode", strconv.FormatUint(uint64(o.Mode), 8))
	}
	if o.LockToken != 0 {
		v.Set("lock_token", strconv.FormatUint(o.LockToken, 10))
	}
	return c.fsUpload(ctx, "/v1/fs/files"+fsPath(path)+"&"+v.Encode(), r, size)
}

func (c *Client) fsUpload(ctx context.Context, route string, r io.Reader, size int64) (FSEntry, error) {
	resp, err := c.rawDo(ctx, http.MethodPut, route, r, size)
	if err != nil {
		return FSEntry{}, err
	}
	defer resp.Body.Close()
	var e FSEntry
	return e, json.NewDecoder(resp.Body).Decode(&e)
}

// FSGet is GET /v1/fs/files/{path}: the file's content (version 0: the current one) and
// its entry. Close the reader.
func (c *Client) FSGet(ctx context.Context, path string, version uint64) (io.ReadCloser, FSEntry, error) {
	route := "/v1/fs/files" + fsPath(path)
	if version > 0 {
		route += "&version=" + strconv.FormatUint(version, 10)
	}
	resp, err := c.rawDo(ctx, http.MethodGet, route, nil, -1)
	if err != nil {
		return nil, FSEntry{}, err
	}
	var e FSEntry
	_ = json.Unmarshal([]byte(resp.Header.Get("X-Constellation-Entry")), &e)
	return resp.Body, e, nil
}

// FSList is GET /v1/fs/list.
func (c *Client) FSList(ctx context.Context, prefix string, recursive bool) ([]FSEntry, error) {
	v := url.Values{"prefix": {prefix}}
	if recursive {
		v.Set("recursive", "true")
	}
	var out []FSEntry
	return out, c.Get(ctx, "/v1/fs/list?"+v.Encode(), &out)
}

// FSStat is GET /v1/fs/stat/{path}.
func (c *Client) FSStat(ctx context.Context, path string) (FSStat, error) {
	var out FSStat
	return out, c.Get(ctx, "/v1/fs/stat"+fsPath(path), &out)
}

// FSRemove is DELETE /v1/fs/files/{path}.
func (c *Client) FSRemove(ctx context.Context, path string, recursive bool) (FSCount, error) {
	var out FSCount
	route := "/v1/fs/files" + fsPath(path)
	if recursive {
		route += "&recursive=true"
	}
	return out, c.Delete(ctx, route, &out)
}

// FSMove is POST /v1/fs/move.
func (c *Client) FSMove(ctx context.Context, from, to string) (FSCount, error) {
	var out FSCount
	return out, c.Post(ctx, "/v1/fs/move", FSMoveRequest{From: from, To: to}, &out)
}

// FSInit is POST /v1/fs/trees.
func (c *Client) FSInit(ctx context.Context, t FSTree) (FSTree, error) {
	var out FSTree
	return out, c.Post(ctx, "/v1/fs/trees", t, &out)
}

// FSTrees is GET /v1/fs/trees.
func (c *Client) FSTrees(ctx context.Context) ([]FSTree, error) {
	var out []FSTree
	return out, c.Get(ctx, "/v1/fs/trees", &out)
}

// FSVersions is GET /v1/fs/versions/{path}.
func (c *Client) FSVersions(ctx context.Context, path string) ([]FSVersion, error) {
	var out []FSVersion
	return out, c.Get(ctx, "/v1/fs/versions"+fsPath(path), &out)
}

// FSRevert is POST /v1/fs/revert.
func (c *Client) FSRevert(ctx context.Context, path string, version uint64) (FSEntry, error) {
	var out FSEntry
	return out, c.Post(ctx, "/v1/fs/revert", FSRevertRequest{Path: path, Version: version}, &out)
}

// FSSnapshot is POST /v1/fs/snapshots.
func (c *Client) FSSnapshot(ctx context.Context, prefix, name string) (FSSnapshot, error) {
	var out FSSnapshot
	return out, c.Post(ctx, "/v1/fs/snapshots", FSSnapshotRequest{Prefix: prefix, Name: name}, &out)
}

// FSSnapshots is GET /v1/fs/snapshots.
func (c *Client) FSSnapshots(ctx context.Context) ([]FSSnapshot, error) {
	var out []FSSnapshot
	return out, c.Get(ctx, "/v1/fs/snapshots", &out)
}

// FSDeleteSnapshot is DELETE /v1/fs/snapshots/{name}.
func (c *Client) FSDeleteSnapshot(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/fs/snapshots/"+url.PathEscape(name), nil)
}

// FSRestore is POST /v1/fs/restore.
func (c *Client) FSRestore(ctx context.Context, name, prefix string) (FSCount, error) {
	var out FSCount
	return out, c.Post(ctx, "/v1/fs/restore", FSRestoreRequest{Name: name, Prefix: prefix}, &out)
}

// FSDu is GET /v1/fs/du.
func (c *Client) FSDu(ctx context.Context, prefix string, byNode bool) (FSDu, error) {
	v := url.Values{"prefix": {prefix}}
	if byNode {
		v.Set("by_node", "true")
	}
	var out FSDu
	return out, c.Get(ctx, "/v1/fs/du?"+v.Encode(), &out)
}

// FSExport is GET /v1/fs/export/{path}: the file as a CAR. Close the reader.
func (c *Client) FSExport(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.rawDo(ctx, http.MethodGet, "/v1/fs/export"+fsPath(path), nil, -1)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// FSImport is PUT /v1/fs/import/{path}: a CAR of one file stored under path.
func (c *Client) FSImport(ctx context.Context, path string, car io.Reader, size int64) (FSEntry, error) {
	return c.fsUpload(ctx, "/v1/fs/import"+fsPath(path), car, size)
}

// FSWatch is GET /v1/fs/watch (SSE): fn sees every change under prefix until it returns
// an error, ctx ends, or the node ends the stream.
func (c *Client) FSWatch(ctx context.Context, prefix string, fn func(FSEvent) error) error {
	resp, err := c.rawDo(ctx, http.MethodGet, "/v1/fs/watch?"+url.Values{"prefix": {prefix}}.Encode(), nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			if event == "error" {
				var e struct{ Error string }
				_ = json.Unmarshal([]byte(data), &e)
				return fmt.Errorf("watch: %s", e.Error)
			}
			var ev FSEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				return fmt.Errorf("watch: bad event %q: %w", data, err)
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
