package safetensors

// DType names an element type as the format spells it.
type DType string

// The element types this package reads and writes. Tensor data is always
// little-endian.
const (
	BOOL   DType = "BOOL"    // one byte, 0 or 1
	U8     DType = "U8"      // uint8
	I8     DType = "I8"      // int8
	F8E5M2 DType = "F8_E5M2" // 8-bit float, 5 exponent bits
	F8E4M3 DType = "F8_E4M3" // 8-bit float, 4 exponent bits
	I16    DType = "I16"     // int16
	U16    DType = "U16"     // uint16
	F16    DType = "F16"     // IEEE 754 half precision
	BF16   DType = "BF16"    // bfloat16: the top half of a float32
	I32    DType = "I32"     // int32
	U32    DType = "U32"     // uint32
	F32    DType = "F32"     // float32
	F64    DType = "F64"     // float64
	I64    DType = "I64"     // int64
	U64    DType = "U64"     // uint64
)

var dtypeSizes = map[DType]int{
	BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size returns the size of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Valid reports whether d is a dtype this package knows.
func (d DType) Valid() bool { return d.Size() != 0 }
