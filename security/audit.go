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
}

type anchor struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func openAudit(dataDir, node string, retention time.Duration, now func() time.Time) (*auditLog, error) {
	dir := filepath.Join(dataDir, "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	a := &auditLog{dir: dir, node: node, retention: retention, now: now}
	if err := a.reopen(); err != nil {
		return nil, err
	}
	return a, nil
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
	err = a.scan(func(e api.AuditEntry, _ []byte) error {
		a.seq, a.last = e.Seq, e.Hash
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit log %s: %w", a.path(), err)
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

func scanLines(r io.Reader, fn func(e api.AuditEntry, raw []byte) error) error {
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

// decodeAuditLine decodes one line strictly.
func decodeAuditLine(raw []byte) (api.AuditEntry, error) {
	var e api.AuditEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, fmt.Errorf("not an audit entry: %v", err)
	}
	if dec.More() {
		return e, errors.New("not an audit entry: more than one JSON value")
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
	defer a.mu.Unlock()
	if a.f != nil {
		_ = a.w.Flush()
		a.f.Close()
		a.f = nil
	}
}
