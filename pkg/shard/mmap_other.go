//go:build !linux

package shard

import (
	"errors"
	"os"
)

// mapFile is not available here; callers fall back to reading through the
// file as an io.ReaderAt.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	return nil, nil, errors.ErrUnsupported
}
