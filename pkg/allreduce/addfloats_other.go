//go:build !amd64

package allreduce

// addFloats adds src to dst element-wise (len(src) >= len(dst)).
func addFloats(dst, src []float32) { addFloatsGeneric(dst, src) }
