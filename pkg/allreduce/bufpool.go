package allreduce

import (
	"math/bits"
	"sync"
)

// dirtyPool is the gRPC buffer pool of ring transports. gRPC's default
// pool zeroes every buffer it hands out, which costs a memory pass per
// received byte; the ring's buffers are always overwritten by the socket
// read that fills them, and never leave the process, so they are reused
// without clearing. Sizes are powers of two from 256 B to 4 MiB.
type dirtyPool struct {
	classes [15]sync.Pool // class i holds buffers of capacity 256<<i
}

const dirtyMinShift = 8

func dirtyClass(n int) int {
	if n <= 1<<dirtyMinShift {
		return 0
	}
	return bits.Len(uint(n-1)) - dirtyMinShift
}

// Get returns a buffer of length n.
func (p *dirtyPool) Get(n int) *[]byte {
	c := dirtyClass(n)
	if c >= len(p.classes) {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+dirtyMinShift))
	return &b
}

// Put recycles a buffer obtained from Get.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<dirtyMinShift || c&(c-1) != 0 {
		return
	}
	if k := dirtyClass(c); k < len(p.classes) {
		p.classes[k].Put(b)
	}
}
