package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rads-lang/constellation/p2p"
)

// Network is what the store needs of the p2p host: *p2p.Host satisfies it. Every
// protocol the store speaks goes through the member-only host, so a peer that did not
// pass admission can neither open a stream to the store nor be dialled by it.
type Network interface {
	// ID is this node's peer ID.
	ID() peer.ID
	// Libp2p is the member-only libp2p host (bitswap runs on it).
	Libp2p() host.Host
	// NewService registers a cluster protocol for admitted members only.
	NewService(name string, cfg p2p.ServiceConfig, handler p2p.Handler) (*p2p.Service, error)
	// IsAdmitted reports whether p passed admission on its current connection.
	IsAdmitted(p peer.ID) bool
}

// ContentRouter is an optional capability of a Network (*p2p.Host has it): the
// cluster's private DHT. With it, Pin announces the roots this node holds, and bitswap
// looks up providers there for what no known holder had (the last fallback).
type ContentRouter interface {
	ContentRouting() routing.ContentRouting
}

// Members decides who may receive blocks from this node (bitswap's request filter and
// the bulk protocol's handler ask it). Nil in Config: Network.IsAdmitted.
type Members interface {
	IsMember(p peer.ID) bool
}

// MembersFunc adapts a function to Members.
type MembersFunc func(peer.ID) bool

// IsMember calls f.
func (f MembersFunc) IsMember(p peer.ID) bool { return f(p) }

// Chunkers accepted by AddOptions.Chunker.
const (
	// ChunkerFixed is the default: fixed 256 KiB chunks.
	ChunkerFixed = "size-262144"
	// ChunkerBuzhash is content-defined chunking (boxo's buzhash: 128 KiB..512 KiB
	// chunks, about 256 KiB on average); an insert in a file changes only the chunks
	// around it, so versions of a file share most of their blocks.
	ChunkerBuzhash = "buzhash"
)

// Config configures a Store. Zero values take the documented defaults.
type Config struct {
	// Dir holds the block store (Dir/packs, segment files) and the pin records
	// (Dir/pins.json and Dir/pins.log). Required.
	Dir string
	// CacheBytes bounds the blocks that are neither pinned nor leased (fetched for a
	// read, unpinned, ...): past it the least recently used are deleted. Default 1 GiB;
	// negative: no cache (unprotected blocks are deleted as soon as they are stored).
	CacheBytes int64
	// Capacity bounds the bytes of all blocks in the store (the share of the disk the
	// node's resource ledger gives the DFS); 0: only the free space of the disk bounds
	// it. Add and Pin fail with ErrDiskFull past it, saying how many bytes were missing.
	Capacity int64
	// ClusterID is the cluster name; bitswap speaks the protocols
	// "/constellation/<cluster hash>/ipfs/bitswap/..." so that nodes of other clusters
	// and plain IPFS nodes never exchange wants with this one.
	ClusterID string
	// Members decides who may receive blocks (nil: Network.IsAdmitted).
	Members Members
	// Metrics receives the store's collectors (nil: a private registry).
	Metrics prometheus.Registerer
	// Log receives the store's log lines (nil: discarded).
	Log *slog.Logger
	// Clock tells the time for leases and deadlines (nil: time.Now).
	Clock func() time.Time
	// LeaseTTL is how long the blocks of an Add stay protected from GC when neither
	// Release nor Pin is called (default 1h).
	LeaseTTL time.Duration
	// FetchTimeout bounds one bulk request to one holder without progress (default 30s).
	FetchTimeout time.Duration
	// StreamsPerHolder is how many bulk requests run at once per holder (default 4).
	StreamsPerHolder int
	// DisableBitswap turns off bitswap (then only the bulk protocol fetches and serves).
	DisableBitswap bool
}

func (c Config) withDefaults() Config {
	if c.CacheBytes == 0 {
		c.CacheBytes = 1 << 30
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = time.Hour
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = 30 * time.Second
	}
	if c.StreamsPerHolder == 0 {
		c.StreamsPerHolder = 4
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is empty; give the directory of the block store (e.g. DATA_DIR/dfs)", ErrConfig)
	case c.Capacity < 0:
		return fmt.Errorf("%w: Capacity %d is negative; give bytes > 0, or 0 for the disk's free space", ErrConfig, c.Capacity)
	case c.LeaseTTL < 0 || c.FetchTimeout < 0:
		return fmt.Errorf("%w: LeaseTTL and FetchTimeout must be >= 0 (0 = default)", ErrConfig)
	case c.StreamsPerHolder < 0 || c.StreamsPerHolder > 16:
		return fmt.Errorf("%w: StreamsPerHolder %d outside 0..16", ErrConfig, c.StreamsPerHolder)
	}
	return nil
}

// bitswapPrefix is the protocol prefix of the cluster's private bitswap, built from the
// same cluster hash as the p2p host's protocol IDs.
func bitswapPrefix(cluster string) string {
	sum := sha256.Sum256([]byte("constellation-cluster-v1\x00" + cluster))
	return "/constellation/" + hex.EncodeToString(sum[:8])
}

// Errors, to be classified by callers (httpapi.Classify).
var (
	// ErrConfig: a Config field is wrong.
	ErrConfig = errors.New("dfs content: bad config")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("dfs content: store closed")
	// ErrNotFound: a block of the DAG is neither local nor to be had from the holders
	// or bitswap.
	ErrNotFound = errors.New("dfs content: not found")
	// ErrDiskFull: the store has no room for the data; the message says how many bytes
	// were missing on which node.
	ErrDiskFull = errors.New("dfs content: disk full")
	// ErrBadChunker: AddOptions.Chunker names no chunker.
	ErrBadChunker = errors.New("dfs content: unknown chunker")
	// ErrNotFile: the root is not a UnixFS file (or raw block).
	ErrNotFile = errors.New("dfs content: not a file")
	// ErrNotPinned: Unpin of a root that is not pinned.
	ErrNotPinned = errors.New("dfs content: not pinned")
	// ErrTooLarge: CAR input over its bound, or a block over MaxBlockSize.
	ErrTooLarge = errors.New("dfs content: too large")
	// ErrBadData: input (a CAR, a peer's block) that does not match its CID or is
	// malformed.
	ErrBadData = errors.New("dfs content: bad data")
)

// MaxBlockSize bounds one block, received or imported (bitswap's limit too).
const MaxBlockSize = 2 << 20
