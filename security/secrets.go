package security

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

// Secrets are encrypted before they enter the replicated state: XChaCha20-Poly1305 with a
// 256-bit data key derived by HKDF-SHA256 from the cluster key and a key generation's
// random salt (replicated in CollSecretKeys). A value is decrypted only by the node that
// needs it (an instance's node at start, or an admin's explicit `secrets get`). Rotation
// adds a generation and re-encrypts every version of every secret with it.
const (
	// CollSecrets holds one SecretRecord per namespace/name.
	CollSecrets = "secrets"
	// CollSecretKeys holds one KeyGenRecord per key generation, keyed by its random ID.
	CollSecretKeys = "secret_keys"
	// MaxSecretBytes bounds a secret's value.
	MaxSecretBytes = 64 << 10
	// keepVersions is how many versions of a secret are kept.
	keepVersions = 10
)

// SecretRecord is a secret as replicated: its versions, each encrypted.
type SecretRecord struct {
	Namespace string          `cbor:"1,keyasint"`
	Name      string          `cbor:"2,keyasint"`
	Versions  []SecretVersion `cbor:"3,keyasint"` // oldest first
}

// SecretVersion is one encrypted value.
type SecretVersion struct {
	Version   int    `cbor:"1,keyasint"`
	KeyGen    string `cbor:"2,keyasint"` // the key generation's ID
	Nonce     []byte `cbor:"3,keyasint"`
	Box       []byte `cbor:"4,keyasint"` // ciphertext and tag
	Created   int64  `cbor:"5,keyasint"`
	CreatedBy string `cbor:"6,keyasint,omitempty"`
}

// KeyGenRecord is a key generation: the salt the data key is derived with.
type KeyGenRecord struct {
	ID      string `cbor:"1,keyasint"`
	Salt    []byte `cbor:"2,keyasint"`
	Created int64  `cbor:"3,keyasint"`
}

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// SecretNameRule describes a valid secret name (it is also the environment variable).
const SecretNameRule = "an identifier: 1-128 letters, digits or '_', not starting with a digit, e.g. db_password"

// Errors of secrets.
var (
	ErrNoClusterKey = errors.New("secrets need a cluster key")
	ErrSecretKey    = errors.New("secret cannot be decrypted")
)

func secretKey(ns, name string) string { return ns + "/" + name }

func checkSecretName(ns, name string) (string, error) {
	if !secretNameRE.MatchString(name) {
		return "", httpapi.BadRequest("invalid secret name %q: %s (an instance's reference may end in %q: the secret as a file in /run/secrets)", name, SecretNameRule, SecretFileSuffix)
	}
	if ns == "" {
		ns = api.DefaultNamespace
	}
	if !api.ValidNamespace(ns) {
		return "", httpapi.BadRequest("invalid namespace %q: %s", ns, api.NamespaceRule)
	}
	return ns, nil
}

func (s *Service) dataKey(g KeyGenRecord) ([]byte, error) {
	if s.cfg.ClusterKey == "" {
		return nil, ErrNoClusterKey
	}
	return hkdf.Key(sha256.New, []byte(s.cfg.ClusterKey), g.Salt, "constellation secrets v1", chacha20poly1305.KeySize)
}

