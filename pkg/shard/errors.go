package shard

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns for bad input or a bad
// configuration wraps one of these, so callers can test with errors.Is while
// the message carries the file, line and field.
var (
	// ErrConfig reports an invalid configuration (a Validate failure).
	ErrConfig = errors.New("shard: invalid config")
	// ErrEmpty reports an input with no usable data.
	ErrEmpty = errors.New("shard: empty input")
	// ErrSyntax reports a malformed line, record or field.
	ErrSyntax = errors.New("shard: malformed input")
	// ErrInvalidUTF8 reports text that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("shard: invalid UTF-8")
	// ErrTooLong reports a sequence over the configured maximum length.
	ErrTooLong = errors.New("shard: sequence too long")
	// ErrLabelRange reports a class label or token id out of range.
	ErrLabelRange = errors.New("shard: label out of range")
	// ErrBadMagic reports a file whose magic number is not the expected one.
	ErrBadMagic = errors.New("shard: bad magic number")
	// ErrSize reports a file whose size disagrees with its header.
	ErrSize = errors.New("shard: size mismatch")
	// ErrCorrupt reports a serialised cursor, vocabulary or normaliser that
	// fails its checksum or structural checks.
	ErrCorrupt = errors.New("shard: corrupt data")
	// ErrCursorMismatch reports a cursor saved for a different dataset,
	// batch size, stream layout or seed.
	ErrCursorMismatch = errors.New("shard: cursor does not match this source")
)

// InputError locates a problem in an input file. Its message reads
// "name:line: msg" (or "name: msg" when the line is unknown), e.g.
//
//	data.jsonl:17: "target": expected integer, got string
//
// and it unwraps to one of the sentinel errors above.
type InputError struct {
	File string // file name as given by the caller
	Line int    // 1-based line, 0 when not applicable (binary formats)
	Msg  string // what is wrong, with the field or byte offset
	Err  error  // sentinel, for errors.Is
}

// Error implements error.
func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap returns the sentinel error.
func (e *InputError) Unwrap() error { return e.Err }

// inputErr builds an *InputError with a formatted message.
func inputErr(file string, line int, sentinel error, format string, args ...any) error {
	return &InputError{File: file, Line: line, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// configErr wraps ErrConfig with a formatted message.
func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
}
