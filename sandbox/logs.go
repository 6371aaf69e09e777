package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Logs: the program's stdout and stderr are pipes. The runtime reads them (one pump
// goroutine per stream, parked in the netpoller while the program is quiet) and
// writes <instance>/stdout.log and stderr.log itself, so it rotates as it writes:
// before a write would take the current file past Config.LogMaxBytes, the file is
// renamed to .1 (older ones shift to .2, ...; the oldest beyond Config.LogFiles is
// removed) and a new one is started. A stream never takes more than LogMaxBytes x
// LogFiles on disk, and no line is lost to a rotation. Files are cut at line ends
// where a line fits in a file.
//
// Output over Config.LogRateBytes per second (per instance, both streams together,
// with a burst of Config.LogBurstBytes) is dropped; when the stream is written again a
// marker line says how many bytes were dropped, and Stats.LogDroppedBytes counts them.
//
// The instance init holds a second read end of both pipes, so a runtime restart loses
// nothing: the program writes into the pipe buffer (1 MiB where the host allows) and
// blocks when it is full until the next runtime takes its ends back (pidfd_getfd) and
// reads on.
//
// Instances started by an older runtime (the program writing the files directly)
// are rotated the old way until their next start: copy-then-truncate every
// HousekeepInterval (rotateLegacyLog).

func logPath(dir string, s Stream) string { return filepath.Join(dir, string(s)+".log") }

func rotatedPath(dir string, s Stream, i int) string {
	return logPath(dir, s) + "." + strconv.Itoa(i)
}

// rateLimiter is a token bucket over bytes, shared by an instance's streams.
type rateLimiter struct {
	rate, burst float64 // bytes per second, bucket size; rate <= 0: unlimited

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time

	dropped atomic.Int64 // bytes dropped in total
}

func newRateLimiter(rate, burst int64) *rateLimiter {
	return &rateLimiter{rate: float64(rate), burst: float64(burst), tokens: float64(burst)}
}

// take returns how many of n bytes may be written at now.
func (l *rateLimiter) take(n int, now time.Time) int {
	if l.rate <= 0 {
		return n
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	ok := min(n, int(l.tokens))
	l.tokens -= float64(ok)
	return ok
}

// refund returns unused bytes of a take.
func (l *rateLimiter) refund(n int) {
	if l.rate <= 0 || n <= 0 {
		return
	}
	l.mu.Lock()
	l.tokens = min(l.burst, l.tokens+float64(n))
	l.mu.Unlock()
}

// logWriter writes one stream of one instance into its rotated files. Only its pump
// uses it.
type logWriter struct {
	dir    string
	stream Stream
	max    int64 // bytes per file
	files  int   // files kept, the current one included
	lim    *rateLimiter
	log    *slog.Logger
	name   string     // the instance (for out)
	out    OutputSink // Config.Output, or nil

	f       *os.File
	size    int64
	last    byte  // last byte written ('\n' at a line start)
	dropped int64 // bytes dropped since the last marker line
	cut     bool  // the last byte dropped was inside a line
	failed  bool  // a write failed (logged once)
}

// write writes what the rate limit allows of b and drops the rest, in whole lines.
func (w *logWriter) write(b []byte, now time.Time) {
	if w.cut { // the rest of a line whose start was dropped
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.drop(len(b))
			return
		}
		w.drop(i + 1)
		b, w.cut = b[i+1:], false
		if len(b) == 0 {
			return
		}
	}
	ok := w.lim.take(len(b), now)
	keep := b
	if ok < len(b) {
		// Keep up to the last line end allowed.
		keep = b[:bytes.LastIndexByte(b[:ok], '\n')+1]
		w.lim.refund(ok - len(keep))
	}
	if len(keep) > 0 && w.dropped > 0 {
		w.marker()
	}
	w.writeRaw(keep)
	if w.out != nil && len(keep) > 0 {
		w.out.InstanceOutput(w.name, w.stream, keep, now)
	}
	if rest := b[len(keep):]; len(rest) > 0 {
		w.drop(len(rest))
		w.cut = rest[len(rest)-1] != '\n'
	}
}

func (w *logWriter) drop(n int) {
	w.dropped += int64(n)
	w.lim.dropped.Add(int64(n))
}

// marker records the bytes dropped so far on their own line.
func (w *logWriter) marker() {
	nl := ""
	if w.last != '\n' && w.size > 0 {
		nl = "\n"
	}
	w.writeRaw(fmt.Appendf(nil, "%s[constellation: %d bytes of %s dropped: output over the limit of %d bytes/s]\n", nl, w.dropped, w.stream, int64(w.lim.rate)))
	w.dropped = 0
}

