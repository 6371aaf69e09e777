package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/rads-lang/constellation/internal/fsutil"
)

// LoadIdentity reads the libp2p private key in path, or creates an Ed25519 key there
// (mode 0600, parent directories 0700) when the file does not exist. A file that
// exists but does not decode is an error naming the file; it is never overwritten.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("p2p: identity file %s is corrupt (%v); move it away to create a new identity (the node gets a new peer ID)", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("p2p: read identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate identity: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("p2p: marshal identity: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("p2p: identity dir: %w", err)
	}
	// A crash never leaves a half-written key (fsutil.WriteFile: temp, fsync, rename, fsync dir).
	if err := fsutil.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("p2p: write identity: %w", err)
	}
	return k, nil
}
