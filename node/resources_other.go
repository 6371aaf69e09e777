//go:build !unix

package node

func memAndDiskMB(string) (uint64, uint64) { return 0, 0 }

func syscallUmask(m int) int { return m }
