package sandbox

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The instance init: PID 1 of every instance's PID namespace, the program's parent.
// A program that is PID 1 itself gets no default action for SIGTERM (the kernel drops
// signals a namespace's init has no handler for), so `sleep` or python would ignore a
// stop until the grace ran out; and nobody would reap the orphans it leaves. The init
// forwards signals to the program's process group, reaps every child, and reports
// the program's wait status to the runtime on a pipe.
//
// On amd64 and arm64 the init is pid1Main (pid1_linux_$GOARCH.s): about 500 bytes of
// machine code the runtime wraps into a static ELF in a sealed memfd once (pid1ELF,
// initBinary) and the launcher execs with execveat. It maps one page of code and one
// of stack, so an idle instance pays a few KiB for it instead of a Go runtime's
// half megabyte, and it starts in microseconds. Elsewhere (and with the fallback
// launcher) the re-executed Go init stays resident as PID 1 and does the same in Go
// (goPID1).
//
// File descriptors of the init (both kinds): 0-2 the program's stdio; pid1StatusFD the
// status pipe's write end; pid1HeldFDs the read ends of the status, stdout and stderr
// pipes, which the init holds and never reads, so that the pipes outlive a runtime
// restart: the next runtime takes its ends back from the init with pidfd_getfd.
const (
	pid1StatusFD = 3
	pid1HeldFDs  = 4 // 4: status read end, 5: stdout read end, 6: stderr read end
	pid1NumFDs   = 7
)

// Status records the init writes on the status pipe: 8 bytes, kind then value (native
// endian uint32s).
const (
	pid1RecExit     = 1 // value: the program's wait status
	pid1RecExecFail = 2 // value: execve's errno (the program could not be started)
	pid1RecStarted  = 3 // value: the program's PID in the instance; it is exec'd
)

// pid1Name is argv[0] of the init.
const pid1Name = "init"

// pid1Marker ends pid1Main's code ("pid1end!").
const pid1Marker = 0x21646e6531646970

// pid1ELF returns the init program: a static ELF executable for this architecture
// whose only segment is pid1Main's code.
func pid1ELF() ([]byte, error) {
	if !havePID1 {
		return nil, fmt.Errorf("sandbox: no native init on %s", runtime.GOARCH)
	}
	text := unsafe.Slice((*byte)(pid1Text()), 4096)
	var mark [8]byte
	binary.LittleEndian.PutUint64(mark[:], pid1Marker)
	n := bytes.Index(text, mark[:])
	if n < 0 {
		return nil, errors.New("sandbox: init code end marker not found")
	}
	machine := elf.EM_X86_64
	if runtime.GOARCH == "arm64" {
		machine = elf.EM_AARCH64
	}
	return buildELF(machine, text[:n]), nil
}

// buildELF wraps position-independent code into a minimal static executable: the ELF
// header, a PT_LOAD of the whole file (read+execute) at 4 MiB and a non-executable
// stack.
func buildELF(machine elf.Machine, code []byte) []byte {
	const base = 0x400000
	hdrLen := uint64(binary.Size(elf.Header64{}) + 2*binary.Size(elf.Prog64{}))
	size := hdrLen + uint64(len(code))
	h := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     base + hdrLen,
		Phoff:     uint64(binary.Size(elf.Header64{})),
		Ehsize:    uint16(binary.Size(elf.Header64{})),
		Phentsize: uint16(binary.Size(elf.Prog64{})),
		Phnum:     2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	load := elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Vaddr: base, Paddr: base, Filesz: size, Memsz: size, Align: 0x10000,
	}
	stack := elf.Prog64{Type: uint32(elf.PT_GNU_STACK), Flags: uint32(elf.PF_R | elf.PF_W), Align: 16}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &h)
	binary.Write(&b, binary.LittleEndian, &load)
	binary.Write(&b, binary.LittleEndian, &stack)
	b.Write(code)
	return b.Bytes()
}

// initBinary is the init program in a sealed memfd (close-on-exec): the launcher execs
// it with execveat(fd, "", AT_EMPTY_PATH), which needs no path inside the instance.
type initBinary struct {
	fd int
}

func newInitBinary() (*initBinary, error) {
	prog, err := pid1ELF()
	if err != nil {
		return nil, err
	}
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("constellation-init", flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.3: no MFD_EXEC, memfds are executable
		fd, err = unix.MemfdCreate("constellation-init", flags)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: init memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "constellation-init")
	if _, err := f.Write(prog); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: init memfd: %w", err)
	}
	// Nobody (an instance through /proc/1/exe included) can change it.
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: seal init memfd: %w", err)
	}
	if err := unix.Fchmod(fd, 0o555); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: init memfd: %w", err)
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("sandbox: init memfd: %w", err)
	}
	return &initBinary{fd: nfd}, nil
}

func (b *initBinary) close() {
	if b != nil && b.fd >= 0 {
		unix.Close(b.fd)
		b.fd = -1
	}
}

// pid1Argv is the init's argv for a program.
func pid1Argv(path string, argv []string) []string {
	return append([]string{pid1Name, path}, argv...)
}

// parseStatusRecords reads what the init reported: the program's wait status (known)
// and an exec failure (errno != 0).
func parseStatusRecords(b []byte) (ws unix.WaitStatus, known bool, execErr unix.Errno) {
	for ; len(b) >= 8; b = b[8:] {
		kind, val := binary.NativeEndian.Uint32(b[:4]), binary.NativeEndian.Uint32(b[4:8])
		switch kind {
		case pid1RecExit:
			ws, known = unix.WaitStatus(val), true
		case pid1RecExecFail:
			execErr = unix.Errno(val)
		}
	}
	return ws, known, execErr
}

