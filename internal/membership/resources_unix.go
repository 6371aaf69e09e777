//go:build unix

package membership

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func memAndDiskMB(dataDir string) (ramMB, diskMB uint64) {
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				ramMB = kb / 1024
			}
		}
		f.Close()
	}
	var st unix.Statfs_t
	if unix.Statfs(dataDir, &st) == nil {
		diskMB = uint64(st.Blocks) * uint64(st.Bsize) >> 20
	}
	return ramMB, diskMB
}
