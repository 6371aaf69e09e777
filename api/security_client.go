package api

import (
	"context"
	"net/url"
	"strconv"
)

// CreateToken is POST /v1/acl/tokens.
func (c *Client) CreateToken(ctx context.Context, req TokenCreateRequest) (TokenCreated, error) {
	var r TokenCreated
	err := c.Post(ctx, "/v1/acl/tokens", req, &r)
	return r, err
}

// Tokens is GET /v1/acl/tokens.
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var r []TokenInfo
	err := c.Get(ctx, "/v1/acl/tokens", &r)
	return r, err
}

// RevokeToken is DELETE /v1/acl/tokens/{id} (an ID or a unique name).
func (c *Client) RevokeToken(ctx context.Context, idOrName string) (TokenInfo, error) {
	var r TokenInfo
	err := c.Delete(ctx, "/v1/acl/tokens/"+url.PathEscape(idOrName), &r)
	return r, err
}

// WhoAmI is GET /v1/acl/whoami.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var r WhoAmI
	err := c.Get(ctx, "/v1/acl/whoami", &r)
	return r, err
}

// CreateRole is POST /v1/acl/roles.
func (c *Client) CreateRole(ctx context.Context, req RoleRequest) (RoleInfo, error) {
	var r RoleInfo
	err := c.Post(ctx, "/v1/acl/roles", req, &r)
	return r, err
}

// Roles is GET /v1/acl/roles.
func (c *Client) Roles(ctx context.Context) ([]RoleInfo, error) {
	var r []RoleInfo
	err := c.Get(ctx, "/v1/acl/roles", &r)
	return r, err
}

// RemoveRole is DELETE /v1/acl/roles/{name}.
func (c *Client) RemoveRole(ctx context.Context, name string) error {
	return c.Delete(ctx, "/v1/acl/roles/"+url.PathEscape(name), nil)
}

// Audit is GET /v1/audit with the query q (since, who, route, limit).
func (c *Client) Audit(ctx context.Context, q url.Values) (AuditResult, error) {
	var r AuditResult
	p := "/v1/audit"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	err := c.Get(ctx, p, &r)
	return r, err
}

// AuditVerify is GET /v1/audit/verify (every node's chain).
func (c *Client) AuditVerify(ctx context.Context) ([]AuditVerify, error) {
	var r []AuditVerify
	err := c.Get(ctx, "/v1/audit/verify", &r)
	return r, err
}

func secretPath(ns, name string) string {
	if ns == "" {
		ns = DefaultNamespace
	}
	return "/v1/secrets/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

// SetSecret is PUT /v1/secrets/{ns}/{name}.
func (c *Client) SetSecret(ctx context.Context, ns, name, value string) (SecretInfo, error) {
	var r SecretInfo
	err := c.do(ctx, "PUT", secretPath(ns, name), SecretSetRequest{Value: value}, &r)
	return r, err
}

// Secrets is GET /v1/secrets (ns "": every namespace).
func (c *Client) Secrets(ctx context.Context, ns string) ([]SecretInfo, error) {
	var r []SecretInfo
	p := "/v1/secrets"
	if ns != "" {
		p += "?namespace=" + url.QueryEscape(ns)
	}
	err := c.Get(ctx, p, &r)
	return r, err
}

// RemoveSecret is DELETE /v1/secrets/{ns}/{name}.
func (c *Client) RemoveSecret(ctx context.Context, ns, name string) error {
	return c.Delete(ctx, secretPath(ns, name), nil)
}

// RevealSecret is POST /v1/secrets/{ns}/{name}/reveal (version 0: the latest).
func (c *Client) RevealSecret(ctx context.Context, ns, name string, version int) (SecretValue, error) {
	var r SecretValue
	p := secretPath(ns, name) + "/reveal"
	if version > 0 {
		p += "?version=" + strconv.Itoa(version)
	}
	err := c.Post(ctx, p, nil, &r)
	return r, err
}

// RotateSecretKey is POST /v1/secrets/rotate-key.
func (c *Client) RotateSecretKey(ctx context.Context) (RotateKeyResult, error) {
	var r RotateKeyResult
	err := c.Post(ctx, "/v1/secrets/rotate-key", nil, &r)
	return r, err
}

// CreateNamespace is POST /v1/namespaces.
func (c *Client) CreateNamespace(ctx context.Context, req NamespaceRequest) (NamespaceInfo, error) {
	var r NamespaceInfo
	err := c.Post(ctx, "/v1/namespaces", req, &r)
	return r, err
}

// Namespaces is GET /v1/namespaces.
func (c *Client) Namespaces(ctx context.Context) ([]NamespaceInfo, error) {
	var r []NamespaceInfo
	err := c.Get(ctx, "/v1/namespaces", &r)
	return r, err
}

// Namespace is GET /v1/namespaces/{ns}.
func (c *Client) Namespace(ctx context.Context, name string) (NamespaceInfo, error) {
	var r NamespaceInfo
	err := c.Get(ctx, "/v1/namespaces/"+url.PathEscape(name), &r)
	return r, err
}

// DeleteNamespace is DELETE /v1/namespaces/{ns}.
func (c *Client) DeleteNamespace(ctx context.Context, name string) (NamespaceInfo, error) {
	var r NamespaceInfo
	err := c.Delete(ctx, "/v1/namespaces/"+url.PathEscape(name), &r)
	return r, err
}
