//go:build !unix

package httpapi

func umask(m int) int { return m }
