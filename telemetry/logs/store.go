package logs

import (
	"bufio"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Config configures a Store. Zero values take the defaults.
type Config struct {
	// Dir holds the segments (created 0700). Required.
	Dir string
	// SegmentBytes seals the active segment when it reaches this size (default 16 MiB).
	SegmentBytes int64
	// SegmentAge seals the active segment when its first entry is this old (default 1h),
	// so retention by age can remove it.
	SegmentAge time.Duration
	// MaxAge removes sealed segments whose newest entry is older (default 7 days).
	MaxAge time.Duration
	// MaxBytes bounds the segments on disk; the oldest sealed ones go first (default 1 GiB).
	MaxBytes int64
	// FlushInterval flushes the active segment's buffer (default 500ms; a search flushes too).
	FlushInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives warnings (default slog.Default()). Do not point it at this store.
	Log *slog.Logger
}

func (c *Config) defaults() {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 16 << 20
	}
	if c.SegmentAge <= 0 {
		c.SegmentAge = time.Hour
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 500 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// segment is a sealed segment on disk.
type segment struct {
	seq  uint64
	sum  summary
	size int64 // bytes on disk (.zst + .idx)
}

// Store is one node's log store: an active segment being appended and sealed, compressed
// segments with their summaries. Safe for concurrent use.
type Store struct {
	cfg Config

	mu      sync.Mutex // guards everything below
	sealed  []segment  // by seq ascending
	seq     uint64     // the active segment's
	f       *os.File
	w       *bufio.Writer
	size    int64
	count   int64
	minT    int64
	maxT    int64
	started time.Time // when the active segment got its first entry
	filter  *bloom
	scratch []byte
	payload []byte // appendFrame's scratch
	keys    []string
	low     []byte // the filter's scratch
	subs    map[*sub]struct{}
	closed  bool
	badSeen map[uint64]bool // segments already warned about

	appended atomic.Int64
	dropped  atomic.Int64 // entries dropped for slow followers

	stop chan struct{}
	wg   sync.WaitGroup
}

func (s *Store) path(seq uint64, ext string) string {
	return filepath.Join(s.cfg.Dir, fmt.Sprintf("seg-%016x%s", seq, ext))
}

// Open opens (or creates) the store in cfg.Dir. An active segment left by a previous run
// is sealed first (a torn last frame is cut off).
func Open(cfg Config) (*Store, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("logs: Config.Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	s := &Store{cfg: cfg, subs: map[*sub]struct{}{}, badSeen: map[uint64]bool{}, stop: make(chan struct{})}
	des, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	var raws []uint64
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(cfg.Dir, name))
			continue
		}
		if !strings.HasPrefix(name, "seg-") {
			continue
		}
		base, ext, _ := strings.Cut(name[4:], ".")
		seq, err := strconv.ParseUint(base, 16, 64)
		if err != nil {
			continue
		}
		s.seq = max(s.seq, seq)
		switch ext {
		case "log":
			raws = append(raws, seq)
		case "idx":
			seg, err := s.loadSegment(seq)
			if err != nil {
				cfg.Log.Warn("logs: segment skipped", "segment", name, "err", err)
				continue
			}
			s.sealed = append(s.sealed, seg)
		}
	}
	for _, seq := range raws {
		if err := s.sealRaw(seq); err != nil {
			cfg.Log.Warn("logs: could not seal a segment of the previous run", "segment", seq, "err", err)
		}
	}
	slices.SortFunc(s.sealed, func(a, b segment) int { return cmpU(a.seq, b.seq) })
	s.seq++
	if err := s.openActive(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.maintain()
	return s, nil
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Store) loadSegment(seq uint64) (segment, error) {
	f, err := os.Open(s.path(seq, ".idx"))
	if err != nil {
		return segment{}, err
	}
	defer f.Close()
	h := make([]byte, summaryHeader)
	if _, err := io.ReadFull(f, h); err != nil {
		return segment{}, fmt.Errorf("%w: index header: %v", ErrCorrupt, err)
	}
	sum, ok := unmarshalSummaryHeader(h)
	if !ok {
		return segment{}, fmt.Errorf("%w: index header", ErrCorrupt)
	}
	fi1, err := f.Stat()
	if err != nil {
		return segment{}, err
	}
	fi2, err := os.Stat(s.path(seq, ".zst"))
	if err != nil {
		return segment{}, err
	}
	return segment{seq: seq, sum: sum, size: fi1.Size() + fi2.Size()}, nil
}

func (s *Store) openActive() error {
	f, err := os.OpenFile(s.path(s.seq, ".log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	s.f, s.w = f, bufio.NewWriterSize(f, 256<<10)
	s.size, s.count, s.minT, s.maxT = 0, 0, 0, 0
	s.filter = newBloom(int(s.cfg.SegmentBytes / 16))
	return nil
}

// Append stores entries (their Time is kept; a zero Time is now).
func (s *Store) Append(es ...Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("logs: store closed")
	}
	for i := range es {
		e := &es[i]
		if e.Time.IsZero() {
			e.Time = s.cfg.Now()
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("logs: %w", err)
		}
		s.scratch = s.appendFrame(s.scratch[:0], e)
		if _, err := s.w.Write(s.scratch); err != nil {
			return fmt.Errorf("logs: write: %w", err)
		}
		t := e.Time.UnixNano()
		if s.count == 0 {
			s.minT, s.maxT, s.started = t, t, s.cfg.Now()
		}
		s.minT, s.maxT = min(s.minT, t), max(s.maxT, t)
		s.count++
		s.size += int64(len(s.scratch))
		s.index(e)
		s.appended.Add(1)
		s.publish(e)
		if s.size >= s.cfg.SegmentBytes {
			if err := s.sealActive(); err != nil {
				return err
			}
		}
	}
	return nil
}

// index adds e's terms to the active filter.
func (s *Store) index(e *Entry) {
	s.addWords(e.Message)
	ns := e.Namespace
	if ns == "" {
		ns = "default"
	}
	s.addField("level", e.Level)
	s.addField("instance", e.Instance)
	s.addField("node", e.Node)
	s.addField("deployment", e.Deployment)
	s.addField("namespace", ns)
	s.addField("stream", e.Stream)
	for k, v := range e.Fields {
		s.addWords(v)
		s.addField(k, v)
	}
}

// addWords adds the lowered words of text to the active filter (no allocation).
func (s *Store) addWords(text string) {
	low := s.low[:0]
	for i := 0; i < len(text); {
		for i < len(text) && !isWordByte(text[i]) {
			i++
		}
		low = low[:0]
		for i < len(text) && isWordByte(text[i]) {
			c := text[i]
			if c-'A' < 26 {
				c += 32
			}
			low = append(low, c)
			i++
		}
		if len(low) > 0 {
			s.filter.add(low)
		}
	}
	s.low = low
}

// addField adds "\x00field=value" (lowered) to the active filter.
func (s *Store) addField(field, val string) {
	low := append(s.low[:0], 0)
	for _, part := range [...]string{field, "=", val} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c-'A' < 26 {
				c += 32
			}
			low = append(low, c)
		}
	}
	s.filter.add(low)
	s.low = low
}

