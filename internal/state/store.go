package state

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
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

const storeFormat = "constellation-state-v1"

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
	db   *bolt.DB
	path string
}

func openBolt(path, cluster string) (s *boltStore, err error) {
	// bbolt reads the file through mmap: a truncated or mangled file faults (SIGBUS/SIGSEGV)
	// instead of returning an error. Turn such faults into panics and those into errors.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some page corruptions
			err = &CorruptStateError{Path: path, Err: fmt.Errorf("%v", r)}
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
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
		if f := m.Get(keyFormat); f != nil && string(f) != storeFormat {
			return &CorruptStateError{Path: path, Err: fmt.Errorf("unknown format %q", f)}
		}
		if c := m.Get(keyCluster); c != nil && string(c) != cluster {
			return fmt.Errorf("%w: %s holds state of cluster %q, not %q; use another --data-dir or --cluster %s",
				ErrWrongCluster, path, c, cluster, c)
		}
		if err := m.Put(keyFormat, []byte(storeFormat)); err != nil {
			return err
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
	return &boltStore{db: db, path: path}, nil
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
			if err := fn(b); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			n++
		}
		return tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
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
			if err := b.Put(k[:], d); err != nil {
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
		if err := tx.Bucket(bucketSnapshot).Put(keyState, state); err != nil {
			return err
		}
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
// peer ID). It is kept across clean restarts, so the replica's delta sequence continues; after
// an unclean stop (crash, kill -9) a new epoch is drawn, because local deltas published just
// before the crash may not have reached the disk, and reusing their sequence numbers for
// different operations would make peers ignore the new ones. A lost state file gets a new
// epoch the same way. The cost is one more version-vector entry per crash.
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

// markClean records a clean shutdown (after the final snapshot).
func (s *boltStore) markClean() error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyClean, []byte("1")) })
}

// ErrDataDirInUse means another running node holds the data directory.
var ErrDataDirInUse = errors.New("data dir in use by a running node")