// pid1StartTimeout bounds the wait for the program's exec (a large binary on a slow
// disk).
const pid1StartTimeout = 30 * time.Second

// awaitExec reads the init's first report: nil once the program is exec'd, the exec
// error otherwise.
func awaitExec(status *os.File) error {
	status.SetReadDeadline(time.Now().Add(pid1StartTimeout))
	defer status.SetReadDeadline(time.Time{})
	var rec [8]byte
	if _, err := io.ReadFull(status, rec[:]); err != nil {
		return fmt.Errorf("no start report from the instance init: %w", err)
	}
	switch kind, val := binary.NativeEndian.Uint32(rec[:4]), binary.NativeEndian.Uint32(rec[4:]); kind {
	case pid1RecStarted:
		return nil
	case pid1RecExecFail:
		return fmt.Errorf("exec: %w", unix.Errno(val))
	default:
		return fmt.Errorf("unexpected report %d from the instance init", kind)
	}
}

// initFiles are one run's pipes: the init's files (pid1NumFDs, in fd order) and the
// runtime's ends.
type initFiles struct {
	child [pid1NumFDs]*os.File
	pipes runPipes
	own   []*os.File // closed by closeChild (the runtime keeps pipes)
}

// newInitFiles makes the status pipe and, unless stdout is given (Bench), the stdout and
// stderr pipes. stderr != nil also bypasses the stderr pipe.
func newInitFiles(stdout, stderr *os.File) (*initFiles, error) {
	f := &initFiles{}
	fail := func(err error) (*initFiles, error) {
		f.closeChild()
		f.pipes.close()
		return nil, fmt.Errorf("sandbox: pipes: %w", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	f.own = append(f.own, devnull)
	f.child[0] = devnull
	sr, sw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	f.own = append(f.own, sw)
	f.pipes.status = sr
	f.child[pid1StatusFD] = sw
	if f.child[pid1HeldFDs], err = f.dupForChild(sr); err != nil {
		return fail(err)
	}
	for i, given := range []*os.File{stdout, stderr} {
		if given != nil {
			f.child[1+i], f.child[pid1HeldFDs+1+i] = given, devnull
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		f.own = append(f.own, w)
		// A larger buffer lets a program write on while the runtime restarts (up to
		// /proc/sys/fs/pipe-max-size; the kernel keeps the default otherwise). Pages are
		// charged to the writer, the instance.
		if rc, err := r.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, logPipeBytes) })
		}
		f.child[1+i] = w
		if i == 0 {
			f.pipes.stdout = r
		} else {
			f.pipes.stderr = r
		}
		if f.child[pid1HeldFDs+1+i], err = f.dupForChild(r); err != nil {
			return fail(err)
		}
	}
	return f, nil
}

// dupForChild returns a second *os.File for a pipe end the runtime keeps: the launcher
// takes fds with Fd(), which makes the file description blocking (right for the
// program's stdio); closeChild makes the runtime's ends non-blocking again, and the
// runtime's own *os.File never left the netpoller.
func (f *initFiles) dupForChild(keep *os.File) (*os.File, error) {
	rc, err := keep.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		return nil, derr
	}
	d := os.NewFile(uintptr(nfd), keep.Name())
	f.own = append(f.own, d)
	return d, nil
}

// closeChild closes the runtime's copies of the init's files (after the launch) and
// makes the runtime's pipe ends non-blocking again.
func (f *initFiles) closeChild() {
	for _, c := range f.own {
		c.Close()
	}
	f.own = nil
	for _, p := range []*os.File{f.pipes.status, f.pipes.stdout, f.pipes.stderr} {
		if p == nil {
			continue
		}
		if rc, err := p.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.SetNonblock(int(fd), true) })
		}
	}
}

// logPipeBytes is the pipe buffer asked for stdout and stderr.
const logPipeBytes = 1 << 20

// adoptInitFiles takes the runtime's ends of the pipes back from a running init.
func adoptInitFiles(pidfd int) (runPipes, error) {
	var p runPipes
	for i, dst := range []**os.File{&p.status, &p.stdout, &p.stderr} {
		fd, err := unix.PidfdGetfd(pidfd, pid1HeldFDs+i, 0)
		if err != nil {
			p.close()
			return runPipes{}, fmt.Errorf("sandbox: take pipe %d back from the init: %w", pid1HeldFDs+i, err)
		}
		unix.CloseOnExec(fd)
		unix.SetNonblock(fd, true)
		*dst = os.NewFile(uintptr(fd), "pipe")
	}
	return p, nil
}

// programStatus reads the init's reports once it has exited; without a report (the init
// was killed, e.g. by the cgroup kill after the grace) the init's own status stands.
func programStatus(status *os.File, initSt exitStatus) exitStatus {
	status.SetReadDeadline(time.Now().Add(2 * time.Second))
	var buf [64]byte
	var b []byte
	for len(b) < len(buf) {
		n, err := status.Read(buf[len(b):])
		b = buf[:len(b)+n]
		if err != nil {
			break
		}
	}
	ws, known, execErr := parseStatusRecords(b)
	switch {
	case execErr != 0:
		return exitStatus{known: true, code: 127, execErr: execErr}
	case known:
		return waitExit(ws)
	}
	return initSt
}

// initFDs lists the Go init's files: the init's files, then its configuration and
// error pipes.
func initFDs(files []*os.File, cfg, errW *os.File, netNS int) []uintptr {
	fds := make([]uintptr, 0, len(files)+3)
	for _, f := range files {
		fds = append(fds, f.Fd())
	}
	fds = append(fds, cfg.Fd(), errW.Fd())
	if netNS >= 0 {
		fds = append(fds, uintptr(netNS)) // goInitNetFD
	}
	return fds
}

// procState is the state letter of /proc/PID/stat ('Z': zombie), 0 if gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}
