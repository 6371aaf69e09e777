package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Registry writes forwarded between nodes. The node hosting an endpoint alone writes its
// record, so a registration for an instance on another node, or a deregistration of
// endpoints hosted elsewhere, travels to the hosting node over the hop protocol (member-only):
//
//	POST /.mesh/register    X-Mesh-Control: register    body: api.MeshRegisterRequest
//	POST /.mesh/deregister  X-Mesh-Control: deregister  body: api.MeshDeregisterRequest
//
// The receiving node applies it to its own endpoints only (it never forwards again) and
// answers with the JSON result or the error's status and message.
const (
	hdrControl     = "X-Mesh-Control"
	maxControlBody = 64 << 10
	controlTimeout = 10 * time.Second
)

// decodeControl decodes a forwarded registry write's body (from another member).
func decodeControl(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxControlBody+1))
	if err != nil {
		return err
	}
	if len(b) > maxControlBody {
		return fmt.Errorf("%w: body over %d bytes", ErrBadRequest, maxControlBody)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	return nil
}

// serveControl handles a forwarded registry write; false when r is not one.
func (m *Service) serveControl(w http.ResponseWriter, r *http.Request) bool {
	op := r.Header.Get(hdrControl)
	if op == "" {
		return false
	}
	fail := func(err error) {
		w.Header().Set(hdrError, "1")
		httpapi.WriteErr(w, err)
	}
	switch {
	case op == "register" && r.Method == http.MethodPost && r.URL.Path == "/.mesh/register":
		var req api.MeshRegisterRequest
		if err := decodeControl(r.Body, &req); err != nil {
			fail(err)
			return true
		}
		ep, err := m.register(req, false)
		if err != nil {
			fail(err)
			return true
		}
		httpapi.WriteJSON(w, http.StatusCreated, ep)
	case op == "deregister" && r.Method == http.MethodPost && r.URL.Path == "/.mesh/deregister":
		var req api.MeshDeregisterRequest
		if err := decodeControl(r.Body, &req); err != nil {
			fail(err)
			return true
		}
		n, err := m.deregisterLocal(req)
		if err != nil {
			fail(err)
			return true
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]int{"removed": n})
	default:
		fail(fmt.Errorf("%w: unknown control request %q %s %s", ErrBadRequest, op, r.Method, r.URL.Path))
	}
	return true
}

// control sends a registry write to node to and decodes its answer into out.
func (m *Service) control(to peer.ID, op string, req, out any) error {
	name, _ := m.members.NameOf(to.String())
	if name == "" {
		name = to.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(m.ctx, controlTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://mesh/.mesh/"+op, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set(hdrControl, op)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := m.pool.remote(to, false).RoundTrip(hr)
	if err != nil {
		return fmt.Errorf("mesh: %s on node %s: %s", op, name, shortErr(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxControlBody))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return fmt.Errorf("%w: on node %s: %s", ErrBadRequest, name, strings.TrimPrefix(msg, ErrBadRequest.Error()+": "))
		case http.StatusNotFound:
			return fmt.Errorf("%w: on node %s: %s", ErrUnknownService, name, strings.TrimPrefix(msg, ErrUnknownService.Error()+": "))
		}
		msg = "on node " + name + ": " + msg
		return errors.New("mesh: " + op + " " + msg)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("mesh: %s on node %s: answer: %v", op, name, err)
	}
	return nil
}