// writeRaw appends b, rotating before a write would pass max.
func (w *logWriter) writeRaw(b []byte) {
	for len(b) > 0 {
		if w.f == nil && !w.open() {
			return
		}
		room := w.max - w.size
		if room <= 0 {
			w.rotate()
			continue
		}
		chunk := b
		if int64(len(chunk)) > room {
			if i := bytes.LastIndexByte(b[:room], '\n'); i >= 0 {
				chunk = b[:i+1]
			} else if w.size > 0 {
				w.rotate() // the line starts a new file
				continue
			} else {
				chunk = b[:room] // a line longer than a file is split
			}
		}
		n, err := w.f.Write(chunk)
		w.size += int64(n)
		if n > 0 {
			w.last = chunk[n-1]
		}
		if err != nil {
			w.fail(err)
			return
		}
		b = b[n:]
	}
}

func (w *logWriter) open() bool {
	f, err := os.OpenFile(logPath(w.dir, w.stream), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		w.fail(err)
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		w.fail(err)
		return false
	}
	w.f, w.size, w.last = f, fi.Size(), '\n'
	if w.size > 0 {
		var b [1]byte
		if _, err := f.ReadAt(b[:], w.size-1); err == nil {
			w.last = b[0]
		}
	}
	return true
}

// rotate renames the current file to .1 (shifting older ones) and starts a new one.
func (w *logWriter) rotate() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	p := logPath(w.dir, w.stream)
	if w.files <= 1 {
		os.Remove(p)
	} else {
		os.Remove(rotatedPath(w.dir, w.stream, w.files-1))
		for i := w.files - 2; i >= 1; i-- {
			os.Rename(rotatedPath(w.dir, w.stream, i), rotatedPath(w.dir, w.stream, i+1))
		}
		if err := os.Rename(p, rotatedPath(w.dir, w.stream, 1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.fail(err)
			os.Remove(p) // never grow past the limit
		}
	}
	w.size = 0
}

func (w *logWriter) fail(err error) {
	if !w.failed {
		w.failed = true
		w.log.Warn("sandbox: writing log", "dir", w.dir, "stream", w.stream, "err", err)
	}
}

