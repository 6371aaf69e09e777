package api

import "encoding/json"

// APIError is the JSON body of every error answer of the local API.
type APIError struct {
	Error string `json:"error"` // what is wrong and what would be right
	Code  string `json:"code"`  // machine-readable class, e.g. "bad_request", "not_found"
}

// SendRequest is the body of POST /v1/send.
type SendRequest struct {
	Node string          `json:"node"` // node name or peer ID
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// BroadcastRequest is the body of POST /v1/broadcast.
type BroadcastRequest struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// SendResult answers POST /v1/send and /v1/broadcast.
type SendResult struct {
	ID    string   `json:"id"`
	Nodes []string `json:"nodes"` // names of the nodes that acknowledged
}
