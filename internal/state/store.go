package state

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The replicated document is persisted in <data-dir>/state.db (bbolt): a snapshot of the full
// state plus a log of the deltas joined since, compacted into a new snapshot periodically.
// A restart loads the snapshot, replays the log and resumes without a full resync.

var (
	bucketMeta     = []byte("meta")
	bucketSnapshot = []byte("snapshot")
	bucketLog      = []byte("log")
	keyState       = []byte("state")
	keyCluster     = []byte("cluster")
	keyFormat      = []byte("format")
)

// storeFormat v2 stores every snapshot and log value with a CRC-32C of its bytes (v1 did
// not; a v1 file is read once and rewritten as v2).
const (
	storeFormat   = "constellation-state-v2"
	storeFormatV1 = "constellation-state-v1"
)

// minStoreSize is the smallest valid state file: bbolt's two meta pages, the freelist and
// the root leaf (4 KiB pages).
const minStoreSize = 4 * 4096

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// seal prefixes b with its CRC-32C.
func seal(b []byte) []byte {
	out := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(out, crc32.Checksum(b, crcTable))
	copy(out[4:], b)
	return out
}

// unseal checks and strips the CRC-32C of a stored value.
func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("value of %d bytes is shorter than its checksum", len(v))
	}
	if crc32.Checksum(v[4:], crcTable) != binary.BigEndian.Uint32(v) {
		return nil, errors.New("checksum mismatch")
	}
	return v[4:], nil
}

// CorruptStateError says the state file cannot be read and how to recover. The node refuses
// to start rather than wiping the file.
type CorruptStateError struct {
	Path string
	Err  error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("state file %s is corrupt (%v); the node will not overwrite it. "+
		"To recover, stop the node, move the file aside (mv %s %s.corrupt) and start again: "+
		"the node resyncs the cluster state from its peers and rewrites its own records", e.Path, e.Err, e.Path, e.Path)
}

func (e *CorruptStateError) Unwrap() error { return e.Err }

// ErrWrongCluster means the data dir holds another cluster's state.
var ErrWrongCluster = errors.New("data dir belongs to another cluster")

type boltStore struct {
	db     *bolt.DB
	path   string
	legacy bool // a v1 file: values without checksums until the first snapshot
}

// openBolt opens the state file. A file that exists but is empty or shorter than a bbolt
// file can be is corrupt unless fresh (a new data dir: nothing was ever stored); a file
// shorter than its own meta page says (truncated), or whose pages fail bbolt's consistency
// check, is corrupt. A corrupt file is never modified.
func openBolt(path, cluster string, fresh bool) (s *boltStore, err error) {
	legacy := false
	// bbolt reads the file through mmap: a truncated or mangled file faults (SIGBUS/SIGSEGV)
	// instead of returning an error. Turn such faults into panics and those into errors.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some page corruptions
			err = &CorruptStateError{Path: path, Err: fmt.Errorf("%v", r)}
		}
	}()
	if fi, serr := os.Stat(path); serr == nil && !fresh {
		switch {
		case fi.Size() == 0:
			return nil, &CorruptStateError{Path: path, Err: errors.New("the file is empty")}
		case fi.Size() < minStoreSize:
			return nil, &CorruptStateError{Path: path, Err: fmt.Errorf("the file is %d bytes, shorter than any state file (%d)", fi.Size(), minStoreSize)}
		}
	}
	if err := checkBolt(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s is locked by another process", ErrDataDirInUse, path)
		}
		return nil, &CorruptStateError{Path: path, Err: err}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketSnapshot, bucketLog} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		f := m.Get(keyFormat)
		switch {
		case f == nil && tx.Bucket(bucketSnapshot).Get(keyState) == nil && tx.Bucket(bucketLog).Stats().KeyN == 0:
		case string(f) == storeFormatV1:
			legacy = true // rewritten as v2 by Load
		case string(f) != storeFormat:
			return &CorruptStateError{Path: path, Err: fmt.Errorf("unknown format %q", f)}
		}
		if c := m.Get(keyCluster); c != nil && string(c) != cluster {
			return fmt.Errorf("%w: %s holds state of cluster %q, not %q; use another --data-dir or --cluster %s",
				ErrWrongCluster, path, c, cluster, c)
		}
		if !legacy {
			if err := m.Put(keyFormat, []byte(storeFormat)); err != nil {
				return err
			}
		}
		return m.Put(keyCluster, []byte(cluster))
	})
	if err != nil {
		db.Close()
		var ce *CorruptStateError
		if errors.As(err, &ce) || errors.Is(err, ErrWrongCluster) {
			return nil, err
		}
		return nil, &CorruptStateError{Path: path, Err: err}
	}
	return &boltStore{db: db, path: path, legacy: legacy}, nil
}

