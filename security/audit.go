package security

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/fsutil"
)

// The audit log is one file per node, <data-dir>/audit/audit.log: one JSON object a line
// (api.AuditEntry), append-only. Each line carries the SHA-256 of the previous line's
// content (prev) and of its own content without its hash (hash), so an edited, inserted or
// deleted line breaks the chain (Verify). Retention rewrites the file without the old
// lines and records the last dropped line's hash and sequence number in audit.anchor: the
// first kept line must follow it, so dropping lines from the head outside retention is
// detected too.

// maxAuditLine bounds one line when reading the log back.
const maxAuditLine = 64 << 10

type auditLog struct {
	dir       string
	node      string
	retention time.Duration
	now       func() time.Time

	mu        sync.Mutex // guards the following
	f         *os.File
	w         *bufio.Writer
	seq       uint64
	last      string // hash of the last line
	lastPrune time.Time
	dirty     bool // written since the last fsync

	// Notes says what opening the log found and repaired (a torn last line, a damaged
	// line); the service logs them.
	Notes []string

	stop chan struct{} // closes the syncer
	done chan struct{}
}

// auditSyncEvery is how long an appended entry may sit in the page cache before it is
// fsynced: a crash of the process loses nothing (the write is in the kernel), a power
// loss at most this much. One fsync per API call would cost every mutation a disk flush.
const auditSyncEvery = 200 * time.Millisecond

type anchor struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func openAudit(dataDir, node string, retention time.Duration, now func() time.Time) (*auditLog, error) {
	dir := filepath.Join(dataDir, "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	a := &auditLog{dir: dir, node: node, retention: retention, now: now, stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.repairTail(); err != nil {
		return nil, err
	}
	if err := a.reopen(); err != nil {
		return nil, err
	}
	go a.syncLoop()
	return a, nil
}

