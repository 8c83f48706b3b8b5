package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Tensor is one tensor: its element type, its shape (empty for a scalar) and
// its data, little-endian and row-major.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// File is the content of a safetensors file.
type File struct {
	// Metadata is the free-form string map stored under "__metadata__";
	// nil or empty writes none.
	Metadata map[string]string
	// Tensors maps names (PyTorch state_dict names, typically) to tensors.
	Tensors map[string]Tensor
}

// byteSize returns the number of data bytes shape and dtype call for, or an
// error if a dimension is negative or the size overflows.
func byteSize(dtype DType, shape []int) (uint64, error) {
	n := uint64(dtype.Size())
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v overflows a 64-bit byte count", shape)
		}
		n = lo
	}
	return n, nil
}

// check verifies the dtype and that Data has the size the shape calls for.
func (t Tensor) check(name string) error {
	if !t.DType.Valid() {
		return tensorErr(name, "dtype", "unknown dtype %q", t.DType)
	}
	want, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return tensorErr(name, "shape", "%v", err)
	}
	if uint64(len(t.Data)) != want {
		return tensorErr(name, "data", "shape %v needs %d bytes of %s, data has %d", t.Shape, want, t.DType, len(t.Data))
	}
	return nil
}

// Float32s decodes the elements of an F32, F64, F16 or BF16 tensor to
// float32 (F64 values are rounded). Other dtypes give an ErrDType error; data
// whose size disagrees with the shape gives an ErrFormat error.
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.checkFloat("float32"); err != nil {
		return nil, err
	}
	out := make([]float32, len(t.Data)/t.DType.Size())
	d := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	case F16:
		for i := range out {
			out[i] = halfToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
	}
	return out, nil
}

// Float64s is Float32s for float64 results; every conversion is exact.
func (t Tensor) Float64s() ([]float64, error) {
	if t.DType != F64 {
		f, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(f))
		for i, x := range f {
			out[i] = float64(x)
		}
		return out, nil
	}
	if err := t.checkFloat("float64"); err != nil {
		return nil, err
	}
	out := make([]float64, len(t.Data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

func (t Tensor) checkFloat(to string) error {
	switch t.DType {
	case F32, F64, F16, BF16:
		return t.check("")
	}
	return fmt.Errorf("%w: cannot convert a %q tensor to %s", ErrDType, t.DType, to)
}

// halfToFloat32 widens an IEEE 754 half-precision value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN, keeping the payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0: // zero or subnormal: mant × 2^-24
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// FromFloat32 returns an F32 tensor holding data with the given shape (both
// copied). It panics if the shape's element count is not len(data).
func FromFloat32(shape []int, data []float32) Tensor {
	checkCount(shape, len(data))
	b := make([]byte, 0, 4*len(data))
	for _, x := range data {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return Tensor{DType: F32, Shape: slices.Clone(shape), Data: b}
}

// FromFloat64 returns an F64 tensor holding data with the given shape (both
// copied). It panics if the shape's element count is not len(data).
func FromFloat64(shape []int, data []float64) Tensor {
	checkCount(shape, len(data))
	b := make([]byte, 0, 8*len(data))
	for _, x := range data {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return Tensor{DType: F64, Shape: slices.Clone(shape), Data: b}
}

func checkCount(shape []int, n int) {
	count, err := byteSize(U8, shape)
	if err != nil || count != uint64(n) {
		panic(fmt.Sprintf("safetensors: shape %v does not hold %d elements", shape, n))
	}
}
