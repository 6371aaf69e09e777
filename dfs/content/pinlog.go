package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Pins are kept in Dir/pins.json (a snapshot: a JSON list of {"root": CID, "n": count})
// and Dir/pins.log (a journal since the snapshot: one JSON record per line, the pin's new
// count, 0 when the root is no longer pinned). A pin or unpin appends one line and
// fdatasyncs it: one flush per pin instead of rewriting the whole list with two. The
// journal is folded into the snapshot at open and when it grows past pinLogFold lines.

const pinLogFold = 4096

func (s *Store) pinLogFile() string { return filepath.Join(s.cfg.Dir, "pins.log") }

// replayPinLog applies the journal to s.pins (at open). A torn last line (a crash during
// the append) is dropped; a damaged line before it is an error.
func (s *Store) replayPinLog() error {
	b, err := os.ReadFile(s.pinLogFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dfs content: read pins: %w", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, ln := range lines {
		if len(ln) == 0 {
			continue
		}
		var r pinRec
		err := json.Unmarshal(ln, &r)
		if err == nil && (!r.Root.Defined() || r.N < 0) {
			err = fmt.Errorf("bad pin record %s", ln)
		}
		if err != nil {
			if i == len(lines)-1 { // torn by a crash: the pin it recorded never returned
				break
			}
			return fmt.Errorf("dfs content: %s line %d is damaged (%v); each line should be {\"root\": CID, \"n\": count}", s.pinLogFile(), i+1, err)
		}
		if r.N == 0 {
			delete(s.pins, key(r.Root))
		} else {
			rr := r
			s.pins[key(r.Root)] = &rr
		}
	}
	return nil
}

// foldPinsLocked writes the snapshot of s.pins and empties the journal.
func (s *Store) foldPinsLocked() error {
	if s.pinLog != nil {
		s.pinLog.Close()
		s.pinLog = nil
	}
	if err := s.writePinSnapshotLocked(); err != nil {
		return err
	}
	if err := os.Remove(s.pinLogFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.pinLogLines = 0
	return nil
}

// logPinLocked records root's pin count durably (one appended line, fdatasync).
func (s *Store) logPinLocked(r pinRec) error {
	if s.pinLogLines >= pinLogFold {
		return s.foldPinsLocked()
	}
	if s.pinLog == nil {
		f, err := os.OpenFile(s.pinLogFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		if err := syncDir(s.cfg.Dir); err != nil { // the journal's name is durable
			f.Close()
			return err
		}
		s.pinLog = f
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := s.pinLog.Write(append(b, '\n')); err != nil {
		return err
	}
	s.pinLogLines++
	return fdatasync(s.pinLog)
}
