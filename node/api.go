package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/events"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/scheduler"
)

// The node's own routes: status, nodes, events, send and broadcast. Features register
// theirs (instances, scheduling) on the same server.
func (n *Node) registerRoutes(s *httpapi.Server) {
	s.Handle("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, n.Status())
	})
	s.Handle("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		if !httpapi.Block(w, r, n.st, CollNodes, scheduler.CollDrains) { // records, statuses (membership touches it), drains
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, n.Nodes())
	})
	s.Handle("GET /v1/events", n.handleEvents)
	s.Handle("POST /v1/send", n.handleSend)
	s.Handle("POST /v1/broadcast", n.handleBroadcast)
}

func init() {
	httpapi.Classify(http.StatusNotFound, "not_found", ErrNodeNotFound)
	httpapi.Classify(http.StatusServiceUnavailable, "unavailable", ErrNodeUnavailable)
}

func validMessage(typ string, data json.RawMessage) error {
	if typ == "" || len(typ) > 128 {
		return httpapi.BadRequest(`field "type" is required: 1-128 characters, e.g. "config_update"`)
	}
	if len(data) == 0 {
		return httpapi.BadRequest(`field "data" is required: any JSON value, e.g. {"key": "value"}`)
	}
	return nil
}

func (n *Node) handleSend(w http.ResponseWriter, r *http.Request) {
	var req api.SendRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	if req.Node == "" {
		httpapi.WriteErr(w, httpapi.BadRequest(`field "node" is required: a node name or peer ID from 'constellation nodes'`))
		return
	}
	if err := validMessage(req.Type, req.Data); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	res, err := n.Send(ctx, req.Node, req.Type, req.Data)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (n *Node) handleBroadcast(w http.ResponseWriter, r *http.Request) {
	var req api.BroadcastRequest
	if !httpapi.Decode(w, r, &req) {
		return
	}
	if err := validMessage(req.Type, req.Data); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	res, err := n.Broadcast(ctx, req.Type, req.Data)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// streamEventTypes are the event types GET /v1/events can filter on.
var streamEventTypes = []string{api.EventNodeJoin, api.EventNodeLeave, api.EventNodeSuspect, api.EventNodeDead,
	api.EventNodeAlive, api.EventMessage, api.EventInstance}

// handleEvents streams events as Server-Sent Events. Query: type=a,b filters by type;
// the Last-Event-ID header (or ?since=N) resumes after an event sequence number.
func (n *Node) handleEvents(w http.ResponseWriter, r *http.Request) {
	types := map[string]bool{}
	if t := r.URL.Query().Get("type"); t != "" {
		for _, x := range strings.Split(t, ",") {
			known := false
			for _, k := range streamEventTypes {
				known = known || k == x
			}
			if !known {
				httpapi.WriteErr(w, httpapi.BadRequest("unknown event type %q; known: %s", x, strings.Join(streamEventTypes, ", ")))
				return
			}
			types[x] = true
		}
	}
	// Without Last-Event-ID or ?since only new events are sent; ?since=0 replays all retained.
	after, replay := uint64(0), false
	if h := r.Header.Get("Last-Event-ID"); h != "" {
		after, replay = events.ParseSeq(h), true
	}
	if r.URL.Query().Has("since") {
		after, replay = events.ParseSeq(r.URL.Query().Get("since")), true
	}
	ch, cancel := n.events.Subscribe(after, replay)
	defer cancel()
	sse, err := httpapi.StartSSE(w, fmt.Sprintf("constellation events from %s", n.cfg.Node))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done(): // the client left, or the node is closing
			return
		case <-keepalive.C:
			_ = sse.Comment("keepalive")
		case e := <-ch:
			if len(types) > 0 && !types[e.Type] {
				continue
			}
			b, _ := json.Marshal(e)
			if sse.Send(e.Seq, e.Type, b) != nil {
				return
			}
		}
	}
}
