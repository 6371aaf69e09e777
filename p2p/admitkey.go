package p2p

// The admission key: the cluster key stretched with argon2id (memory-hard, so each guess
// of an offline dictionary attack costs what one derivation costs here) and then bound
// to the protocol with HKDF. It is derived once per process per (cluster, key) and cached,
// so admission itself costs two HMACs.

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of the admission key (RFC 9106 section 4, second recommended
// option: t=3 passes over 64 MiB with 4 lanes). One derivation takes about a quarter of a
// second on one core and 64 MiB of memory; it runs once per process. Changing them
// changes every admission key, so they are part of the protocol version.
const (
	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 4
)

const admitLabel = "constellation-admit-v2"

type derivedKey struct {
	once sync.Once
	key  []byte
}

// admitKeys caches derived keys per process (keyed by a hash of cluster and key, so the
// map holds no copy of the key itself). The node derives once at start; tests that start
// many hosts with one key pay once.
var admitKeys = struct {
	mu sync.Mutex // guards m
	m  map[[32]byte]*derivedKey
}{m: map[[32]byte]*derivedKey{}}

// admitKey returns the admission MAC key of cluster for clusterKey. An empty key is an
// open cluster: there is nothing to protect, so it is not stretched.
func admitKey(clusterKey, cluster string) []byte {
	if clusterKey == "" {
		return expandAdmitKey(nil, cluster)
	}
	id := sha256.Sum256([]byte(admitLabel + "\x00cache\x00" + cluster + "\x00" + clusterKey))
	admitKeys.mu.Lock()
	d := admitKeys.m[id]
	if d == nil {
		d = &derivedKey{}
		admitKeys.m[id] = d
	}
	admitKeys.mu.Unlock()
	d.once.Do(func() { d.key = expandAdmitKey(stretchKey(clusterKey, cluster), cluster) })
	return d.key
}

// stretchKey is argon2id(clusterKey) salted with the cluster name (public, but it makes a
// precomputed dictionary specific to one cluster name and this protocol).
func stretchKey(clusterKey, cluster string) []byte {
	salt := []byte(admitLabel + "\x00salt\x00" + cluster)
	return argon2.IDKey([]byte(clusterKey), salt, argonTime, argonMemory, argonThreads, 32)
}

func expandAdmitKey(secret []byte, cluster string) []byte {
	k, err := hkdf.Key(sha256.New, secret, []byte(admitLabel), "cluster:"+cluster, 32)
	if err != nil {
		panic(err) // only for impossible lengths
	}
	return k
}

// KeyBytes is the size of a key made by GenerateKey (256 bits).
const KeyBytes = 32

// GenerateKey returns a new random cluster key: KeyBytes bytes from crypto/rand as 64
// lowercase hex digits (safe in shells, YAML and environment variables).
func GenerateKey() string {
	b := make([]byte, KeyBytes)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// minKeyBits is the estimated entropy below which KeyStrength calls a key weak: with
// argon2id at ~0.25 core-seconds per guess, 2^80 guesses stay out of reach.
const minKeyBits = 80

// KeyStrength estimates whether a cluster key resists offline guessing by someone who
// captured one admission proof (a fake node that members dialled, see doc.go). A key from
// `constellation keygen` (64 hex digits or 43+ base64 characters decoding to >= 32 bytes)
// is strong. Other keys are judged by an estimate of their entropy: characters from the
// classes used, capped by how varied they are, and passphrases of words at ~13 bits a
// word (a 7776-word diceware list). weak is true below 80 bits or 16 characters, and
// reason says why and what to do. An empty key (an open cluster) is weak.
func KeyStrength(key string) (weak bool, reason string) {
	const fix = "generate one with `constellation keygen`"
	if key == "" {
		return true, "no cluster key: any host that can reach this node can join the cluster; " + fix
	}
	if randomKeyBytes(key) >= KeyBytes {
		return false, ""
	}
	if n := len([]rune(key)); n < 16 {
		return true, fmt.Sprintf("the cluster key has only %d characters (a guessable passphrase); %s", n, fix)
	}
	bits := estimateBits(key)
	if bits < minKeyBits {
		return true, fmt.Sprintf("the cluster key looks like a passphrase with about %.0f bits of entropy (want >= %d); %s", bits, minKeyBits, fix)
	}
	return false, ""
}

// randomKeyBytes returns how many bytes key decodes to as hex or base64 (0 if neither).
func randomKeyBytes(key string) int {
	if b, err := hex.DecodeString(key); err == nil {
		return len(b)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(key); err == nil {
			return len(b)
		}
	}
	return 0
}

// estimateBits is a deliberately pessimistic entropy estimate of a human-made key.
func estimateBits(key string) float64 {
	var lower, upper, digit, other bool
	counts := map[rune]int{}
	n := 0
	for _, r := range key {
		n++
		counts[r]++
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			other = true
		}
	}
	pool := 0
	for _, c := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}} {
		if c.used {
			pool += c.size
		}
	}
	byPool := float64(n) * math.Log2(float64(pool))
	// Shannon entropy of the characters actually used: "aaaa..." or "abab..." score low.
	var shannon float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		shannon -= p * math.Log2(p)
	}
	bits := min(byPool, shannon*float64(n))
	// Words: letters separated by spaces, dashes, dots or underscores count ~13 bits each,
	// plus the non-letter characters at their class size.
	words := strings.FieldsFunc(key, func(r rune) bool { return !unicode.IsLetter(r) })
	if len(words) >= 2 {
		nonLetters := 0
		for _, r := range key {
			if !unicode.IsLetter(r) && !strings.ContainsRune(" -._", r) {
				nonLetters++
			}
		}
		bits = min(bits, float64(len(words))*12.9+float64(nonLetters)*math.Log2(43))
	}
	return bits
}
