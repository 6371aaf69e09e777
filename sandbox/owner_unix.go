//go:build unix

package sandbox

import (
	"os"
	"syscall"
)

func statOwner(fi os.FileInfo) ([2]int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]int{int(st.Uid), int(st.Gid)}, true
	}
	return [2]int{}, false
}
