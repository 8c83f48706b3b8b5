package checkpoint

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
)

// guard runs fn, which uses bbolt on file, and returns a panic of bbolt
// as a *FileDamagedError instead of letting it reach the caller. bbolt
// maps the file and reads it through that memory, so a file truncated or
// overwritten under it faults (SIGBUS, SIGSEGV) rather than failing a
// read; guard makes such a fault a panic of this goroutine only, with
// debug.SetPanicOnFault, and restores the goroutine's setting after.
func guard(file string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = panicError(file, r)
		}
	}()
	return fn()
}

// panicError describes a recovered panic r.
func panicError(file string, r any) *FileDamagedError {
	fe := &FileDamagedError{Path: file, panicked: true}
	var fault interface{ Addr() uintptr }
	re, isRuntime := r.(runtime.Error)
	switch {
	case isRuntime && errors.As(re, &fault):
		fe.Addr = fault.Addr()
		fe.Err = fmt.Errorf("memory fault reading the mapped file (truncated or changed under the store?): %w", re)
	case isRuntime:
		fe.Err = fmt.Errorf("bbolt failed on the file's contents: %w", re)
	default:
		if e, ok := r.(error); ok {
			fe.Err = fmt.Errorf("bbolt panicked: %w", e)
		} else {
			fe.Err = fmt.Errorf("bbolt panicked: %v", r)
		}
	}
	return fe
}

// isFault reports whether err comes from a recovered panic or fault.
func isFault(err error) bool {
	var fe *FileDamagedError
	return errors.As(err, &fe) && fe.panicked
}
