//go:build !unix

package mesh

import (
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

func isExecutableFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
