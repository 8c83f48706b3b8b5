package allreduce

import "unsafe"

// addWire adds the float32s whose little-endian bytes are src (any
// alignment; len(src) >= 4*len(dst)) to dst. Each element is one IEEE
// float32 addition, exactly as the scalar loops do, four at a time with
// SSE (part of every amd64; unaligned loads are fine there).
func addWire(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	n := len(dst) &^ 15
	if n > 0 {
		addFloatsSSE(&dst[0], unsafe.Pointer(&src[0]), n)
	}
	if n < len(dst) {
		addWireScalar(dst[n:], src[4*n:])
	}
}

// addFloatsSSE adds n float32s (a multiple of 16) at src to dst. src is
// an unsafe.Pointer, not a *float32: it need not be aligned.
//
//go:noescape
func addFloatsSSE(dst *float32, src unsafe.Pointer, n int)
