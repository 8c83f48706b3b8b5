//go:build linux

package shard

import (
	"os"
	"syscall"
)

// mapFile maps f read-only. The corpus is then paged in on demand by the
// kernel: opening costs nothing, and a file larger than memory works.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil, syscall.EINVAL
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
