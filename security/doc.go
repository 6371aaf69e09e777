// Package security holds the cluster's access control, audit log and secrets.
//
//   - Tokens and roles (token.go, perm.go, service.go): API tokens are replicated records
//     (collection acl_tokens) holding the SHA-256 of a 256-bit secret; roles are the
//     built-in admin, operator and viewer or custom lists of resource:verb rules
//     (acl_roles). RoutePerms is THE table from every API route to the permission it
//     needs; the service installs an httpapi.Authenticator on the TCP listener (the
//     bootstrap token and the Unix socket stay admin) and an httpapi.Guard that applies
//     the table, and namespace-bound tokens' confinement, to token callers. A revoked or
//     expired token's open requests end.
//   - Audit log (audit.go): every mutating request, seen through an httpapi.Observer, and
//     every request forwarded from another node, is appended to a per-node, hash-chained
//     JSON-lines file with retention; queries and verification fan out over the
//     member-only protocol security/1.0.0.
//   - Secrets (secrets.go): values sealed with XChaCha20-Poly1305 under a key derived by
//     HKDF from the cluster key and a replicated key generation, versioned, rotated by
//     re-encryption, decrypted only where an instance starts (SecretEnv) or for an
//     admin's explicit reveal.
//
// It reaches the instance service and the scheduler only through the functions node
// passes in its Config (InstanceCaller, NamespaceOf). See docs/security.md.
package security
