package security

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

// Sealing for other features: a feature that must keep a credential in the replicated
// state (an alert channel's SMTP password or PagerDuty routing key) seals it with the
// secrets' data key, so the state, its snapshots on disk and anti-entropy carry ciphertext
// only, and opens it on the node that uses it. The purpose string is bound into the AEAD
// (a value sealed for one purpose does not open for another). Key generations are never
// removed, so a value sealed before a rotation still opens after it.

// sealedValue is the encoded form Seal returns.
type sealedValue struct {
	KeyGen string `cbor:"1,keyasint"`
	Nonce  []byte `cbor:"2,keyasint"`
	Box    []byte `cbor:"3,keyasint"`
}

// maxSealed bounds what Seal takes and Open decodes.
const maxSealed = 64 << 10

// Seal encrypts value for purpose with the newest key generation (creating the first one
// when none exists). It fails with ErrNoClusterKey (409 no_cluster_key) when the node has
// no cluster key.
func (s *Service) Seal(purpose string, value []byte) ([]byte, error) {
	if s.cfg.ClusterKey == "" {
		return nil, httpapi.Errorf(http.StatusConflict, "no_cluster_key", "%v: start the cluster's nodes with --cluster-key to store credentials encrypted", ErrNoClusterKey)
	}
	if len(value) > maxSealed {
		return nil, httpapi.BadRequest("sealed value of %d bytes, at most %d", len(value), maxSealed)
	}
	var g KeyGenRecord
	err := s.st.Update(func(tx *state.Tx) error {
		gens := keyGens(&tx.View)
		if len(gens) > 0 {
			g = gens[len(gens)-1]
			return nil
		}
		var err error
		if g, err = newKeyGen(s.cfg.Now()); err != nil {
			return err
		}
		b, _ := state.Encode(&g)
		return tx.Put(CollSecretKeys, g.ID, b)
	})
	if err != nil {
		return nil, err
	}
	sv, err := s.seal(g, "\x01seal", purpose, 0, value)
	if err != nil {
		return nil, err
	}
	return state.Encode(&sealedValue{KeyGen: sv.KeyGen, Nonce: sv.Nonce, Box: sv.Box})
}

// Open decrypts what Seal returned for the same purpose.
func (s *Service) Open(purpose string, sealed []byte) ([]byte, error) {
	if len(sealed) > maxSealed+256 {
		return nil, errors.New("security: sealed value too large")
	}
	var v sealedValue
	if err := state.Decode(sealed, &v); err != nil {
		return nil, fmt.Errorf("security: sealed value: %w", err)
	}
	var gens []KeyGenRecord
	s.st.View(func(vw *state.View) { gens = keyGens(vw) })
	pt, err := s.open(gens, "\x01seal", purpose, SecretVersion{KeyGen: v.KeyGen, Nonce: v.Nonce, Box: v.Box})
	if err != nil {
		return nil, fmt.Errorf("open sealed %s: %w", purpose, err)
	}
	return pt, nil
}