// sealActive compresses the active segment and starts a new one. Called with mu held.
func (s *Store) sealActive() error {
	if s.count == 0 {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("logs: flush: %w", err)
	}
	s.f.Close()
	seq := s.seq
	sum := summary{minT: s.minT, maxT: s.maxT, count: s.count, raw: s.size}
	seg, err := s.writeSealed(seq, sum, s.filter)
	if err != nil {
		return err
	}
	os.Remove(s.path(seq, ".log"))
	s.sealed = append(s.sealed, seg)
	s.seq++
	if err := s.openActive(); err != nil {
		return err
	}
	s.retainLocked()
	return nil
}

// sealRaw seals a .log file left by a previous run: its frames are read up to the first
// bad one (a torn write), its filter rebuilt.
func (s *Store) sealRaw(seq uint64) error {
	raw, err := os.ReadFile(s.path(seq, ".log"))
	if err != nil {
		return err
	}
	s.filter = newBloom(int(s.cfg.SegmentBytes / 16))
	sum := summary{}
	good := 0
	var v view
	for good < len(raw) {
		p, n, err := nextFrame(raw[good:])
		if err != nil || n == 0 {
			break
		}
		if decodeView(p, &v) != nil {
			break
		}
		e := v.entry()
		s.index(&e)
		if sum.count == 0 {
			sum.minT, sum.maxT = v.t, v.t
		}
		sum.minT, sum.maxT = min(sum.minT, v.t), max(sum.maxT, v.t)
		sum.count++
		good += n
	}
	if good < len(raw) {
		s.cfg.Log.Warn("logs: cut a torn or corrupt tail off a segment of the previous run", "segment", seq, "bytes", len(raw)-good)
	}
	if sum.count == 0 {
		return os.Remove(s.path(seq, ".log"))
	}
	sum.raw = int64(good)
	if err := os.Truncate(s.path(seq, ".log"), int64(good)); err != nil {
		return err
	}
	seg, err := s.writeSealed(seq, sum, s.filter)
	if err != nil {
		return err
	}
	os.Remove(s.path(seq, ".log"))
	s.sealed = append(s.sealed, seg)
	return nil
}

