package api

// UILoginRequest is the body of POST /ui/login (JSON; the same field as a form value).
type UILoginRequest struct {
	Token string `json:"token"`
}

// UISession is GET /ui/session (and the answer to a JSON POST /ui/login): who the caller
// is and what it may do, so the dashboard shows only the actions the caller may take.
type UISession struct {
	Kind      string `json:"kind"` // token, bootstrap, socket
	Name      string `json:"name"`
	ID        string `json:"id,omitempty"`
	Role      string `json:"role"`
	Namespace string `json:"namespace,omitempty"`
	// Permissions are the "resource:verb" permissions the caller holds (write implies read).
	Permissions []string `json:"permissions"`
	// CSRFToken must be sent as the X-CSRF-Token header of every mutating request that
	// authenticates by the session cookie (empty when the request carried no session).
	CSRFToken string `json:"csrf_token,omitempty"`
	// Expires is when the session ends (RFC 3339; empty without a session).
	Expires string `json:"expires,omitempty"`
}
