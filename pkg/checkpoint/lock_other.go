//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkpoint

import (
	"os"
	"time"
)

// lockFile does nothing here: bbolt locks the file when it opens it, so
// Open's check of the file runs before the lock on these systems.
func lockFile(*os.File, bool, time.Duration) error { return nil }

// unlockFile does nothing here, like lockFile.
func unlockFile(*os.File) error { return nil }