func (w *logWriter) close() {
	if w.dropped > 0 {
		w.marker()
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// logBufs are the pumps' read buffers: taken only while data is ready, so an idle
// instance holds none.
var logBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// logPump copies one pipe into a logWriter until end of file or close.
type logPump struct {
	f    *os.File
	w    *logWriter
	now  func() time.Time
	done chan struct{}
}

func (p *logPump) run() {
	defer close(p.done)
	defer p.w.close()
	rc, err := p.f.SyscallConn()
	if err != nil {
		return
	}
	for {
		end := false
		err := rc.Read(func(fd uintptr) bool {
			bp := logBufs.Get().(*[]byte)
			defer logBufs.Put(bp)
			n, err := syscall.Read(int(fd), *bp)
			if err == syscall.EAGAIN {
				return false // wait in the netpoller
			}
			if err == syscall.EINTR {
				return true
			}
			if n <= 0 || err != nil {
				end = true
				return true
			}
			p.w.write((*bp)[:n], p.now())
			return true
		})
		if err != nil || end {
			return
		}
	}
}

// runLogs are the pumps of one run.
type runLogs struct {
	pumps []*logPump
}

// startLogsLocked starts the pumps of a run (owned by the runtime's wait group; they end
// at end of file, or when closeLogs closes their pipes).
func (r *Runtime) startLogsLocked(in *instance, pipes runPipes) *runLogs {
	if in.limiter == nil {
		in.limiter = newRateLimiter(r.cfg.LogRateBytes, r.cfg.LogBurstBytes)
	}
	rl := &runLogs{}
	for _, s := range []struct {
		f      *os.File
		stream Stream
	}{{pipes.stdout, Stdout}, {pipes.stderr, Stderr}} {
		if s.f == nil {
			continue
		}
		p := &logPump{
			f: s.f,
			w: &logWriter{dir: in.st.Res.Dir, stream: s.stream, max: r.cfg.LogMaxBytes, files: r.cfg.LogFiles, lim: in.limiter, log: r.log,
				name: in.st.Spec.Name, out: r.cfg.Output},
			now:  r.cfg.Now,
			done: make(chan struct{}),
		}
		rl.pumps = append(rl.pumps, p)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer p.f.Close()
			p.run()
		}()
	}
	return rl
}

// wait waits until every pump has read to the end of its pipe, at most d.
func (rl *runLogs) wait(d time.Duration) {
	if rl == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for _, p := range rl.pumps {
		select {
		case <-p.done:
		case <-t.C:
			return
		}
	}
}

// close stops the pumps (the runtime closes; what is still in the pipes stays there
// for the next runtime).
func (rl *runLogs) close() {
	if rl == nil {
		return
	}
	for _, p := range rl.pumps {
		p.f.Close()
	}
}

// rotateLegacyLog rotates a file written directly by a program started by an older
// runtime: copy-then-truncate when larger than maxBytes, keeping files-1 old files.
func rotateLegacyLog(dir string, s Stream, maxBytes int64, files int) error {
	p := logPath(dir, s)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Size() <= maxBytes {
		return nil
	}
	if files <= 1 {
		return os.Truncate(p, 0)
	}
	os.Remove(rotatedPath(dir, s, files-1))
	for i := files - 2; i >= 1; i-- {
		os.Rename(rotatedPath(dir, s, i), rotatedPath(dir, s, i+1))
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(rotatedPath(dir, s, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, io.LimitReader(src, maxBytes)); err != nil {
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
	// was read. It follows across rotations.
	Follow bool
	// Rotated includes the rotated files (oldest first) before the current one.
	Rotated bool
}

// Logs returns a reader over an instance's log. It streams from the files (memory does
// not grow with their size) and holds them open, so a rotation while it reads loses
// nothing. Close it when done.
func (r *Runtime) Logs(ctx context.Context, name string, opt LogOptions) (io.ReadCloser, error) {
	in, err := r.get(name)
	if err != nil {
		return nil, err
	}
	if opt.Stream == "" {
		opt.Stream = Stdout
	}
	if opt.Stream != Stdout && opt.Stream != Stderr {
		return nil, fmt.Errorf("sandbox: unknown log stream %q (want %q or %q): %w", opt.Stream, Stdout, Stderr, ErrInvalidSpec)
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
	// The current file first, then the rotated ones: a rotation in between shows as a
	// file seen twice (same inode), which is skipped, rather than a file missed.
	if f, err := os.Open(lr.path); err == nil {
		lr.f = f
	}
	if opt.Rotated {
		seen := []os.FileInfo{}
		if lr.f != nil {
			if fi, err := lr.f.Stat(); err == nil {
				seen = append(seen, fi)
			}
		}
		var older []*os.File
	next:
		for i := 1; i < 1000; i++ {
			f, err := os.Open(lr.path + "." + strconv.Itoa(i))
			if err != nil {
				break
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				continue
			}
			for _, s := range seen {
				if os.SameFile(s, fi) {
					f.Close()
					continue next
				}
			}
			seen = append(seen, fi)
			older = append(older, f)
		}
		for i := len(older) - 1; i >= 0; i-- { // oldest first
			lr.queue = append(lr.queue, older[i])
		}
	}
	return lr, nil
}

// logReader reads rotated files, then the current file, following appends and
// rotations (the file it holds was renamed: it reads it to the end, then opens the new
// one).
type logReader struct {
	ctx    context.Context
	path   string
	poll   time.Duration
	live   func() bool
	follow bool
	closed chan struct{}

	mu    sync.Mutex // guards the fields below (Close may run during a Read)
	queue []*os.File // rotated files still to read, oldest first
	f     *os.File   // the current file (nil: none yet)
	off   int64
	once  bool
	done  bool // closed
}

func (l *logReader) Read(p []byte) (int, error) {
	for {
		n, wait, err := l.readOnce(p)
		if !wait {
			return n, err
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

// readOnce reads what is there; wait: nothing yet, poll again.
func (l *logReader) readOnce(p []byte) (n int, wait bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.done {
			return 0, false, io.EOF
		}
		if len(l.queue) > 0 {
			n, err := l.queue[0].Read(p)
			if n > 0 {
				return n, false, nil
			}
			if err != nil && err != io.EOF {
				return 0, false, err
			}
			l.queue[0].Close()
			l.queue = l.queue[1:]
			continue
		}
		if l.f == nil {
			f, err := os.Open(l.path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, false, err
			}
			l.f, l.off = f, 0
		}
		if l.f != nil {
			if fi, err := l.f.Stat(); err == nil && fi.Size() < l.off {
				l.off = 0 // truncated (legacy copy-truncate rotation)
			}
			n, err := l.f.ReadAt(p, l.off)
			l.off += int64(n)
			if n > 0 {
				return n, false, nil
			}
			if err != nil && err != io.EOF {
				return 0, false, err
			}
			if l.rotated() {
				// Nothing more is written to the file we hold: read it to the end
				// (above, on the next call), then switch.
				if n, _ := l.f.ReadAt(p, l.off); n > 0 {
					l.off += int64(n)
					return n, false, nil
				}
				l.f.Close()
				l.f = nil
				continue
			}
		}
		if !l.follow {
			return 0, false, io.EOF
		}
		// Check liveness before sleeping, then read once more so nothing written before
		// the exit is missed.
		if !l.live() {
			if l.once {
				return 0, false, io.EOF
			}
			l.once = true
			continue
		}
		return 0, true, nil
	}
}

// rotated reports whether the path now names another file than the one held.
func (l *logReader) rotated() bool {
	held, err := l.f.Stat()
	if err != nil {
		return false
	}
	cur, err := os.Stat(l.path)
	return err == nil && !os.SameFile(held, cur)
}

func (l *logReader) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil
	}
	l.done = true
	close(l.closed)
	for _, f := range l.queue {
		f.Close()
	}
	l.queue = nil
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
