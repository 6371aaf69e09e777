package content

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	"golang.org/x/sys/unix"
)

// The pack store keeps blocks in append-only segment files (Dir/packs/NNNNNNNN.pack)
// instead of one file per block: creating a file per 256 KiB block capped the store
// near the rate this disk creates files, while appending runs at the page cache's speed
// and makes a batch durable with one fdatasync.
//
// A segment is a sequence of records:
//
//	magic   uint32 LE  0x314b5043 ("CPK1")
//	kind    uint8      1 = put, 2 = delete (tombstone)
//	keyLen  uint8      length of the block's multihash (1..255)
//	dataLen uint32 LE  bytes of the block (0 for a tombstone; <= MaxBlockSize)
//	crc     uint32 LE  CRC-32C of the 10 bytes above and the key
//	key     keyLen bytes: the block's multihash
//	data    dataLen bytes: the block
//
// The index (multihash -> segment, offset, length) lives in memory and is rebuilt at
// open by reading the records' headers, segment by segment in order: a later record of
// a key wins. A torn or damaged header ends its segment (the segment is truncated
// there; what followed is fetched again when needed). Data is not covered by the CRC:
// every block read is checked against its multihash by the store above.
//
// Deleting a block appends a tombstone and leaves dead bytes in its segment; Compact
// copies the live records of mostly-dead sealed segments to the active one, syncs, and
// removes the old files.
const (
	packMagic      = 0x314b5043
	packHeaderLen  = 14
	packKindPut    = 1
	packKindDelete = 2
	// packSegmentMax is the size past which the active segment is sealed and a new one
	// started.
	packSegmentMax = 64 << 20
	// packCompactRatio: a sealed segment whose live bytes fall under this share of its
	// size is compacted.
	packCompactRatio = 0.5
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// packLoc is where a live block is.
type packLoc struct {
	seg uint32
	off int64 // offset of the block's data in the segment
	n   uint32
}

type packSeg struct {
	id   uint32
	f    *os.File
	size int64 // bytes written (the next record's offset)
	live int64 // bytes of the live records (headers, keys and data)
}

// packStore is a blockstore.Blockstore over segment files. Reads run concurrently
// (pread under mu's read lock); appends are serialized by wmu.
type packStore struct {
	dir    string
	log    *slog.Logger
	segMax int64 // packSegmentMax (tests make it smaller)

	wmu    sync.Mutex // serializes appends (Put, Delete, compaction copies)
	syncMu sync.Mutex // serializes Sync: a Sync returns after every sync in progress
	dirty  map[uint32]*packSeg
	newSeg bool // a segment file was created since the last Sync (the directory needs a sync)

	mu     sync.RWMutex // guards index, segs, active
	index  map[string]packLoc
	segs   map[uint32]*packSeg
	active *packSeg
	closed bool
}

var _ blockstore.Blockstore = (*packStore)(nil)

func segName(id uint32) string { return fmt.Sprintf("%08d.pack", id) }

// openPack opens (or creates) the pack store in dir and rebuilds its index.
func openPack(dir string, log *slog.Logger) (*packStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dfs content: create %s: %w", dir, err)
	}
	p := &packStore{dir: dir, log: log, segMax: packSegmentMax, index: map[string]packLoc{}, segs: map[uint32]*packSeg{}, dirty: map[uint32]*packSeg{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dfs content: list %s: %w", dir, err)
	}
	var ids []uint32
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".pack") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".pack"), 10, 32)
		if err != nil || segName(uint32(id)) != name {
			return nil, fmt.Errorf("dfs content: %s: unexpected file %s (segments are named NNNNNNNN.pack)", dir, name)
		}
		ids = append(ids, uint32(id))
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := p.loadSeg(id); err != nil {
			p.closeFiles()
			return nil, err
		}
	}
	next := uint32(1)
	if len(ids) > 0 {
		next = ids[len(ids)-1]
		if p.segs[next].size >= p.segMax {
			next++
		}
	}
	if p.segs[next] == nil {
		if err := p.createSeg(next); err != nil {
			p.closeFiles()
			return nil, err
		}
	}
	p.active = p.segs[next]
	return p, nil
}

