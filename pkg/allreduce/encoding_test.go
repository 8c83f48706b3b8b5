package allreduce

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

func TestF16RoundTripsEveryValue(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := f16ToF32(h)
		if math.IsNaN(float64(f)) {
			if g := f32ToF16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x re-encoded as %#04x", h, g)
			}
			continue
		}
		if g := f32ToF16(f); g != h {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, g)
		}
	}
}

func TestF16RoundsToNearest(t *testing.T) {
	cases := []struct {
		in   float32
		want float32
	}{
		{1, 1}, {65504, 65504}, {65520, float32(math.Inf(1))}, {1e-8, 0},
		{1 + 1.0/2048, 1}, // halfway: ties to even
		{1 + 3.0/2048, 1 + 2.0/1024},
		{5.96e-8, 5.9604645e-8}, // smallest subnormal
		{-2.5, -2.5},
	}
	for _, c := range cases {
		if got := f16ToF32(f32ToF16(c.in)); got != c.want {
			t.Errorf("fp16(%g) = %g, want %g", c.in, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		x := float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4)))
		got := f16ToF32(f32ToF16(x))
		if math.Abs(float64(x)) > 6.2e-5 && math.Abs(float64(got-x)) > math.Abs(float64(x))/2048 {
			t.Fatalf("fp16(%g) = %g: error above half an ulp", x, got)
		}
	}
}

func TestBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		x := float32(rng.NormFloat64() * 1e10)
		got := math.Float32frombits(uint32(f32ToBF16(x)) << 16)
		if math.Abs(float64(got-x)) > math.Abs(float64(x))/256 {
			t.Fatalf("bf16(%g) = %g", x, got)
		}
	}
	if b := f32ToBF16(float32(math.NaN())); b&0x7f80 != 0x7f80 || b&0x7f == 0 {
		t.Fatalf("NaN -> %#04x", b)
	}
}

func TestEncodeDecodeAccumulate(t *testing.T) {
	src := []float32{1, -2.5, 3.25, 0, 1024}
	for _, c := range []Compression{None, FP16, BF16} {
		wire := make([]byte, len(src)*c.elemSize())
		encode(c, wire, src)
		got := make([]float32, len(src))
		decode(c, got, wire)
		for i := range src {
			if got[i] != src[i] {
				t.Fatalf("%v: decode[%d] = %g, want %g", c, i, got[i], src[i])
			}
		}
		accumulate(c, got, wire)
		for i := range src {
			if got[i] != 2*src[i] {
				t.Fatalf("%v: accumulate[%d] = %g, want %g", c, i, got[i], 2*src[i])
			}
		}
	}
}

// Aligned and misaligned sources take different paths; both must add.
func TestAccumulateAlignment(t *testing.T) {
	src := make([]float32, 37)
	for i := range src {
		src[i] = float32(i) - 3.5
	}
	raw := make([]byte, 4*len(src)+3)
	for off := 0; off < 4; off++ {
		wire := raw[off : off+4*len(src)]
		encode(None, wire, src)
		dst := make([]float32, len(src))
		accumulate(None, dst, wire)
		for i := range src {
			if dst[i] != src[i] {
				t.Fatalf("offset %d elem %d = %g, want %g", off, i, dst[i], src[i])
			}
		}
	}
}

// addWire (SIMD where available) performs exactly the float32 additions
// of the portable loops, for every length and byte alignment of the
// source (gRPC splits payloads anywhere).
func TestAddWireMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	base := make([]float32, 300)
	src := make([]byte, 4*300+3)
	for i := range base {
		base[i] = float32(rng.NormFloat64()) * 1e3
	}
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	for off := range 4 {
		for n := 0; n <= 260; n++ {
			got := append([]float32(nil), base[:n]...)
			want := append([]float32(nil), got...)
			addWire(got, src[off:])
			addWireScalar(want, src[off:])
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("off %d n %d: [%d] = %g, want %g", off, n, i, got[i], want[i])
				}
			}
			if off == 0 && n > 0 {
				g2 := append([]float32(nil), base[:n]...)
				addFloatsGeneric(g2, unsafe.Slice((*float32)(unsafe.Pointer(&src[0])), n))
				for i := range g2 {
					if math.Float32bits(g2[i]) != math.Float32bits(want[i]) {
						t.Fatalf("generic n %d: [%d] = %g, want %g", n, i, g2[i], want[i])
					}
				}
			}
		}
	}
}

func BenchmarkAddWire(b *testing.B) {
	for _, off := range []int{0, 1} {
		b.Run(fmt.Sprintf("offset-%d", off), func(b *testing.B) {
			dst, src := make([]float32, 1<<18), make([]byte, 4<<18+1)
			b.SetBytes(4 << 18)
			for range b.N {
				addWire(dst, src[off:])
			}
		})
	}
}
