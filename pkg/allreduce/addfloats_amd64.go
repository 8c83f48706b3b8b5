package allreduce

// addFloats adds src to dst element-wise (len(src) >= len(dst)). Each
// element is one IEEE float32 addition, exactly as addFloatsGeneric does,
// four at a time with SSE (part of every amd64).
func addFloats(dst, src []float32) {
	src = src[:len(dst)]
	n := len(dst) &^ 15
	if n > 0 {
		addFloatsSSE(&dst[0], &src[0], n)
	}
	if n < len(dst) {
		addFloatsGeneric(dst[n:], src[n:])
	}
}

// addFloatsSSE adds n floats (a multiple of 16) at src to dst.
//
//go:noescape
func addFloatsSSE(dst, src *float32, n int)
