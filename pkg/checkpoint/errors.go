package checkpoint

import (
	"errors"
	"fmt"
)

// Errors of this package, for errors.Is. Errors of a Store also name its
// file and, where one is concerned, the step.
var (
	// ErrNoCheckpoint reports a store without a checkpoint to return:
	// it is empty, or (from Best) no checkpoint has the best metric. It is
	// not returned when checkpoints exist but all are damaged.
	ErrNoCheckpoint = errors.New("checkpoint: no checkpoint")
	// ErrDamaged is matched by every *DamagedError, a stored checkpoint
	// whose checksum does not match or whose record does not decode, and
	// by every *FileDamagedError, a store file bbolt cannot safely use.
	ErrDamaged = errors.New("checkpoint: damaged")
	// ErrFormat reports bytes that are not a valid checkpoint record, or
	// a store file of an unknown format version.
	ErrFormat = errors.New("checkpoint: invalid format")
	// ErrInvalid reports a checkpoint or Options that cannot be used:
	// a nil checkpoint, a metric that is not finite, a negative option.
	ErrInvalid = errors.New("checkpoint: invalid argument")
	// ErrLocked reports that Open could not lock the file within
	// Options.Timeout because another Store holds it.
	ErrLocked = errors.New("checkpoint: store is locked by another process")
	// ErrClosed reports a call on a closed Store.
	ErrClosed = errors.New("checkpoint: store is closed")
	// ErrReadOnly reports a Save on a store opened ReadOnly.
	ErrReadOnly = errors.New("checkpoint: store is open read-only")
	// ErrConfigMismatch is matched by every *ConfigMismatchError.
	ErrConfigMismatch = errors.New("checkpoint: config mismatch")
	// ErrFileGone reports that a Store's path no longer names the file
	// the Store has open: it was deleted, renamed away or replaced. A
	// save into that file would be lost, so Save fails with it.
	ErrFileGone = errors.New("checkpoint: store file is gone from its path")
	// ErrNoBackup reports a backup that could not be used or taken: the
	// backup file is missing or damaged, or the store has no good
	// checkpoint to back up.
	ErrNoBackup = errors.New("checkpoint: no usable backup")
)

// DamagedError describes a stored checkpoint that failed verification.
type DamagedError struct {
	Path string // the store's file
	Step uint64 // the checkpoint's step (its key)
	Err  error  // what is wrong; wraps ErrFormat when the record does not decode
}

// Error returns "checkpoint: path: step N: damaged: reason".
func (e *DamagedError) Error() string {
	return fmt.Sprintf("checkpoint: %s: step %d: damaged: %v", e.Path, e.Step, e.Err)
}

// Unwrap makes errors.Is match ErrDamaged and the cause.
func (e *DamagedError) Unwrap() []error { return []error{ErrDamaged, e.Err} }

// FileDamagedError describes a store file that bbolt cannot safely use:
// Open's check of its pages, done before bbolt maps it, failed, or bbolt
// panicked or faulted (SIGBUS, SIGSEGV) reading the mapped file, which a
// file truncated or overwritten under the Store causes.
type FileDamagedError struct {
	Path string  // the file
	Addr uintptr // the faulting address of a memory fault; 0 otherwise
	Err  error   // what is wrong

	panicked bool // bbolt panicked or faulted: its state is suspect
}

// Error returns "checkpoint: path: damaged store file: reason".
func (e *FileDamagedError) Error() string {
	if e.Addr != 0 {
		return fmt.Sprintf("checkpoint: %s: damaged store file: %v (fault at %#x)", e.Path, e.Err, e.Addr)
	}
	return fmt.Sprintf("checkpoint: %s: damaged store file: %v", e.Path, e.Err)
}

// Unwrap makes errors.Is match ErrDamaged and the cause.
func (e *FileDamagedError) Unwrap() []error { return []error{ErrDamaged, e.Err} }

// ConfigMismatchError reports a checkpoint written under another
// configuration than the one the caller runs.
type ConfigMismatchError struct {
	Step    uint64 // the checkpoint's step
	Stored  string // Checkpoint.ConfigHash
	Current string // the hash the caller expected
}

// Error names the step and both hashes.
func (e *ConfigMismatchError) Error() string {
	return fmt.Sprintf("checkpoint: step %d was written with config %s, the current config is %s",
		e.Step, e.Stored, e.Current)
}

// Unwrap makes errors.Is(err, ErrConfigMismatch) true.
func (e *ConfigMismatchError) Unwrap() error { return ErrConfigMismatch }
