package safetensors

import (
	"errors"
	"fmt"
)

// Errors of this package, for errors.Is.
var (
	// ErrFormat is matched by every *FormatError: the bytes (or, for
	// Write, the tensors) break the format's rules.
	ErrFormat = errors.New("safetensors: invalid format")
	// ErrDType reports a conversion the tensor's dtype does not support,
	// such as Float32s on an integer tensor.
	ErrDType = errors.New("safetensors: unsupported dtype")
)

// FormatError describes why a file or tensor breaks the format's rules.
type FormatError struct {
	// Tensor is the tensor name when the problem is with one tensor.
	Tensor string
	// Field is the part at fault. For one tensor: "name", "info" (its
	// JSON description as a whole), "dtype", "shape", "data_offsets" or
	// "data". For the file: "header" (length, encoding, JSON), "metadata"
	// or "buffer" (the data after the header).
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error returns "safetensors: tensor \"name\": msg" or "safetensors: field: msg".
func (e *FormatError) Error() string {
	switch e.Field {
	case "header", "metadata", "buffer":
		return fmt.Sprintf("safetensors: %s: %s", e.Field, e.Msg)
	}
	if e.Tensor == "" { // a Tensor checked on its own, outside a File
		return "safetensors: tensor: " + e.Msg
	}
	return fmt.Sprintf("safetensors: tensor %q: %s", e.Tensor, e.Msg)
}

// Unwrap makes errors.Is(err, ErrFormat) true.
func (e *FormatError) Unwrap() error { return ErrFormat }

func headerErr(format string, args ...any) error {
	return &FormatError{Field: "header", Msg: fmt.Sprintf(format, args...)}
}

func tensorErr(name, field, format string, args ...any) error {
	return &FormatError{Tensor: name, Field: field, Msg: fmt.Sprintf(format, args...)}
}