// checkBolt verifies an existing file read-only before it is opened for writing: the file
// is at least as long as its meta page says, and every reachable page and value can be
// read (a walk of every bucket: bbolt checks each page it visits, and a value past the end
// of a truncated file faults). It runs in this goroutine so that a fault or a failed page
// check becomes a CorruptStateError instead of a crash. The freelist is not stored (see
// boltOptions), so it cannot be damaged.
func checkBolt(path string) (err error) {
	fi, serr := os.Stat(path)
	if serr != nil || fi.Size() == 0 {
		return nil // nothing to check (a new file)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptStateError{Path: path, Err: fmt.Errorf("%v", r)}
		}
	}()
	o := boltOptions()
	o.ReadOnly = true
	db, err := bolt.Open(path, 0o600, o)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("%w: %s is locked by another process", ErrDataDirInUse, path)
		}
		return &CorruptStateError{Path: path, Err: err}
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if want := tx.Size(); fi.Size() < want {
			return &CorruptStateError{Path: path, Err: fmt.Errorf("the file is %d bytes but its pages reach %d (truncated)", fi.Size(), want)}
		}
		sealed := false
		if m := tx.Bucket(bucketMeta); m != nil {
			sealed = string(m.Get(keyFormat)) == storeFormat
		}
		var walk func(name string, b *bolt.Bucket) error
		walk = func(name string, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					if nb := b.Bucket(k); nb != nil {
						return walk(name+"/"+string(k), nb)
					}
					return nil
				}
				if sealed && (name == string(bucketSnapshot) || name == string(bucketLog)) {
					if _, err := unseal(v); err != nil {
						return fmt.Errorf("%s entry %x: %w", name, k, err)
					}
				}
				return nil
			})
		}
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name), b) })
		if err != nil {
			return &CorruptStateError{Path: path, Err: err}
		}
		return nil
	})
}

// boltOptions: the freelist is not written (NoFreelistSync): bbolt rebuilds it at open by
// walking the reachable pages, so a damaged freelist can never hand out a live page, and
// every commit writes less.
func boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
}

// load calls fn with the snapshot (if any) and then each logged delta in order.
func (s *boltStore) load(fn func(encoded []byte) error) (n int, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptStateError{Path: s.path, Err: fmt.Errorf("%v", r)}
		}
	}()
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSnapshot).Get(keyState); b != nil {
			if !s.legacy {
				var err error
				if b, err = unseal(b); err != nil {
					return fmt.Errorf("snapshot: %w", err)
				}
			}
			if err := fn(b); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			n++
		}
		return tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
			if !s.legacy {
				var err error
				if v, err = unseal(v); err != nil {
					return fmt.Errorf("log entry %x: %w", k, err)
				}
			}
			if err := fn(v); err != nil {
				return fmt.Errorf("log entry %x: %w", k, err)
			}
			n++
			return nil
		})
	})
	if err != nil {
		var ce *CorruptStateError
		if errors.As(err, &ce) {
			return n, err
		}
		return n, &CorruptStateError{Path: s.path, Err: err}
	}
	return n, nil
}

// appendDeltas adds encoded deltas to the log in one transaction (one fsync).
func (s *boltStore) appendDeltas(deltas [][]byte) error {
	if len(deltas) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		for _, d := range deltas {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			if err := b.Put(k[:], seal(d)); err != nil {
				return err
			}
		}
		return nil
	})
}

// logLen is the number of deltas logged since the last snapshot.
func (s *boltStore) logLen() int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketLog).Stats().KeyN
		return nil
	})
	return n
}

// snapshot replaces the snapshot with state and clears the log, atomically.
func (s *boltStore) snapshot(state []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSnapshot).Put(keyState, seal(state)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyFormat, []byte(storeFormat)); err != nil {
			return err
		}
		s.legacy = false
		if err := tx.DeleteBucket(bucketLog); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketLog)
		return err
	})
}

func (s *boltStore) close() error { return s.db.Close() }

var (
	keyEpoch = []byte("replica_epoch")
	keyClean = []byte("clean_shutdown")
)

// replicaEpoch is a random value the node's CRDT replica ID is derived from (hashed with the
// peer ID). It is kept across clean restarts, so the replica continues its delta sequence
// and keeps what it holds under its ID (quota rights are bounded-counter rights of one
// replica: a new ID would strand them). A new epoch is drawn after an unclean stop (local
// deltas published just before a crash may not have reached the disk, and reusing their
// sequence numbers would make peers ignore the new ones) and for a lost file. A file
// restored from a backup taken after a clean stop resumes its replica until a peer shows it
// holds later deltas of it; then the store continues as a new replica (Store.noteStale).
// fresh reports whether a new epoch was drawn.
func (s *boltStore) replicaEpoch() (epoch []byte, fresh bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		e := m.Get(keyEpoch)
		clean := string(m.Get(keyClean)) == "1"
		if len(e) == 16 && clean {
			epoch = append([]byte(nil), e...)
		} else {
			epoch, fresh = make([]byte, 16), true
			if _, err := rand.Read(epoch); err != nil {
				return err
			}
			if err := m.Put(keyEpoch, epoch); err != nil {
				return err
			}
		}
		return m.Put(keyClean, []byte("0"))
	})
	return epoch, fresh, err
}

// setEpoch records the replica epoch the store continues with (after finding it stale).
func (s *boltStore) setEpoch(epoch []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEpoch, epoch) })
}

// markClean records a clean shutdown (after the final snapshot).
func (s *boltStore) markClean() error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyClean, []byte("1")) })
}

// ErrDataDirInUse means another running node holds the data directory.
var ErrDataDirInUse = errors.New("data dir in use by a running node")
