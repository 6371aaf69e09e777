package api

import "time"

// TokenCreateRequest is POST /v1/acl/tokens.
type TokenCreateRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Namespace binds the token to one namespace ("": every namespace).
	Namespace string `json:"namespace,omitempty"`
	// TTL is a Go duration ("24h"); "" never expires.
	TTL string `json:"ttl,omitempty"`
}

// TokenInfo describes a token (never its secret).
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Namespace string     `json:"namespace,omitempty"`
	Status    string     `json:"status"` // active, expired, revoked
	Created   time.Time  `json:"created"`
	CreatedBy string     `json:"created_by,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// TokenCreated is the answer to a token create: the secret, shown this once.
type TokenCreated struct {
	TokenInfo
	Secret string `json:"secret"`
}

// RoleRequest is POST /v1/acl/roles (create or replace a custom role).
type RoleRequest struct {
	Name  string   `json:"name"`
	Rules []string `json:"rules"`
}

// RoleInfo describes a role.
type RoleInfo struct {
	Name      string     `json:"name"`
	Rules     []string   `json:"rules"`
	Builtin   bool       `json:"builtin"`
	Created   *time.Time `json:"created,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
}

// WhoAmI is GET /v1/acl/whoami: the caller as the node sees it.
type WhoAmI struct {
	// Kind is socket (the node's Unix socket), bootstrap (the node's api.token over TCP),
	// token (an API token) or instance (an instance's own socket).
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	ID        string `json:"id,omitempty"`
	Role      string `json:"role"`
	Namespace string `json:"namespace,omitempty"`
}

// AuditEntry is one line of a node's audit log.
type AuditEntry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Node      string    `json:"node"`
	Caller    string    `json:"caller"`              // token name, instance name, "socket", "bootstrap", "node NAME" (forwarded)
	CallerID  string    `json:"caller_id,omitempty"` // token ID or instance ID
	Kind      string    `json:"kind"`                // as WhoAmI.Kind, or forwarded (from another node)
	Method    string    `json:"method"`
	Route     string    `json:"route"`  // the route pattern
	Target    string    `json:"target"` // the request path
	Status    int       `json:"status"`
	RequestID string    `json:"request_id"`
	Prev      string    `json:"prev"` // hash of the previous line
	Hash      string    `json:"hash"` // sha256 of this line without this field
}

// AuditVerify is one node's answer to GET /v1/audit/verify.
type AuditVerify struct {
	Node    string `json:"node"`
	Entries int    `json:"entries"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// AuditResult is GET /v1/audit: entries of every node that answered, merged by time.
type AuditResult struct {
	Entries []AuditEntry      `json:"entries"`
	Errors  map[string]string `json:"errors,omitempty"` // node -> why it did not answer
}

// SecretSetRequest is PUT /v1/secrets/{ns}/{name}: a new version of the secret.
type SecretSetRequest struct {
	Value string `json:"value"`
}

// SecretInfo describes a secret: never its value.
type SecretInfo struct {
	Namespace string              `json:"namespace"`
	Name      string              `json:"name"`
	Version   int                 `json:"version"` // the latest
	Updated   time.Time           `json:"updated"`
	UpdatedBy string              `json:"updated_by,omitempty"`
	Versions  []SecretVersionInfo `json:"versions"`
}

// SecretVersionInfo is one kept version of a secret.
type SecretVersionInfo struct {
	Version   int       `json:"version"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// SecretValue is POST /v1/secrets/{ns}/{name}/reveal (admin only).
type SecretValue struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   int    `json:"version"`
	Value     string `json:"value"`
}

// RotateKeyResult is POST /v1/secrets/rotate-key.
type RotateKeyResult struct {
	KeyGeneration string `json:"key_generation"`
	Generations   int    `json:"generations"`
	Secrets       int    `json:"secrets"`
	Versions      int    `json:"versions"` // re-encrypted
}

// NamespaceRequest is POST /v1/namespaces.
type NamespaceRequest struct {
	Name  string    `json:"name"`
	Quota QuotaSpec `json:"quota,omitempty"`
	// AutoDeleteAfter deletes the namespace and everything in it this long after its
	// creation (a Go duration such as "24h"; "" never).
	AutoDeleteAfter string `json:"auto_delete_after,omitempty"`
}

// NamespaceInfo describes a namespace.
type NamespaceInfo struct {
	Name            string     `json:"name"`
	Status          string     `json:"status"` // active or deleted
	Created         time.Time  `json:"created"`
	CreatedBy       string     `json:"created_by,omitempty"`
	AutoDeleteAfter string     `json:"auto_delete_after,omitempty"`
	Expires         *time.Time `json:"expires,omitempty"`
	Deleted         *time.Time `json:"deleted,omitempty"`
	DeletedBy       string     `json:"deleted_by,omitempty"`
	Quota           *QuotaInfo `json:"quota,omitempty"`
}