var encoders = sync.Pool{New: func() any {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	return e
}}

// writeSealed compresses the .log of seq into .zst and writes the .idx.
func (s *Store) writeSealed(seq uint64, sum summary, f *bloom) (segment, error) {
	in, err := os.Open(s.path(seq, ".log"))
	if err != nil {
		return segment{}, err
	}
	defer in.Close()
	tmp := s.path(seq, ".zst.tmp")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return segment{}, err
	}
	enc := encoders.Get().(*zstd.Encoder)
	enc.Reset(out)
	_, err = io.Copy(enc, in)
	if err == nil {
		err = enc.Close()
	}
	encoders.Put(enc)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return segment{}, fmt.Errorf("logs: seal: %w", err)
	}
	f.fold()
	sum.bloomLen, sum.bloomCRC = len(f.b), crcOf(f.b)
	idx := sum.marshal(f)
	itmp := s.path(seq, ".idx.tmp")
	if err := os.WriteFile(itmp, idx, 0o600); err != nil {
		os.Remove(tmp)
		return segment{}, fmt.Errorf("logs: seal: %w", err)
	}
	if err := os.Rename(tmp, s.path(seq, ".zst")); err != nil {
		return segment{}, err
	}
	if err := os.Rename(itmp, s.path(seq, ".idx")); err != nil {
		return segment{}, err
	}
	fi, err := os.Stat(s.path(seq, ".zst"))
	if err != nil {
		return segment{}, err
	}
	return segment{seq: seq, sum: sum, size: fi.Size() + int64(len(idx))}, nil
}

// retainLocked removes sealed segments past MaxAge, then the oldest while the store is
// over MaxBytes.
func (s *Store) retainLocked() {
	cut := s.cfg.Now().Add(-s.cfg.MaxAge).UnixNano()
	total := s.size
	for _, g := range s.sealed {
		total += g.size
	}
	keep := s.sealed[:0]
	for i, g := range s.sealed {
		over := total > s.cfg.MaxBytes
		if g.sum.maxT < cut || over {
			os.Remove(s.path(g.seq, ".zst"))
			os.Remove(s.path(g.seq, ".idx"))
			total -= g.size
			continue
		}
		keep = append(keep, s.sealed[i])
	}
	clear(s.sealed[len(keep):])
	s.sealed = keep
}