func (p *packStore) createSeg(id uint32) error {
	f, err := os.OpenFile(filepath.Join(p.dir, segName(id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dfs content: create segment: %w", err)
	}
	p.segs[id] = &packSeg{id: id, f: f}
	p.newSeg = true
	return nil
}

// packRecord is one record read from a segment.
type packRecord struct {
	kind    byte
	key     string
	off     int64 // offset of the data
	dataLen uint32
	end     int64 // offset of the next record
}

// parseHeader decodes a record header and its key (b holds at least packHeaderLen
// bytes); it returns the key length needed when b is too short for the key.
func parseHeader(b []byte) (kind byte, keyLen int, dataLen uint32, err error) {
	if binary.LittleEndian.Uint32(b[0:4]) != packMagic {
		return 0, 0, 0, errors.New("bad magic")
	}
	kind, keyLen, dataLen = b[4], int(b[5]), binary.LittleEndian.Uint32(b[6:10])
	switch {
	case kind != packKindPut && kind != packKindDelete:
		return 0, 0, 0, fmt.Errorf("unknown record kind %d", kind)
	case keyLen == 0:
		return 0, 0, 0, errors.New("empty key")
	case dataLen > MaxBlockSize:
		return 0, 0, 0, fmt.Errorf("record of %d bytes (at most %d)", dataLen, MaxBlockSize)
	case kind == packKindDelete && dataLen != 0:
		return 0, 0, 0, errors.New("tombstone with data")
	}
	return kind, keyLen, dataLen, nil
}

// scanSegment reads the records of r (size bytes) in order. It stops at the first
// damaged or torn record and returns its offset as valid (the bytes before it are
// whole records).
func scanSegment(r io.ReaderAt, size int64, fn func(packRecord)) (valid int64) {
	var hdr [packHeaderLen + 255]byte
	off := int64(0)
	for off < size {
		if size-off < packHeaderLen {
			return off
		}
		if _, err := r.ReadAt(hdr[:packHeaderLen], off); err != nil {
			return off
		}
		kind, keyLen, dataLen, err := parseHeader(hdr[:])
		if err != nil {
			return off
		}
		end := off + packHeaderLen + int64(keyLen) + int64(dataLen)
		if end > size {
			return off
		}
		if _, err := r.ReadAt(hdr[packHeaderLen:packHeaderLen+keyLen], off+packHeaderLen); err != nil {
			return off
		}
		if crc32.Checksum(slices.Concat(hdr[:10], hdr[packHeaderLen:packHeaderLen+keyLen]), crc32c) != binary.LittleEndian.Uint32(hdr[10:14]) {
			return off
		}
		fn(packRecord{kind: kind, key: string(hdr[packHeaderLen : packHeaderLen+keyLen]), off: off + packHeaderLen + int64(keyLen), dataLen: dataLen, end: end})
		off = end
	}
	return off
}

func (p *packStore) loadSeg(id uint32) error {
	path := filepath.Join(p.dir, segName(id))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("dfs content: open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("dfs content: stat %s: %w", path, err)
	}
	sg := &packSeg{id: id, f: f}
	p.segs[id] = sg
	valid := scanSegment(f, st.Size(), func(r packRecord) {
		if old, ok := p.index[r.key]; ok {
			p.segs[old.seg].live -= recordLen(len(r.key), old.n)
			delete(p.index, r.key)
		}
		if r.kind == packKindPut {
			p.index[r.key] = packLoc{seg: id, off: r.off, n: r.dataLen}
			sg.live += recordLen(len(r.key), r.dataLen)
		}
	})
	if valid < st.Size() {
		p.log.Warn("dfs content: a block segment ends with a damaged record; truncated there (the blocks after it will be fetched again)",
			"segment", path, "at", valid, "size", st.Size())
		if err := f.Truncate(valid); err != nil {
			return fmt.Errorf("dfs content: truncate %s: %w", path, err)
		}
	}
	sg.size = valid
	return nil
}

func recordLen(keyLen int, dataLen uint32) int64 {
	return packHeaderLen + int64(keyLen) + int64(dataLen)
}

// appendLocked appends one record to the active segment (wmu held), starting a new
// segment when the active one is full; it returns the block's location.
func (p *packStore) appendLocked(kind byte, key string, data []byte) (packLoc, error) {
	if len(key) == 0 || len(key) > 255 {
		return packLoc{}, fmt.Errorf("dfs content: block key of %d bytes", len(key))
	}
	if len(data) > MaxBlockSize {
		return packLoc{}, fmt.Errorf("%w: block of %d bytes", ErrTooLarge, len(data))
	}
	p.mu.RLock()
	sg, closed := p.active, p.closed
	p.mu.RUnlock()
	if closed {
		return packLoc{}, ErrClosed
	}
	if sg.size >= p.segMax {
		p.mu.Lock()
		err := p.createSeg(sg.id + 1)
		if err == nil {
			p.active = p.segs[sg.id+1]
			sg = p.active
		}
		p.mu.Unlock()
		if err != nil {
			return packLoc{}, err
		}
	}
	hdr := make([]byte, packHeaderLen+len(key), packHeaderLen+len(key)+len(data))
	binary.LittleEndian.PutUint32(hdr[0:4], packMagic)
	hdr[4], hdr[5] = kind, byte(len(key))
	binary.LittleEndian.PutUint32(hdr[6:10], uint32(len(data)))
	copy(hdr[packHeaderLen:], key)
	binary.LittleEndian.PutUint32(hdr[10:14], crc32.Checksum(slices.Concat(hdr[:10], hdr[packHeaderLen:]), crc32c))
	off := sg.size
	var err error
	if len(data) <= 4096 { // small: one write
		_, err = sg.f.WriteAt(append(hdr, data...), off)
	} else if _, err = sg.f.WriteAt(hdr, off); err == nil {
		_, err = sg.f.WriteAt(data, off+int64(len(hdr)))
	}
	if err != nil {
		// Whatever reached the file past sg.size is overwritten by the next append (or cut
		// at the next open: a torn record ends the scan).
		return packLoc{}, err
	}
	p.mu.Lock()
	sg.size = off + recordLen(len(key), uint32(len(data)))
	p.mu.Unlock()
	p.dirty[sg.id] = sg
	return packLoc{seg: sg.id, off: off + int64(len(hdr)), n: uint32(len(data))}, nil
}

// setLoc makes loc the live location of key (mu held for writing).
func (p *packStore) setLocLocked(key string, loc packLoc) {
	if old, ok := p.index[key]; ok {
		if sg := p.segs[old.seg]; sg != nil {
			sg.live -= recordLen(len(key), old.n)
		}
	}
	p.index[key] = loc
	p.segs[loc.seg].live += recordLen(len(key), loc.n)
}

func (p *packStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.index[key(c)]
	return ok, nil
}

func (p *packStore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	loc, ok := p.index[key(c)]
	if !ok {
		return -1, format.ErrNotFound{Cid: c}
	}
	return int(loc.n), nil
}

// Get reads the block (unverified: the store above checks it against c).
func (p *packStore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := p.read(c, 0)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// read returns the block's bytes after pre zero bytes (room for a frame header, so
// that serving a block costs no copy).
func (p *packStore) read(c cid.Cid, pre int) ([]byte, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	loc, ok := p.index[key(c)]
	if !ok {
		return nil, format.ErrNotFound{Cid: c}
	}
	buf := make([]byte, pre+int(loc.n))
	if _, err := p.segs[loc.seg].f.ReadAt(buf[pre:], loc.off); err != nil {
		return nil, fmt.Errorf("dfs content: read block %s: %w", c, err)
	}
	return buf, nil
}

func (p *packStore) Put(ctx context.Context, b blocks.Block) error {
	return p.PutMany(ctx, []blocks.Block{b})
}

// PutMany appends the blocks not present yet. They are durable after Sync.
func (p *packStore) PutMany(_ context.Context, bs []blocks.Block) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for _, b := range bs {
		k := key(b.Cid())
		p.mu.RLock()
		_, ok := p.index[k]
		p.mu.RUnlock()
		if ok {
			continue
		}
		loc, err := p.appendLocked(packKindPut, k, b.RawData())
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.setLocLocked(k, loc)
		p.mu.Unlock()
	}
	return nil
}

// DeleteBlock appends a tombstone and drops the block from the index (its bytes stay
// until compaction). Deleting a missing block is not an error.
func (p *packStore) DeleteBlock(_ context.Context, c cid.Cid) error {
	k := key(c)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.RLock()
	_, ok := p.index[k]
	p.mu.RUnlock()
	if !ok {
		return nil
	}
	if _, err := p.appendLocked(packKindDelete, k, nil); err != nil {
		return err
	}
	p.mu.Lock()
	if old, ok := p.index[k]; ok {
		p.segs[old.seg].live -= recordLen(len(k), old.n)
		delete(p.index, k)
	}
	p.mu.Unlock()
	return nil
}

func (p *packStore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	p.mu.RLock()
	keys := make([]string, 0, len(p.index))
	for k := range p.index {
		keys = append(keys, k)
	}
	p.mu.RUnlock()
	ch := make(chan cid.Cid, 64)
	go func() {
		defer close(ch)
		for _, k := range keys {
			select {
			case ch <- cidOfKey(k):
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// forEach calls fn with every live block's key and size (under the read lock).
func (p *packStore) forEach(fn func(k string, n int64)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for k, loc := range p.index {
		fn(k, int64(loc.n))
	}
}

// Sync makes every record appended so far durable: fdatasync of the segments written
// since the last Sync, and of the directory when a segment was created.
func (p *packStore) Sync() error {
	// A Sync that finds nothing dirty may still have records written before another
	// Sync took the dirty set and is flushing it: waiting for that Sync makes them durable
	// before this one returns.
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	p.wmu.Lock()
	dirty, newSeg := p.dirty, p.newSeg
	p.dirty, p.newSeg = map[uint32]*packSeg{}, false
	p.wmu.Unlock()
	for _, sg := range dirty {
		if err := fdatasync(sg.f); err != nil {
			p.requeue(dirty, newSeg)
			return fmt.Errorf("dfs content: sync segment %s: %w", segName(sg.id), err)
		}
	}
	if newSeg {
		if err := syncDir(p.dir); err != nil {
			p.requeue(nil, true)
			return fmt.Errorf("dfs content: sync %s: %w", p.dir, err)
		}
	}
	return nil
}

func (p *packStore) requeue(dirty map[uint32]*packSeg, newSeg bool) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for id, sg := range dirty {
		p.dirty[id] = sg
	}
	p.newSeg = p.newSeg || newSeg
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// DiskBytes is the size of all segments (live and dead bytes).
func (p *packStore) DiskBytes() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var n int64
	for _, sg := range p.segs {
		n += sg.size
	}
	return n
}

// Compact rewrites the sealed segments whose live bytes are under packCompactRatio of
// their size: their live records are appended to the active segment, synced, and the
// old files removed. It returns the bytes given back to the disk.
func (p *packStore) Compact(ctx context.Context) (freed int64, err error) {
	p.mu.RLock()
	var cands []*packSeg
	for _, sg := range p.segs {
		if sg != p.active && float64(sg.live) < packCompactRatio*float64(sg.size) {
			cands = append(cands, sg)
		}
	}
	p.mu.RUnlock()
	slices.SortFunc(cands, func(a, b *packSeg) int { return int(a.id) - int(b.id) })
	for _, sg := range cands {
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		n, err := p.compactSeg(sg)
		if err != nil {
			return freed, err
		}
		freed += n
	}
	return freed, nil
}

func (p *packStore) compactSeg(sg *packSeg) (int64, error) {
	var recs []packRecord
	p.mu.RLock()
	size := sg.size
	p.mu.RUnlock()
	scanSegment(sg.f, size, func(r packRecord) { recs = append(recs, r) })
	p.mu.RLock()
	oldest := true
	for id := range p.segs {
		if id < sg.id {
			oldest = false
		}
	}
	p.mu.RUnlock()
	for _, r := range recs {
		if err := p.copyRecord(sg, r, oldest); err != nil {
			return 0, err
		}
	}
	if err := p.Sync(); err != nil { // the copies are durable before the old file goes
		return 0, err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, loc := range p.index { // appended while copying: none should point here
		if loc.seg == sg.id {
			return 0, fmt.Errorf("dfs content: compaction of %s left block %x in it", segName(sg.id), k)
		}
	}
	delete(p.segs, sg.id)
	delete(p.dirty, sg.id)
	sg.f.Close()
	if err := os.Remove(filepath.Join(p.dir, segName(sg.id))); err != nil {
		return 0, fmt.Errorf("dfs content: remove compacted segment: %w", err)
	}
	p.newSeg = true // the removal must reach the disk too
	return size, nil
}

// copyRecord moves one record of sg being compacted to the active segment: a put that
// is still the live copy of its key, or a tombstone that may still shadow a put in an
// older segment (none when sg is the oldest, or when the key is live again).
func (p *packStore) copyRecord(sg *packSeg, r packRecord, oldest bool) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.RLock()
	loc, live := p.index[r.key]
	p.mu.RUnlock()
	switch r.kind {
	case packKindPut:
		if !live || loc.seg != sg.id || loc.off != r.off {
			return nil
		}
		data := make([]byte, r.dataLen)
		if _, err := sg.f.ReadAt(data, r.off); err != nil {
			return fmt.Errorf("dfs content: compaction read: %w", err)
		}
		nl, err := p.appendLocked(packKindPut, r.key, data)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.setLocLocked(r.key, nl)
		p.mu.Unlock()
	case packKindDelete:
		if oldest || live {
			return nil
		}
		if _, err := p.appendLocked(packKindDelete, r.key, nil); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the segment files (after a final Sync by the caller if needed).
func (p *packStore) Close() error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.closeFiles()
}

func (p *packStore) closeFiles() error {
	var errs []error
	for _, sg := range p.segs {
		errs = append(errs, sg.f.Close())
	}
	return errors.Join(errs...)
}

// locate returns the segment file and the data offset of a live block (tests corrupt
// blocks through it).
func (p *packStore) locate(c cid.Cid) (path string, off int64, n int, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	loc, ok := p.index[key(c)]
	if !ok {
		return "", 0, 0, false
	}
	return filepath.Join(p.dir, segName(loc.seg)), loc.off, int(loc.n), true
}

func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
