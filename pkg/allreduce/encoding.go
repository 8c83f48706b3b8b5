package allreduce

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// Compression selects the element encoding on the wire. Reduction always
// happens in float32: each hop decodes, adds in float32 and re-encodes.
type Compression uint8

const (
	// None sends little-endian float32 (exact).
	None Compression = iota
	// FP16 sends IEEE binary16, halving bytes: about 3 significant digits,
	// magnitudes above 65504 become ±Inf, so scale gradients into range.
	FP16
	// BF16 sends bfloat16 (the top half of a float32, rounded to nearest
	// even), halving bytes: about 2 significant digits, float32 range.
	BF16
)

// String names the encoding.
func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case FP16:
		return "fp16"
	case BF16:
		return "bf16"
	}
	return "compression(?)"
}

// elemSize is the wire size of one element.
func (c Compression) elemSize() int {
	if c == None {
		return 4
	}
	return 2
}

var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// asBytes views a float32 slice as its in-memory bytes.
func asBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// encode writes src to dst (len(src)*c.elemSize() bytes) in wire format.
func encode(c Compression, dst []byte, src []float32) {
	switch c {
	case None:
		if littleEndian {
			copy(dst, asBytes(src))
			return
		}
		dst = dst[:4*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case FP16:
		dst = dst[:2*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], f32ToF16(v))
		}
	case BF16:
		dst = dst[:2*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], f32ToBF16(v))
		}
	}
}

// decode overwrites dst with the wire-format elements in src.
func decode(c Compression, dst []float32, src []byte) {
	switch c {
	case None:
		if littleEndian {
			copy(asBytes(dst), src)
			return
		}
		src = src[:4*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case FP16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = f16Table[binary.LittleEndian.Uint16(src[2*i:])]
		}
	case BF16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	}
}

// accumulate adds the wire-format elements in src to dst, in float32.
func accumulate(c Compression, dst []float32, src []byte) {
	switch c {
	case None:
		src = src[:4*len(dst)]
		if littleEndian {
			// gRPC's buffers split the payload anywhere, so src is often
			// not 4-byte aligned.
			addWire(dst, src)
			return
		}
		addWireScalar(dst, src)
	case FP16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] += f16Table[binary.LittleEndian.Uint16(src[2*i:])]
		}
	case BF16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] += math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	}
}

// roundTrip rounds v in place to the values the encoding can carry, so the
// owner of a reduced chunk keeps exactly what the other ranks will decode.
func roundTrip(c Compression, v []float32) {
	switch c {
	case FP16:
		for i, x := range v {
			v[i] = f16Table[f32ToF16(x)]
		}
	case BF16:
		for i, x := range v {
			v[i] = math.Float32frombits(uint32(f32ToBF16(x)) << 16)
		}
	}
}

// f32ToF16 converts to IEEE binary16, rounding to nearest even; overflow
// becomes ±Inf and NaN stays NaN.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 { // half subnormal (or zero)
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - e)
		h := mant >> shift
		rem, halfway := mant&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > halfway || (rem == halfway && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is still the correct encoding
	}
	return sign | uint16(h)
}

// f16ToF32 converts IEEE binary16 to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// f16Table decodes every binary16 value (256 KiB, built once).
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToF32(uint16(i))
	}
	return &t
}()

// f32ToBF16 converts to bfloat16, rounding to nearest even; NaN stays NaN.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// addWireScalar adds the little-endian float32s in src to dst, one at a
// time: any alignment, any byte order.
func addWireScalar(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] += math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// addFloatsGeneric adds src to dst, unrolled: the portable hot loop of
// the reduce-scatter where no assembly version exists.
func addFloatsGeneric(dst, src []float32) {
	src = src[:len(dst)]
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		d, s := dst[i:i+8:i+8], src[i:i+8:i+8]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
		d[4] += s[4]
		d[5] += s[5]
		d[6] += s[6]
		d[7] += s[7]
	}
	for i := n; i < len(dst); i++ {
		dst[i] += src[i]
	}
}