// keyGens reads every key generation, the newest last.
func keyGens(v *state.View) []KeyGenRecord {
	var out []KeyGenRecord
	for _, k := range v.Keys(CollSecretKeys) {
		b, _, ok := v.GetLWW(CollSecretKeys, k)
		var g KeyGenRecord
		if ok && state.Decode(b, &g) == nil && g.ID == k && len(g.Salt) == 32 {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func newKeyGen(now time.Time) (KeyGenRecord, error) {
	var b [8 + 32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return KeyGenRecord{}, err
	}
	return KeyGenRecord{ID: hex.EncodeToString(b[:8]), Salt: b[8:], Created: now.UnixNano()}, nil
}

func aad(ns, name string, version int) []byte {
	return []byte(ns + "\x00" + name + "\x00" + strconv.Itoa(version))
}

func (s *Service) seal(g KeyGenRecord, ns, name string, version int, value []byte) (SecretVersion, error) {
	key, err := s.dataKey(g)
	if err != nil {
		return SecretVersion{}, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return SecretVersion{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return SecretVersion{}, err
	}
	return SecretVersion{Version: version, KeyGen: g.ID, Nonce: nonce, Box: aead.Seal(nil, nonce, value, aad(ns, name, version))}, nil
}

func (s *Service) open(gens []KeyGenRecord, ns, name string, sv SecretVersion) ([]byte, error) {
	for _, g := range gens {
		if g.ID != sv.KeyGen {
			continue
		}
		key, err := s.dataKey(g)
		if err != nil {
			return nil, err
		}
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, err
		}
		if len(sv.Nonce) != aead.NonceSize() {
			break
		}
		pt, err := aead.Open(nil, sv.Nonce, sv.Box, aad(ns, name, sv.Version))
		if err != nil {
			return nil, fmt.Errorf("%w: secret %s/%s version %d does not open with key generation %s (another cluster key?)", ErrSecretKey, ns, name, sv.Version, g.ID)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("%w: secret %s/%s version %d: key generation %s unknown here", ErrSecretKey, ns, name, sv.Version, sv.KeyGen)
}

func (s *Service) secret(ns, name string) (SecretRecord, bool) {
	b, ok := s.get(CollSecrets, secretKey(ns, name))
	var r SecretRecord
	if !ok || state.Decode(b, &r) != nil || len(r.Versions) == 0 {
		return r, false
	}
	return r, true
}

// SetSecret stores a new version of namespace/name.
func (s *Service) SetSecret(ns, name string, value []byte, by string) (api.SecretInfo, error) {
	ns, err := checkSecretName(ns, name)
	if err != nil {
		return api.SecretInfo{}, err
	}
	if len(value) > MaxSecretBytes {
		return api.SecretInfo{}, httpapi.BadRequest("secret %s: %d bytes, at most %d", name, len(value), MaxSecretBytes)
	}
	if s.cfg.ClusterKey == "" {
		return api.SecretInfo{}, httpapi.Errorf(http.StatusConflict, "no_cluster_key", "%v: start the cluster's nodes with --cluster-key (see 'constellation keygen'); without one the replicated state is readable by anyone who joins", ErrNoClusterKey)
	}
	if err := s.CheckNamespace(ns); err != nil {
		return api.SecretInfo{}, err
	}
	now := s.cfg.Now()
	var rec SecretRecord
	err = s.st.Update(func(tx *state.Tx) error {
		gens := keyGens(&tx.View)
		if len(gens) == 0 {
			g, err := newKeyGen(now)
			if err != nil {
				return err
			}
			b, _ := state.Encode(&g)
			if err := tx.Put(CollSecretKeys, g.ID, b); err != nil {
				return err
			}
			gens = append(gens, g)
		}
		rec = SecretRecord{Namespace: ns, Name: name}
		if b, _, ok := tx.GetLWW(CollSecrets, secretKey(ns, name)); ok {
			_ = state.Decode(b, &rec)
		}
		version := 1
		if n := len(rec.Versions); n > 0 {
			version = rec.Versions[n-1].Version + 1
		}
		sv, err := s.seal(gens[len(gens)-1], ns, name, version, value)
		if err != nil {
			return err
		}
		sv.Created, sv.CreatedBy = now.UnixNano(), by
		rec.Versions = append(rec.Versions, sv)
		if len(rec.Versions) > keepVersions {
			rec.Versions = rec.Versions[len(rec.Versions)-keepVersions:]
		}
		b, err := state.Encode(&rec)
		if err != nil {
			return err
		}
		return tx.Put(CollSecrets, secretKey(ns, name), b)
	})
	if err != nil {
		return api.SecretInfo{}, err
	}
	return secretInfo(rec), nil
}

func secretInfo(r SecretRecord) api.SecretInfo {
	in := api.SecretInfo{Namespace: r.Namespace, Name: r.Name}
	for _, v := range r.Versions {
		in.Versions = append(in.Versions, api.SecretVersionInfo{Version: v.Version, Created: time.Unix(0, v.Created).UTC(), CreatedBy: v.CreatedBy})
	}
	if n := len(r.Versions); n > 0 {
		in.Version = r.Versions[n-1].Version
		in.Updated, in.UpdatedBy = in.Versions[n-1].Created, in.Versions[n-1].CreatedBy
	}
	return in
}

// Secrets lists the secrets (names, versions, who, when; never values) of a namespace
// ("": every namespace).
func (s *Service) Secrets(ns string) []api.SecretInfo {
	out := []api.SecretInfo{}
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollSecrets) {
			b, _, ok := v.GetLWW(CollSecrets, k)
			var r SecretRecord
			if !ok || state.Decode(b, &r) != nil || len(r.Versions) == 0 || ns != "" && r.Namespace != ns {
				continue
			}
			out = append(out, secretInfo(r))
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ErrSecretNotFound means no secret has the name in the namespace.
var ErrSecretNotFound = errors.New("secret not found")

// RemoveSecret removes a secret and its versions.
func (s *Service) RemoveSecret(ns, name string) error {
	ns, err := checkSecretName(ns, name)
	if err != nil {
		return err
	}
	if _, ok := s.secret(ns, name); !ok {
		return fmt.Errorf("%w: no secret %q in namespace %s ('constellation secrets list')", ErrSecretNotFound, name, ns)
	}
	return s.st.Update(func(tx *state.Tx) error { return tx.Remove(CollSecrets, secretKey(ns, name)) })
}

// Reveal decrypts a secret's value (version 0: the latest).
func (s *Service) Reveal(ns, name string, version int) ([]byte, int, error) {
	ns, err := checkSecretName(ns, name)
	if err != nil {
		return nil, 0, err
	}
	r, ok := s.secret(ns, name)
	if !ok {
		return nil, 0, fmt.Errorf("%w: no secret %q in namespace %s ('constellation secrets list')", ErrSecretNotFound, name, ns)
	}
	sv := r.Versions[len(r.Versions)-1]
	if version != 0 {
		found := false
		for _, v := range r.Versions {
			if v.Version == version {
				sv, found = v, true
			}
		}
		if !found {
			return nil, 0, fmt.Errorf("%w: secret %s/%s has no version %d (kept: the last %d)", ErrSecretNotFound, ns, name, version, keepVersions)
		}
	}
	var gens []KeyGenRecord
	s.st.View(func(v *state.View) { gens = keyGens(v) })
	pt, err := s.open(gens, ns, name, sv)
	return pt, sv.Version, err
}

// SecretFileSuffix marks a secret reference an instance gets as a file
// (/run/secrets/NAME) rather than as an environment variable: "db_password:file".
const SecretFileSuffix = ":file"

// secretRef splits a reference "NAME" or "NAME:file".
func secretRef(ref string) (name string, file bool) {
	if n, ok := strings.CutSuffix(ref, SecretFileSuffix); ok {
		return n, true
	}
	return ref, false
}

// SecretEnv decrypts the latest values of the env references among refs in namespace ns
// (an instance's secrets, on the node that starts it).
func (s *Service) SecretEnv(ns string, refs []string) (map[string]string, error) {
	return s.reveal(ns, refs, false)
}

// SecretFiles decrypts the latest values of the file references ("NAME:file") among refs:
// the files of the instance's /run/secrets, keyed by NAME.
func (s *Service) SecretFiles(ns string, refs []string) (map[string][]byte, error) {
	m, err := s.reveal(ns, refs, true)
	if err != nil || len(m) == 0 {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}

func (s *Service) reveal(ns string, refs []string, files bool) (map[string]string, error) {
	if ns == "" {
		ns = api.DefaultNamespace
	}
	out := map[string]string{}
	for _, ref := range refs {
		n, file := secretRef(ref)
		if file != files {
			continue
		}
		v, _, err := s.Reveal(ns, n, 0)
		if err != nil {
			return nil, err
		}
		out[n] = string(v)
	}
	return out, nil
}

// CheckSecrets reports whether every name is a valid secret that exists in ns.
func (s *Service) CheckSecrets(ns string, names []string) error {
	if ns == "" {
		ns = api.DefaultNamespace
	}
	for _, ref := range names {
		n, _ := secretRef(ref)
		if _, err := checkSecretName(ns, n); err != nil {
			return err
		}
		if _, ok := s.secret(ns, n); !ok {
			return httpapi.BadRequest(`secret %q does not exist in namespace %s: set it first with 'constellation secrets set %s --namespace %s'`, n, ns, n, ns)
		}
	}
	return nil
}

// RotateKey adds a key generation and re-encrypts every version of every secret with it.
func (s *Service) RotateKey() (api.RotateKeyResult, error) {
	if s.cfg.ClusterKey == "" {
		return api.RotateKeyResult{}, httpapi.Errorf(http.StatusConflict, "no_cluster_key", "%v: start the cluster's nodes with --cluster-key", ErrNoClusterKey)
	}
	var res api.RotateKeyResult
	err := s.st.Update(func(tx *state.Tx) error {
		gens := keyGens(&tx.View)
		g, err := newKeyGen(s.cfg.Now())
		if err != nil {
			return err
		}
		if n := len(gens); n > 0 && g.Created <= gens[n-1].Created {
			g.Created = gens[n-1].Created + 1
		}
		all := append(gens, g)
		type upd struct {
			key string
			b   []byte
		}
		var ups []upd
		for _, k := range tx.Keys(CollSecrets) {
			b, _, ok := tx.GetLWW(CollSecrets, k)
			var r SecretRecord
			if !ok || state.Decode(b, &r) != nil {
				continue
			}
			for i, sv := range r.Versions {
				pt, err := s.open(all, r.Namespace, r.Name, sv)
				if err != nil {
					return err // nothing is written: the rotation is all or nothing
				}
				nv, err := s.seal(g, r.Namespace, r.Name, sv.Version, pt)
				if err != nil {
					return err
				}
				nv.Created, nv.CreatedBy = sv.Created, sv.CreatedBy
				r.Versions[i] = nv
				res.Versions++
			}
			nb, err := state.Encode(&r)
			if err != nil {
				return err
			}
			ups = append(ups, upd{k, nb})
			res.Secrets++
		}
		gb, _ := state.Encode(&g)
		if err := tx.Put(CollSecretKeys, g.ID, gb); err != nil {
			return err
		}
		for _, u := range ups {
			if err := tx.Put(CollSecrets, u.key, u.b); err != nil {
				return err
			}
		}
		res.KeyGeneration, res.Generations = g.ID, len(all)
		return nil
	})
	return res, err
}
