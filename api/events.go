package api

import (
	"encoding/json"
	"time"
)

// Event types streamed by GET /v1/events and `constellation events`.
const (
	EventNodeJoin    = "node_join"    // a node became alive (first seen, or back after dead/left)
	EventNodeLeave   = "node_leave"   // a node left gracefully
	EventNodeSuspect = "node_suspect" // a node stopped answering probes; may still be alive
	EventNodeDead    = "node_dead"    // a node was confirmed dead by the failure detector
	EventNodeAlive   = "node_alive"   // a suspect node answered again (refuted the suspicion)
	EventMessage     = "message"      // a message sent with `constellation send` or `broadcast`
)

// Event is one entry of the node's event stream.
type Event struct {
	Seq  uint64          `json:"seq"` // per-node, increasing; SSE id
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Node *EventNode      `json:"node,omitempty"`    // the node the event is about
	Msg  *MessageEvent   `json:"message,omitempty"` // for "message"
	Data json.RawMessage `json:"data,omitempty"`
}

// EventNode names the node an event is about.
type EventNode struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// MessageEvent is a message delivered to this node.
type MessageEvent struct {
	ID       string          `json:"id"` // unique per send; receivers de-duplicate on it
	Type     string          `json:"type"`
	From     string          `json:"from"` // sender's peer ID
	FromName string          `json:"from_name,omitempty"`
	Data     json.RawMessage `json:"data"`
}
