package security

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Replicated collections.
const (
	// CollTokens holds one TokenRecord per token, keyed by its ID. A revoked token stays
	// (Revoked set) so that its callers are told why they are refused.
	CollTokens = "acl_tokens"
	// CollRoles holds one RoleRecord per custom role, keyed by its name.
	CollRoles = "acl_roles"
)

// TokenRecord is a token as replicated: the SHA-256 of its secret, never the secret.
type TokenRecord struct {
	ID        string `cbor:"1,keyasint"`
	Name      string `cbor:"2,keyasint"`
	Role      string `cbor:"3,keyasint"`
	Namespace string `cbor:"4,keyasint,omitempty"` // "": every namespace
	Hash      []byte `cbor:"5,keyasint"`
	Created   int64  `cbor:"6,keyasint"` // unix nanoseconds
	Expires   int64  `cbor:"7,keyasint,omitempty"`
	CreatedBy string `cbor:"8,keyasint,omitempty"`
	Revoked   int64  `cbor:"9,keyasint,omitempty"`
	RevokedBy string `cbor:"10,keyasint,omitempty"`
}

// RoleRecord is a custom role as replicated.
type RoleRecord struct {
	Name      string   `cbor:"1,keyasint"`
	Rules     []string `cbor:"2,keyasint"`
	Created   int64    `cbor:"3,keyasint"`
	CreatedBy string   `cbor:"4,keyasint,omitempty"`
}

// Token format: "cst_" + 24 hex digits of ID + "_" + 64 hex digits of secret (256 bits).
const tokenPrefix = "cst_"

var (
	idRE   = regexp.MustCompile(`^[0-9a-f]{24}$`)
	nameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,62})$`)
)

// NameRule describes a valid token or role name.
const NameRule = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"

// ValidName reports whether s is a valid token or role name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// newToken returns a token's ID, the full secret string the caller shows once, and its hash.
func newToken() (id, secret string, hash []byte, err error) {
	var b [12 + 32]byte
	if _, err = rand.Read(b[:]); err != nil {
		return "", "", nil, err
	}
	id = hex.EncodeToString(b[:12])
	sec := hex.EncodeToString(b[12:])
	h := sha256.Sum256([]byte(sec))
	return id, tokenPrefix + id + "_" + sec, h[:], nil
}

// parseToken splits a bearer token into its ID and secret part (ok false: not a
// constellation token).
func parseToken(tok string) (id, sec string, ok bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(rest) != 24+1+64 || rest[24] != '_' {
		return "", "", false
	}
	id, sec = rest[:24], rest[25:]
	return id, sec, idRE.MatchString(id)
}

// Reasons a token is refused (401), in the words the caller sees.
var (
	ErrTokenUnknown = errors.New("unknown token")
	ErrTokenRevoked = errors.New("token revoked")
	ErrTokenExpired = errors.New("token expired")
)

// check verifies sec against the record at time now (constant-time hash compare).
func (t *TokenRecord) check(sec string, now time.Time) error {
	h := sha256.Sum256([]byte(sec))
	if subtle.ConstantTimeCompare(h[:], t.Hash) != 1 {
		return ErrTokenUnknown
	}
	if t.Revoked != 0 {
		return fmt.Errorf("%w at %s by %s", ErrTokenRevoked, time.Unix(0, t.Revoked).UTC().Format(time.RFC3339), orUnknown(t.RevokedBy))
	}
	if t.Expires != 0 && now.UnixNano() >= t.Expires {
		return fmt.Errorf("%w at %s", ErrTokenExpired, time.Unix(0, t.Expires).UTC().Format(time.RFC3339))
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
