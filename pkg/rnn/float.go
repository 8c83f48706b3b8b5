package rnn

import "unsafe"

// Float is the element type of a model: float32 for training, float64 for
// gradient checks and reference computations.
type Float interface{ ~float32 | ~float64 }

// is32 reports whether F is a 4-byte float.
func is32[F Float]() bool {
	var z F
	return unsafe.Sizeof(z) == 4
}

// as32 reinterprets a []F as []float32; F must be 4 bytes wide.
func as32[F Float](s []F) []float32 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&s[0])), len(s))
}

// as64 reinterprets a []F as []float64; F must be 8 bytes wide.
func as64[F Float](s []F) []float64 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(&s[0])), len(s))
}

// grow returns s resized to n elements, reusing its storage when it can. The
// contents are not preserved or cleared.
func grow[F any](s []F, n int) []F {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]F, n)
}