func (s *Store) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	lastRetain := time.Time{}
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if !s.closed {
			s.w.Flush()
			now := s.cfg.Now()
			if s.count > 0 && now.Sub(s.started) >= s.cfg.SegmentAge {
				if err := s.sealActive(); err != nil {
					s.cfg.Log.Warn("logs: seal", "err", err)
				}
			}
			if now.Sub(lastRetain) >= time.Minute {
				s.retainLocked()
				lastRetain = now
			}
		}
		s.mu.Unlock()
	}
}

// Retain applies retention now (also run every minute and at every seal).
func (s *Store) Retain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.retainLocked()
	}
}

// Seal seals the active segment now (tests, shutdown).
func (s *Store) Seal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.sealActive()
}

// Stats describes the store.
type Stats struct {
	Segments      int   // sealed
	DiskBytes     int64 // sealed + active
	RawBytes      int64 // uncompressed frames, sealed + active
	Entries       int64
	Appended      int64 // since Open
	FollowDropped int64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Segments: len(s.sealed), DiskBytes: s.size, RawBytes: s.size, Entries: s.count,
		Appended: s.appended.Load(), FollowDropped: s.dropped.Load()}
	for _, g := range s.sealed {
		st.DiskBytes += g.size
		st.RawBytes += g.sum.raw
		st.Entries += g.sum.count
	}
	return st
}

// Close flushes the active segment and stops the store (it is sealed at the next Open).
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.w.Flush()
	s.f.Close()
	for x := range s.subs {
		close(x.ch)
		delete(s.subs, x)
	}
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	return err
}

// ---- search ----

// Request is one search.
type Request struct {
	Query    *Query
	From, To time.Time // zero: unbounded
	Limit    int       // newest Limit matches (default 100)
}

// Result is a search's answer: the newest matches, newest first.
type Result struct {
	Entries  []Entry
	Scanned  int      // segments read
	Skipped  int      // segments skipped by time range or term filter
	Warnings []string // corrupt segments
}

// Search returns the newest entries matching req. A corrupt segment is skipped with a
// warning (in Result.Warnings and the log).
func (s *Store) Search(ctx context.Context, req Request) (Result, error) {
	if req.Query == nil {
		req.Query = MustParse("")
	}
	if req.Limit <= 0 {
		req.Limit = 100
	}
	from, to := int64(0), int64(1<<63-1)
	if !req.From.IsZero() {
		from = req.From.UnixNano()
	}
	if !req.To.IsZero() {
		to = req.To.UnixNano()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Result{}, errors.New("logs: store closed")
	}
	s.w.Flush()
	// The active file is opened under the lock (a seal may remove it right after) and
	// read up to the size flushed now (appends go on meanwhile).
	var af *os.File
	var asize int64
	var err error
	if s.count > 0 && s.minT <= to && s.maxT >= from && req.Query.mayMatch(s.filter.has) {
		af, err = os.Open(s.path(s.seq, ".log"))
		asize = s.size
	}
	segs := slices.Clone(s.sealed)
	s.mu.Unlock()
	if err != nil {
		return Result{}, fmt.Errorf("logs: read active segment: %w", err)
	}
	var active []byte
	if af != nil {
		active = make([]byte, asize)
		_, err = af.ReadAt(active, 0)
		af.Close()
		if err != nil {
			return Result{}, fmt.Errorf("logs: read active segment: %w", err)
		}
	}
	var res Result
	top := &entryHeap{}
	col := &collector{limit: req.Limit, heap: top, from: from, to: to}
	if active != nil {
		res.Scanned++
		if err := scanFrames(active, newMatcher(req.Query), col); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("active segment: %v", err))
		}
	}
	// Newest first, in rounds of one segment per core; stop when the newest Limit are
	// known to be found.
	slices.SortFunc(segs, func(a, b segment) int { return -cmpI(a.sum.maxT, b.sum.maxT) })
	var cand []segment
	for _, g := range segs {
		if g.sum.minT > to || g.sum.maxT < from {
			res.Skipped++
			continue
		}
		cand = append(cand, g)
	}
	par := max(1, runtime.GOMAXPROCS(0))
	for i := 0; i < len(cand); i += par {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if col.full() && cand[i].sum.maxT < col.minTime() {
			res.Skipped += len(cand) - i
			break
		}
		batch := cand[i:min(i+par, len(cand))]
		var wg sync.WaitGroup
		warn := make([]string, len(batch))
		skip := make([]bool, len(batch))
		cols := make([]*collector, len(batch))
		for j, g := range batch {
			cols[j] = &collector{limit: req.Limit, heap: &entryHeap{}, from: from, to: to}
			wg.Add(1)
			go func() {
				defer wg.Done()
				skip[j], warn[j] = s.scanSegment(g, req.Query, cols[j])
			}()
		}
		wg.Wait()
		for j := range batch {
			if warn[j] != "" {
				res.Warnings = append(res.Warnings, warn[j])
			}
			if skip[j] {
				res.Skipped++
			} else {
				res.Scanned++
			}
			for _, e := range *cols[j].heap {
				col.offer(e)
			}
		}
	}
	res.Entries = make([]Entry, len(*top))
	copy(res.Entries, *top)
	SortNewestFirst(res.Entries)
	return res, nil
}