// repairTail handles a last line cut short by a crash or a full disk (no final newline):
// its bytes move to audit.torn.<unix-nanos> for inspection and the log is truncated to
// its last complete line, so the node starts and the chain continues from that line.
func (a *auditLog) repairTail() error {
	f, err := os.OpenFile(a.path(), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	// Read back from the end until a newline (a line is at most maxAuditLine).
	size := st.Size()
	n := min(size, int64(maxAuditLine)+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && err != io.EOF {
		return fmt.Errorf("audit log: %w", err)
	}
	if buf[len(buf)-1] == '\n' {
		return nil
	}
	cut := size - n + int64(bytes.LastIndexByte(buf, '\n')+1) // 0 when no newline at all
	torn := filepath.Join(a.dir, fmt.Sprintf("audit.torn.%d", a.now().UnixNano()))
	if err := fsutil.WriteFile(torn, buf[cut-(size-n):], 0o600); err != nil {
		return fmt.Errorf("audit log: keep the torn line: %w", err)
	}
	if err := f.Truncate(cut); err != nil {
		return fmt.Errorf("audit log: drop the torn line: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	a.Notes = append(a.Notes, fmt.Sprintf("the last line was cut short (%d bytes, a crash or a full disk); it was moved to %s and the log continues from the line before", size-cut, torn))
	return nil
}

// syncLoop fsyncs appended entries every auditSyncEvery until close.
func (a *auditLog) syncLoop() {
	defer close(a.done)
	t := time.NewTicker(auditSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		a.mu.Lock()
		if a.dirty && a.f != nil {
			_ = a.f.Sync()
			a.dirty = false
		}
		a.mu.Unlock()
	}
}

func (a *auditLog) path() string       { return filepath.Join(a.dir, "audit.log") }
func (a *auditLog) anchorPath() string { return filepath.Join(a.dir, "audit.anchor") }

// reopen finds the chain's end (the last line, else the anchor) and opens for appending.
func (a *auditLog) reopen() error {
	anc, err := a.readAnchor()
	if err != nil {
		return err
	}
	a.seq, a.last = anc.Seq, anc.Hash
	var damaged []string
	err = a.scanTolerant(func(e api.AuditEntry, _ []byte) error {
		a.seq, a.last = e.Seq, e.Hash
		return nil
	}, func(err error) { damaged = append(damaged, err.Error()) })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit log %s: %w", a.path(), err)
	}
	if len(damaged) > 0 {
		// A damaged line must not keep the node from starting: the chain continues from the
		// last readable entry and `audit verify` reports the break.
		a.Notes = append(a.Notes, fmt.Sprintf("%d damaged line(s), first: %s; appending continues after the last readable entry (seq %d); run 'constellation audit verify'", len(damaged), damaged[0], a.seq))
	}
	f, err := os.OpenFile(a.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	a.f, a.w = f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

func (a *auditLog) readAnchor() (anchor, error) {
	var anc anchor
	b, err := os.ReadFile(a.anchorPath())
	if errors.Is(err, os.ErrNotExist) {
		return anc, nil
	}
	if err != nil {
		return anc, fmt.Errorf("audit anchor: %w", err)
	}
	if err := json.Unmarshal(b, &anc); err != nil {
		return anc, fmt.Errorf("audit anchor %s: %w", a.anchorPath(), err)
	}
	return anc, nil
}

// hashEntry is the SHA-256 of e's JSON with its Hash field empty.
func hashEntry(e api.AuditEntry) string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// append writes e as the next line of the chain (and flushes it to the file).
func (a *auditLog) append(e api.AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return errors.New("audit log closed")
	}
	e.Node = a.node
	e.Seq = a.seq + 1
	e.Prev = a.last
	e.Hash = hashEntry(e)
	b, _ := json.Marshal(e)
	b = append(b, '\n')
	if _, err := a.w.Write(b); err != nil {
		return err
	}
	if err := a.w.Flush(); err != nil {
		return err
	}
	a.dirty = true
	a.seq, a.last = e.Seq, e.Hash
	if now := a.now(); now.Sub(a.lastPrune) > time.Hour {
		a.lastPrune = now
		if err := a.pruneLocked(now.Add(-a.retention)); err != nil {
			return fmt.Errorf("audit retention: %w", err)
		}
	}
	return nil
}

// scan reads every line in order (raw: the line's bytes).
func (a *auditLog) scan(fn func(e api.AuditEntry, raw []byte) error) error {
	f, err := os.Open(a.path())
	if err != nil {
		return err
	}
	defer f.Close()
	return scanLines(f, fn)
}

// scanTolerant is scan that reports undecodable lines to bad and goes on.
func (a *auditLog) scanTolerant(fn func(e api.AuditEntry, raw []byte) error, bad func(error)) error {
	f, err := os.Open(a.path())
	if err != nil {
		return err
	}
	defer f.Close()
	return scanLinesBad(f, fn, bad)
}

func scanLines(r io.Reader, fn func(e api.AuditEntry, raw []byte) error) error {
	return scanLinesBad(r, fn, nil)
}

// scanLinesBad reads lines; an undecodable line ends the scan with its error, or, with
// bad, is reported to it and skipped.
func scanLinesBad(r io.Reader, fn func(e api.AuditEntry, raw []byte) error, bad func(error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxAuditLine)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		e, err := decodeAuditLine(raw)
		if err != nil {
			if bad != nil {
				bad(fmt.Errorf("line %d: %w", line, err))
				continue
			}
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := fn(e, raw); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	return nil
}

var errNotAuditEntry = errors.New("not an audit entry")

// decodeAuditLine decodes one line strictly.
func decodeAuditLine(raw []byte) (api.AuditEntry, error) {
	var e api.AuditEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("%w: %v", errNotAuditEntry, err)
	}
	if dec.More() {
		return e, fmt.Errorf("%w: more than one JSON value", errNotAuditEntry)
	}
	return e, nil
}

// pruneLocked drops lines older than cut: the kept lines go to a new file that replaces
// the log, and the anchor names the last dropped line.
func (a *auditLog) pruneLocked(cut time.Time) error {
	anc, err := a.readAnchor()
	if err != nil {
		return err
	}
	var kept bytes.Buffer
	dropped := false
	err = a.scan(func(e api.AuditEntry, raw []byte) error {
		if e.Time.Before(cut) && kept.Len() == 0 {
			anc, dropped = anchor{Seq: e.Seq, Hash: e.Hash}, true
			return nil
		}
		kept.Write(raw)
		kept.WriteByte('\n')
		return nil
	})
	if errors.Is(err, errNotAuditEntry) {
		// A damaged log is kept as it is (evidence for `audit verify`): retention waits.
		return nil
	}
	if err != nil || !dropped {
		return err
	}
	b, _ := json.Marshal(anc)
	if err := fsutil.WriteFile(a.anchorPath(), b, 0o600); err != nil {
		return err
	}
	if err := fsutil.WriteFile(a.path(), kept.Bytes(), 0o600); err != nil {
		return err
	}
	a.f.Close()
	f, err := os.OpenFile(a.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		a.f = nil
		return err
	}
	a.f, a.w = f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// verify checks the chain: every line's hash, every prev, sequence numbers without gaps,
// the first line following the anchor.
func (a *auditLog) verify() api.AuditVerify {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := api.AuditVerify{Node: a.node, OK: true}
	anc, err := a.readAnchor()
	if err != nil {
		out.OK, out.Error = false, err.Error()
		return out
	}
	prev, seq := anc.Hash, anc.Seq
	err = a.scan(func(e api.AuditEntry, _ []byte) error {
		out.Entries++
		switch {
		case e.Hash != hashEntry(e):
			return fmt.Errorf("entry %d (seq %d) was changed: its content does not match its hash", out.Entries, e.Seq)
		case e.Seq != seq+1:
			return fmt.Errorf("entry %d has seq %d after seq %d: entries were removed or inserted", out.Entries, e.Seq, seq)
		case e.Prev != prev:
			return fmt.Errorf("entry %d (seq %d) does not follow the previous entry: entries were removed, inserted or changed", out.Entries, e.Seq)
		}
		prev, seq = e.Hash, e.Seq
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		out.OK, out.Error = false, err.Error()
		return out
	}
	if seq != a.seq || prev != a.last {
		out.OK, out.Error = false, fmt.Sprintf("the log ends at seq %d but this node last wrote seq %d: entries were removed from its end", seq, a.seq)
	}
	return out
}

// auditQuery selects entries.
type auditQuery struct {
	Since int64  `cbor:"1,keyasint,omitempty"` // unix nanoseconds
	Who   string `cbor:"2,keyasint,omitempty"`
	Route string `cbor:"3,keyasint,omitempty"` // substring of the route pattern
	Limit int    `cbor:"4,keyasint,omitempty"`
}

// maxAuditResults bounds the entries one node answers.
const maxAuditResults = 2000

func (q auditQuery) match(e api.AuditEntry) bool {
	return (q.Since == 0 || e.Time.UnixNano() >= q.Since) &&
		(q.Who == "" || e.Caller == q.Who || e.CallerID == q.Who) &&
		(q.Route == "" || strings.Contains(e.Route, q.Route))
}

// query returns the newest matching entries (at most q.Limit), oldest first.
func (a *auditLog) query(q auditQuery) ([]api.AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := q.Limit
	if lim <= 0 || lim > maxAuditResults {
		lim = maxAuditResults
	}
	var out []api.AuditEntry
	err := a.scan(func(e api.AuditEntry, _ []byte) error {
		if q.match(e) {
			out = append(out, e)
			if len(out) > lim {
				out = out[1:]
			}
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return out, err
}

func (a *auditLog) close() {
	a.mu.Lock()
	if a.f != nil {
		_ = a.w.Flush()
		_ = a.f.Sync()
		a.f.Close()
		a.f = nil
	}
	a.mu.Unlock()
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}
