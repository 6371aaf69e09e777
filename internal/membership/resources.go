package membership

import (
	"runtime"
)

// Resources are a node's capacity as advertised in its membership record.
type Resources struct {
	CPUCores int
	RAMMB    uint64
	DiskMB   uint64 // of the filesystem holding the data dir
}

// LocalResources measures this machine: cores, RAM, and the disk holding dataDir.
func LocalResources(dataDir string) Resources {
	r := Resources{CPUCores: runtime.NumCPU()}
	r.RAMMB, r.DiskMB = memAndDiskMB(dataDir)
	return r
}
