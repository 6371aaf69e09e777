package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xfsDisk is the loop-mounted XFS data filesystem with project quotas.
type xfsDisk struct {
	img, mnt string
	dev      string // block device (for quotactl without quotactl_fd)
	sizeMB   int64
}

// setupXFS mounts (creating if needed) the data image; an existing mount is reused so
// a new runtime over the same state dir keeps running instances' data.
func setupXFS(stateDir string, sizeMB int64) (*xfsDisk, error) {
	d := &xfsDisk{img: filepath.Join(stateDir, "data.img"), mnt: filepath.Join(stateDir, "data"), sizeMB: sizeMB}
	if err := os.MkdirAll(d.mnt, 0o711); err != nil {
		return nil, err
	}
	if dev, ok := mountSource(d.mnt); ok {
		d.dev = dev
		var st unix.Statfs_t
		if unix.Statfs(d.mnt, &st) == nil {
			d.sizeMB = int64(st.Blocks) * int64(st.Bsize) >> 20
		}
		return d, nil
	}
	created := false
	if _, err := os.Stat(d.img); errors.Is(err, fs.ErrNotExist) {
		created = true
		mkfs, err := exec.LookPath("mkfs.xfs")
		if err != nil {
			return nil, fmt.Errorf("sandbox: mkfs.xfs: %w", err)
		}
		f, err := os.OpenFile(d.img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		err = f.Truncate(sizeMB << 20)
		f.Close()
		if err != nil {
			os.Remove(d.img)
			return nil, err
		}
		if out, err := exec.Command(mkfs, "-q", "-f", d.img).CombinedOutput(); err != nil {
			os.Remove(d.img)
			return nil, fmt.Errorf("sandbox: mkfs.xfs: %v: %s", err, out)
		}
	}
	dev, lf, err := loopAttach(d.img)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	if err := unix.Mount(dev, d.mnt, "xfs", unix.MS_NOSUID|unix.MS_NODEV, "prjquota"); err != nil {
		if created {
			os.Remove(d.img)
		}
		return nil, fmt.Errorf("sandbox: mount xfs data image: %w", err)
	}
	d.dev = dev
	// Snapshots and instances directories; the mount root stays private.
	for _, sub := range []string{"instances", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(d.mnt, sub), 0o711); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// unmount detaches the filesystem (the loop device auto-clears).
func (d *xfsDisk) unmount() error {
	if err := unix.Unmount(d.mnt, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sandbox: unmount data: %w", err)
	}
	return nil
}

// prepare creates dir as project projID with a hard limit of limitMB (0 = none).
func (d *xfsDisk) prepare(dir string, projID uint32, limitMB int64) error {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return err
	}
	if err := setProject(dir, projID); err != nil {
		os.Remove(dir)
		return err
	}
	if err := d.setLimit(projID, limitMB); err != nil {
		os.Remove(dir)
		return err
	}
	return nil
}

// fsDiskQuota is struct fs_disk_quota (linux/dqblk_xfs.h).
type fsDiskQuota struct {
	Version    int8
	Flags      int8
	FieldMask  uint16
	ID         uint32
	BlkHard    uint64
	BlkSoft    uint64
	InoHard    uint64
	InoSoft    uint64
	BCount     uint64
	ICount     uint64
	ITimer     int32
	BTimer     int32
	IWarns     uint16
	BWarns     uint16
	ITimerHi   int8
	BTimerHi   int8
	RtbTimerHi int8
	Pad2       int8
	RtbHard    uint64
	RtbSoft    uint64
	RtbCount   uint64
	RtbTimer   int32
	RtbWarns   uint16
	Pad3       int16
	Pad4       [8]byte
}

const (
	qXGetQuota  = 'X'<<8 + 3
	qXSetQLim   = 'X'<<8 + 4
	prjQuota    = 2
	fsProjQuota = 2
	fsDqBSoft   = 1 << 2
	fsDqBHard   = 1 << 3
	xflagProjIn = 0x200 // FS_XFLAG_PROJINHERIT
)

func (d *xfsDisk) quotactl(cmd int, id uint32, q *fsDiskQuota) error {
	qcmd := uintptr(cmd<<8 | prjQuota)
	fd, err := unix.Open(d.mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, _, e := unix.Syscall6(unix.SYS_QUOTACTL_FD, uintptr(fd), qcmd, uintptr(id), uintptr(unsafe.Pointer(q)), 0, 0)
		unix.Close(fd)
		if e == 0 {
			return nil
		}
		if e != unix.ENOSYS {
			return e
		}
	}
	dev, err := unix.BytePtrFromString(d.dev)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_QUOTACTL, qcmd, uintptr(unsafe.Pointer(dev)), uintptr(id), uintptr(unsafe.Pointer(q)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// setLimit sets the hard block limit of a project (0 = unlimited).
func (d *xfsDisk) setLimit(projID uint32, limitMB int64) error {
	q := fsDiskQuota{Version: 1, Flags: fsProjQuota, FieldMask: fsDqBHard | fsDqBSoft, ID: projID}
	q.BlkHard = uint64(limitMB) << 20 / 512
	q.BlkSoft = q.BlkHard
	if err := d.quotactl(qXSetQLim, projID, &q); err != nil {
		return fmt.Errorf("sandbox: set project quota: %w", err)
	}
	return nil
}

// usage is the bytes used by a project.
func (d *xfsDisk) usage(projID uint32) int64 {
	var q fsDiskQuota
	if d.quotactl(qXGetQuota, projID, &q) != nil {
		return 0
	}
	return int64(q.BCount) * 512
}

// fsxattr is struct fsxattr (linux/fs.h).
type fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	Pad        [8]byte
}

func ioctlNum(write bool, nr uintptr) uintptr {
	size := unsafe.Sizeof(fsxattr{})
	var dir, shift uintptr = 2, 30 // _IOC_READ on most architectures
	switch runtime.GOARCH {
	case "ppc64", "ppc64le", "mips", "mipsle", "mips64", "mips64le", "sparc64":
		shift = 29
		if write {
			dir = 4
		}
	default:
		if write {
			dir = 1
		}
	}
	return dir<<shift | size<<16 | 'X'<<8 | nr
}

// setProject marks dir with a project ID inherited by everything created below it.
func setProject(dir string, projID uint32) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var a fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlNum(false, 31), uintptr(unsafe.Pointer(&a))); e != 0 {
		return fmt.Errorf("sandbox: FS_IOC_FSGETXATTR: %w", e)
	}
	a.Projid = projID
	a.Xflags |= xflagProjIn
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlNum(true, 32), uintptr(unsafe.Pointer(&a))); e != 0 {
		return fmt.Errorf("sandbox: FS_IOC_FSSETXATTR: %w", e)
	}
	return nil
}