func cmpI(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SortNewestFirst orders entries by time, newest first (ties by node, then message).
func SortNewestFirst(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
}

// decoder decompresses sealed segments (DecodeAll is safe for concurrent use).
var decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))

var rawBufs = sync.Pool{New: func() any { return new([]byte) }}

// scanSegment searches one sealed segment: its filter first, then its frames.
func (s *Store) scanSegment(g segment, q *Query, col *collector) (skipped bool, warning string) {
	name := fmt.Sprintf("seg-%016x", g.seq)
	idx, err := os.ReadFile(s.path(g.seq, ".idx"))
	if errors.Is(err, fs.ErrNotExist) {
		return true, "" // removed by retention since the search started
	}
	if err != nil {
		return true, s.warnBad(g.seq, fmt.Sprintf("segment %s: index unreadable, skipped: %v", name, err))
	}
	body := idx[min(len(idx), summaryHeader):]
	if len(body) != g.sum.bloomLen || crcOf(body) != g.sum.bloomCRC {
		return true, s.warnBad(g.seq, fmt.Sprintf("segment %s: corrupt term filter, skipped", name))
	}
	if !q.mayMatch(func(t []byte) bool { return bloomHas(len(body), t, func(o int) byte { return body[o] }) }) {
		return true, ""
	}
	comp, err := os.ReadFile(s.path(g.seq, ".zst"))
	if errors.Is(err, fs.ErrNotExist) {
		return true, ""
	}
	if err != nil {
		return true, s.warnBad(g.seq, fmt.Sprintf("segment %s: unreadable, skipped: %v", name, err))
	}
	if g.sum.raw > 1<<30 {
		return true, s.warnBad(g.seq, fmt.Sprintf("segment %s: index says %d bytes, more than a segment holds; skipped", name, g.sum.raw))
	}
	bp := rawBufs.Get().(*[]byte)
	defer rawBufs.Put(bp)
	if int64(cap(*bp)) < g.sum.raw {
		*bp = make([]byte, 0, g.sum.raw)
	}
	// One call, into a buffer of the size the index gives (the content checksum is
	// verified; more output than that is an error).
	raw, err := decoder.DecodeAll(comp, (*bp)[:0])
	if err != nil {
		return true, s.warnBad(g.seq, fmt.Sprintf("segment %s: corrupt (decompression: %v), skipped", name, err))
	}
	*bp = raw[:0]
	if int64(len(raw)) != g.sum.raw {
		return true, s.warnBad(g.seq, fmt.Sprintf("segment %s: corrupt (%d bytes, the index says %d), skipped", name, len(raw), g.sum.raw))
	}
	if err := scanFramesOpt(raw, newMatcher(q), col, false); err != nil {
		return false, s.warnBad(g.seq, fmt.Sprintf("segment %s: %v; the rest of it skipped", name, err))
	}
	return false, ""
}

