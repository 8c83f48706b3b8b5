package checkpoint

import (
	"fmt"
	"os"
	"time"
)

// Options configure a Store. A zero field takes its default.
type Options struct {
	// Keep is the number of most recent checkpoints kept, >= 1; the best
	// is kept besides them. Default 3: the newest, and two to fall back
	// to if it is damaged.
	Keep int
	// Timeout is how long Open waits for the file lock another Store
	// holds before failing with ErrLocked. Default 1s: long enough for a
	// previous coordinator's Close, short enough to report a second one
	// still running.
	Timeout time.Duration
	// NoSync skips fsync after each commit. Only for tests: a crash may
	// then lose or corrupt recent checkpoints.
	NoSync bool
	// BestMetric names the metric whose lowest value makes a checkpoint
	// the best. Default "val_loss".
	BestMetric string
	// Mode is the file's permission bits when Open creates it.
	// Default 0o600: checkpoints are the run owner's.
	Mode os.FileMode
	// ReadOnly opens an existing store for reading only, with a shared
	// lock: it works on a read-only file system and beside other
	// readers, but not while a writer (a running coordinator) holds the
	// store. Save fails with ErrReadOnly.
	ReadOnly bool
	// BackupEvery is how many successful saves pass from one backup of
	// the store (see Store.Backup) to the next. Default 1, a backup after
	// every save: the backup then holds the newest checkpoint too, so a
	// damaged or deleted store file loses no step, and saves come once
	// per validation, rarely enough that copying the file costs little
	// next to training. Raise it for stores of large models.
	BackupEvery int
	// NoBackup turns the backups Save takes off. Open still falls back
	// to a backup that exists.
	NoBackup bool
}

// DefaultOptions returns the options a zero Options stands for.
func DefaultOptions() Options {
	return Options{Keep: 3, Timeout: time.Second, BestMetric: "val_loss", Mode: 0o600, BackupEvery: 1}
}

// Validate rejects negative fields, wrapping ErrInvalid.
func (o Options) Validate() error {
	if o.Keep < 0 {
		return fmt.Errorf("%w: Keep %d must be >= 0 (0 for the default)", ErrInvalid, o.Keep)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("%w: Timeout %v must be >= 0 (0 for the default)", ErrInvalid, o.Timeout)
	}
	if o.BackupEvery < 0 {
		return fmt.Errorf("%w: BackupEvery %d must be >= 0 (0 for the default; NoBackup turns backups off)", ErrInvalid, o.BackupEvery)
	}
	return nil
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Keep == 0 {
		o.Keep = d.Keep
	}
	if o.Timeout == 0 {
		o.Timeout = d.Timeout
	}
	if o.BestMetric == "" {
		o.BestMetric = d.BestMetric
	}
	if o.Mode == 0 {
		o.Mode = d.Mode
	}
	if o.BackupEvery == 0 {
		o.BackupEvery = d.BackupEvery
	}
	return o
}
