//go:build !amd64

package allreduce

import "unsafe"

// addWire adds the float32s whose little-endian bytes are src to dst
// (len(src) >= 4*len(dst)); only called on little-endian machines.
func addWire(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	if len(dst) > 0 && uintptr(unsafe.Pointer(&src[0]))%4 == 0 {
		addFloatsGeneric(dst, unsafe.Slice((*float32)(unsafe.Pointer(&src[0])), len(dst)))
		return
	}
	addWireScalar(dst, src)
}