// warnBad logs a bad segment once and returns the warning.
func (s *Store) warnBad(seq uint64, msg string) string {
	s.mu.Lock()
	first := !s.badSeen[seq]
	s.badSeen[seq] = true
	s.mu.Unlock()
	if first {
		s.cfg.Log.Warn("logs: " + msg)
	}
	return msg
}

// scanFrames offers every matching frame of raw to col.
func scanFrames(raw []byte, m *matcher, col *collector) error {
	return scanFramesOpt(raw, m, col, true)
}

func scanFramesOpt(raw []byte, m *matcher, col *collector, verify bool) error {
	var v view
	off := 0
	for off < len(raw) {
		p, n, err := splitFrame(raw[off:], verify)
		if err != nil {
			return fmt.Errorf("%w at offset %d", err, off)
		}
		if n == 0 {
			return fmt.Errorf("%w: truncated frame at offset %d", ErrCorrupt, off)
		}
		off += n
		if err := decodeView(p, &v); err != nil {
			return fmt.Errorf("%w at offset %d", err, off-n)
		}
		if v.t < col.from || v.t > col.to || (col.full() && v.t <= col.minTimeNs()) {
			continue
		}
		if m.match(&v) {
			col.offer(v.entry())
		}
	}
	return nil
}

// collector keeps the newest limit entries offered.
type collector struct {
	limit    int
	heap     *entryHeap
	from, to int64
}

func (c *collector) full() bool { return len(*c.heap) >= c.limit }

func (c *collector) minTimeNs() int64 { return (*c.heap)[0].Time.UnixNano() }

func (c *collector) minTime() int64 {
	if len(*c.heap) == 0 {
		return 0
	}
	return c.minTimeNs()
}

func (c *collector) offer(e Entry) {
	if len(*c.heap) < c.limit {
		heap.Push(c.heap, e)
		return
	}
	if e.Time.After((*c.heap)[0].Time) {
		(*c.heap)[0] = e
		heap.Fix(c.heap, 0)
	}
}

// entryHeap is a min-heap by time.
type entryHeap []Entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].Time.Before(h[j].Time) }
func (h entryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)        { *h = append(*h, x.(Entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ---- follow ----

type sub struct {
	m  *matcher
	ch chan Entry
}

// Follow returns a channel of the entries appended from now on that match q, and a
// function to stop (it closes the channel). A follower that does not keep up loses
// entries (counted in Stats.FollowDropped) rather than slowing appends. The channel is
// closed when the store closes.
func (s *Store) Follow(q *Query, buffer int) (<-chan Entry, func()) {
	if buffer <= 0 {
		buffer = 1024
	}
	x := &sub{m: newMatcher(q), ch: make(chan Entry, buffer)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(x.ch)
		return x.ch, func() {}
	}
	s.subs[x] = struct{}{}
	s.mu.Unlock()
	return x.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[x]; ok {
			delete(s.subs, x)
			close(x.ch)
		}
	}
}

// publish sends e to the followers. Called with mu held.
func (s *Store) publish(e *Entry) {
	if len(s.subs) == 0 {
		return
	}
	var v *view
	for x := range s.subs {
		if v == nil {
			v = entryView(e)
		}
		if !x.m.match(v) {
			continue
		}
		select {
		case x.ch <- *e:
		default:
			s.dropped.Add(1)
		}
	}
}

// entryView is e as a view (for matching entries not yet encoded).
func entryView(e *Entry) *view {
	v := &view{t: e.Time.UnixNano(), node: []byte(e.Node), instance: []byte(e.Instance),
		deployment: []byte(e.Deployment), namespace: []byte(e.Namespace), stream: []byte(e.Stream),
		level: []byte(e.Level), message: []byte(e.Message)}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v.fields = append(v.fields, [2][]byte{[]byte(k), []byte(e.Fields[k])})
	}
	return v
}

// Match reports whether e matches q.
func (q *Query) Match(e *Entry) bool { return newMatcher(q).match(entryView(e)) }
