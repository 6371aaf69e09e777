package sandbox

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// devRule allows access to character devices major:minor (minor -1: any).
type devRule struct {
	major, minor int32
	name         string
}

// allowedDevices are the only devices an instance may open: /dev/null, zero, full,
// random, urandom, tty, ptmx and its own pseudo-terminals. Everything else (block
// devices, mknod of any device) is denied by the devices cgroup.
var allowedDevices = []devRule{
	{1, 3, "null"}, {1, 5, "zero"}, {1, 7, "full"}, {1, 8, "random"}, {1, 9, "urandom"},
	{5, 0, "tty"}, {5, 2, "ptmx"}, {136, -1, "pts"},
}

// v1DeviceRules writes the deny-all-then-allow list of a v1 devices cgroup.
func v1DeviceRules(dir string) error {
	if err := writeFile(filepath.Join(dir, "devices.deny"), "a"); err != nil {
		return fmt.Errorf("sandbox: devices cgroup: %w", err)
	}
	for _, d := range allowedDevices {
		minor := "*"
		if d.minor >= 0 {
			minor = fmt.Sprint(d.minor)
		}
		if err := writeFile(filepath.Join(dir, "devices.allow"), fmt.Sprintf("c %d:%s rw", d.major, minor)); err != nil {
			return fmt.Errorf("sandbox: devices cgroup: allow %s: %w", d.name, err)
		}
	}
	return nil
}

// eBPF encoding (include/uapi/linux/bpf.h).
const (
	ebpfLdxW    = 0x61 // BPF_LDX|BPF_W|BPF_MEM
	ebpfMov64X  = 0xbf // BPF_ALU64|BPF_MOV|BPF_X
	ebpfMov64K  = 0xb7 // BPF_ALU64|BPF_MOV|BPF_K
	ebpfAnd32K  = 0x54 // BPF_ALU|BPF_AND|BPF_K
	ebpfRsh32K  = 0x74 // BPF_ALU|BPF_RSH|BPF_K
	ebpfJneK    = 0x55 // BPF_JMP|BPF_JNE|BPF_K
	ebpfExit    = 0x95 // BPF_JMP|BPF_EXIT
	devcgChar   = 2    // BPF_DEVCG_DEV_CHAR
	devcgAccRW  = 2 | 4
	progTypeDev = 15 // BPF_PROG_TYPE_CGROUP_DEVICE
	attachDev   = 6  // BPF_CGROUP_DEVICE
	bpfFMulti   = 2  // BPF_F_ALLOW_MULTI
)

type ebpfInsn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

func encodeEBPF(prog []ebpfInsn) []byte {
	b := make([]byte, 8*len(prog))
	for i, in := range prog {
		b[8*i] = in.code
		b[8*i+1] = in.dst | in.src<<4
		binary.NativeEndian.PutUint16(b[8*i+2:], uint16(in.off))
		binary.NativeEndian.PutUint32(b[8*i+4:], uint32(in.imm))
	}
	return b
}

// deviceProgram is the BPF_PROG_TYPE_CGROUP_DEVICE program for rules: it returns 1
// (allow) when the access (read/write, no mknod) is to an allowed character device, 0
// otherwise. ctx is struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}.
func deviceProgram(rules []devRule) []ebpfInsn {
	p := []ebpfInsn{
		{code: ebpfLdxW, dst: 2, src: 1, off: 0}, // r2 = access_type
		{code: ebpfMov64X, dst: 3, src: 2},       // r3 = r2
		{code: ebpfAnd32K, dst: 3, imm: 0xffff},  // r3 = device type
		{code: ebpfRsh32K, dst: 2, imm: 16},      // r2 = access
		{code: ebpfLdxW, dst: 4, src: 1, off: 4}, // r4 = major
		{code: ebpfLdxW, dst: 5, src: 1, off: 8}, // r5 = minor
	}
	for _, r := range rules {
		block := []ebpfInsn{{code: ebpfJneK, dst: 3, imm: devcgChar}, {code: ebpfJneK, dst: 4, imm: r.major}}
		if r.minor >= 0 {
			block = append(block, ebpfInsn{code: ebpfJneK, dst: 5, imm: r.minor})
		}
		block = append(block,
			ebpfInsn{code: ebpfMov64X, dst: 0, src: 2},
			ebpfInsn{code: ebpfAnd32K, dst: 0, imm: ^int32(devcgAccRW)}, // any access beyond rw (mknod)
			ebpfInsn{code: ebpfJneK, dst: 0, imm: 0},
			ebpfInsn{code: ebpfMov64K, dst: 0, imm: 1},
			ebpfInsn{code: ebpfExit},
		)
		// Every jump in the block goes to the next block.
		for i := range block {
			if block[i].code == ebpfJneK {
				block[i].off = int16(len(block) - i - 1)
			}
		}
		p = append(p, block...)
	}
	return append(p, ebpfInsn{code: ebpfMov64K, dst: 0, imm: 0}, ebpfInsn{code: ebpfExit})
}

// attachDeviceFilter loads the device program and attaches it to the v2 cgroup dir.
// The attachment holds the program; the descriptors are closed.
func attachDeviceFilter(dir string) error {
	insns := encodeEBPF(deviceProgram(allowedDevices))
	license := []byte("Apache-2.0\x00")
	logBuf := make([]byte, 4096)
	load := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
		kernVersion       uint32
		progFlags         uint32
		progName          [16]byte
		progIfindex       uint32
		expectedAttach    uint32
	}{
		progType: progTypeDev, insnCnt: uint32(len(insns) / 8),
		insns: uint64(uintptr(unsafe.Pointer(&insns[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1, logSize: uint32(len(logBuf)), logBuf: uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
		expectedAttach: attachDev,
	}
	copy(load.progName[:], "cst_devices")
	fd, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&load)), unsafe.Sizeof(load))
	if e != 0 {
		return fmt.Errorf("sandbox: devices cgroup: load BPF program: %w: %s", e, cString(logBuf))
	}
	defer unix.Close(int(fd))
	cg, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: devices cgroup: %w", err)
	}
	defer unix.Close(cg)
	attach := struct {
		targetFD, attachFD, attachType, attachFlags, replaceFD uint32
	}{uint32(cg), uint32(fd), attachDev, bpfFMulti, 0}
	if _, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_ATTACH, uintptr(unsafe.Pointer(&attach)), unsafe.Sizeof(attach)); e != 0 {
		return fmt.Errorf("sandbox: devices cgroup: attach BPF program to %s: %w", dir, e)
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