// loopAttach binds img to a free loop device with autoclear (freed on last close, so
// the caller keeps the returned file open until the device is mounted).
func loopAttach(img string) (string, *os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox: loop-control: %w", err)
	}
	defer ctl.Close()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	for try := 0; try < 16; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("sandbox: LOOP_CTL_GET_FREE: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		lf, err := os.OpenFile(dev, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			if err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil {
				return "", nil, err
			}
			lf, err = os.OpenFile(dev, os.O_RDWR, 0)
		}
		if err != nil {
			return "", nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], img)
		err = unix.IoctlLoopConfigure(int(lf.Fd()), &cfg)
		if err == nil {
			return dev, lf, nil
		}
		lf.Close()
		if !errors.Is(err, unix.EBUSY) {
			return "", nil, fmt.Errorf("sandbox: LOOP_CONFIGURE: %w", err)
		}
	}
	return "", nil, fmt.Errorf("sandbox: no free loop device")
}

// mountSource returns the source of the mount at dir, if dir is a mount point.
func mountSource(dir string) (string, bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	src, found := "", false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || unescapeMount(fields[4]) != dir {
			continue
		}
		for i, x := range fields {
			if x == "-" && i+2 < len(fields) {
				src, found = fields[i+2], true // last mount on dir wins
			}
		}
	}
	return src, found
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// duBytes sums the allocated size of the tree (the poll fallback and Stats without
// quotas).
func duBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			} else {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// ext4Disk manages per-instance ext4 images.
type ext4Disk struct {
	templates string // <state>/templates
	mu        sync.Mutex
}

func newExt4Disk(stateDir string) (*ext4Disk, error) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		return nil, fmt.Errorf("sandbox: mkfs.ext4: %w", err)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return nil, fmt.Errorf("sandbox: loop devices: %w", err)
	}
	d := &ext4Disk{templates: filepath.Join(stateDir, "templates")}
	if err := os.MkdirAll(d.templates, 0o700); err != nil {
		return nil, err
	}
	return d, nil
}

// template returns the path of a formatted image of mb MiB, making it once.
func (d *ext4Disk) template(mb int64) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := filepath.Join(d.templates, fmt.Sprintf("ext4-%d.img", mb))
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	tmp := p + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	err = f.Truncate(mb << 20)
	f.Close()
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", tmp).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("sandbox: mkfs.ext4: %v: %s", err, out)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	return p, nil
}

// prepare creates the image and mounts it at dir.
func (d *ext4Disk) prepare(img, dir string, mb int64) error {
	tmpl, err := d.template(mb)
	if err != nil {
		return err
	}
	if err := sparseCopy(tmpl, img); err != nil {
		os.Remove(img)
		return err
	}
	if err := d.mount(img, dir); err != nil {
		os.Remove(img)
		return err
	}
	return nil
}

// mount attaches img at dir unless already mounted.
func (d *ext4Disk) mount(img, dir string) error {
	if _, ok := mountSource(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	dev, lf, err := loopAttach(img)
	if err != nil {
		return err
	}
	defer lf.Close() // autoclear: the mount holds the device from here on
	if err := unix.Mount(dev, dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV, "noinit_itable"); err != nil {
		os.Remove(dir)
		return fmt.Errorf("sandbox: mount data image: %w", err)
	}
	os.Remove(filepath.Join(dir, "lost+found"))
	return nil
}

// unmount detaches dir (its loop device auto-clears).
func unmountData(dir string) error {
	if _, ok := mountSource(dir); !ok {
		return nil
	}
	var err error
	for i := 0; i < 50; i++ {
		if err = unix.Unmount(dir, 0); err == nil || !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(10 * time.Millisecond) // exiting instance still holds its overlay
	}
	if err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	return nil
}

// fsUsed is the space used on the filesystem mounted at dir.
func fsUsed(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize)
}

// sparseCopy copies src to a new file dst, keeping holes.
func sparseCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	size := fi.Size()
	var off int64
	for off < size {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // only holes remain
			}
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		for data < hole {
			o1, o2 := data, data
			n, err := unix.CopyFileRange(int(in.Fd()), &o1, int(out.Fd()), &o2, int(hole-data), 0)
			if err != nil {
				return fmt.Errorf("sandbox: copy image: %w", err)
			}
			if n == 0 {
				break
			}
			data += int64(n)
		}
		off = hole
	}
	return out.Close()
}
