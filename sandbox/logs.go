package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Logs: the program writes straight into <instance>/stdout.log and stderr.log (opened
// O_APPEND by the runtime and inherited), so logging costs the supervisor nothing and
// survives a supervisor restart. Rotation is copy-then-truncate (like logrotate's
// copytruncate): stdout.log is copied to stdout.log.1 (older files shift to .2, ...)
// and truncated; lines written between the copy and the truncate can be lost, and a
// file may exceed LogMaxBytes by what is written within one HousekeepInterval.

func logPath(dir string, s Stream) string { return filepath.Join(dir, string(s)+".log") }

func openLog(dir string, s Stream) (*os.File, error) {
	f, err := os.OpenFile(logPath(dir, s), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open log: %w", err)
	}
	return f, nil
}

// rotateLog rotates the stream's file if it is larger than maxBytes, keeping keep old
// files.
func rotateLog(dir string, s Stream, maxBytes int64, keep int) error {
	p := logPath(dir, s)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Size() <= maxBytes {
		return nil
	}
	for i := keep - 1; i >= 1; i-- {
		os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1))
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(p+".1", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Truncate(p, 0)
}

// LogOptions selects what Logs returns.
type LogOptions struct {
	Stream Stream // Stdout (default) or Stderr
	// Follow keeps reading as the program writes; the reader ends (io.EOF) when ctx is
	// done, the reader is closed, or the instance has exited for good and everything
	// was read.
	Follow bool
	// Rotated includes the rotated files (oldest first) before the current one.
	Rotated bool
}

// Logs returns a reader over an instance's log. Close it when done.
func (r *Runtime) Logs(ctx context.Context, name string, opt LogOptions) (io.ReadCloser, error) {
	in, err := r.get(name)
	if err != nil {
		return nil, err
	}
	if opt.Stream == "" {
		opt.Stream = Stdout
	}
	if opt.Stream != Stdout && opt.Stream != Stderr {
		return nil, fmt.Errorf("sandbox: unknown log stream %q: %w", opt.Stream, ErrInvalidSpec)
	}
	in.mu.Lock()
	dir := in.st.Res.Dir
	in.mu.Unlock()
	lr := &logReader{
		ctx:  ctx,
		path: logPath(dir, opt.Stream),
		poll: r.cfg.FollowInterval,
		live: func() bool {
			in.mu.Lock()
			defer in.mu.Unlock()
			return !in.gone && (in.st.State == StateRunning || in.st.State == StateRestarting)
		},
		follow: opt.Follow,
		closed: make(chan struct{}),
	}
	if opt.Rotated {
		for i := r.cfg.LogFiles; i >= 1; i-- {
			if b, err := os.ReadFile(lr.path + "." + strconv.Itoa(i)); err == nil {
				lr.pending = append(lr.pending, b...)
			}
		}
	}
	return lr, nil
}

// logReader reads a log file, following appends and copy-truncate rotations.
type logReader struct {
	ctx     context.Context
	path    string
	poll    time.Duration
	live    func() bool
	follow  bool
	pending []byte // read before the file (rotated content)
	off     int64
	f       *os.File
	closed  chan struct{}
	once    bool
}

func (l *logReader) Read(p []byte) (int, error) {
	for {
		if len(l.pending) > 0 {
			n := copy(p, l.pending)
			l.pending = l.pending[n:]
			return n, nil
		}
		if l.f == nil {
			f, err := os.Open(l.path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, err
			}
			l.f = f
		}
		if l.f != nil {
			fi, err := l.f.Stat()
			if err != nil {
				return 0, err
			}
			if fi.Size() < l.off {
				// Rotated (copy-truncate): the rest of what we had not read is in .1.
				if b, err := os.ReadFile(l.path + ".1"); err == nil && int64(len(b)) >= l.off {
					l.pending = append(l.pending, b[l.off:]...)
				}
				l.off = 0
				continue
			}
			if fi.Size() > l.off {
				n, err := l.f.ReadAt(p[:min(int64(len(p)), fi.Size()-l.off)], l.off)
				l.off += int64(n)
				if n > 0 {
					return n, nil
				}
				if err != nil && err != io.EOF {
					return 0, err
				}
			}
		}
		if !l.follow {
			return 0, io.EOF
		}
		// Check liveness before sleeping, then read once more so nothing written before
		// the exit is missed.
		if !l.live() {
			if l.once {
				return 0, io.EOF
			}
			l.once = true
			continue
		}
		select {
		case <-l.ctx.Done():
			return 0, io.EOF
		case <-l.closed:
			return 0, io.EOF
		case <-time.After(l.poll):
		}
	}
}

func (l *logReader) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
