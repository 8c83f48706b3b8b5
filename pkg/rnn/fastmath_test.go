package rnn

import (
	"math"
	"testing"
)

// TestFloat32Activations checks the float32 activations against the float64
// math package over the range that matters.
func TestFloat32Activations(t *testing.T) {
	var maxExp, maxSig, maxTanh float64
	for x := -30.0; x <= 30; x += 0.001 {
		x32 := float32(x)
		xe := float64(x32)
		if xe < 80 && xe > -80 {
			want := math.Exp(xe)
			maxExp = max(maxExp, math.Abs(float64(exp32(x32))-want)/want)
		}
		maxSig = max(maxSig, math.Abs(float64(sigmoid32(x32))-1/(1+math.Exp(-xe))))
		maxTanh = max(maxTanh, math.Abs(float64(tanh32(x32))-math.Tanh(xe)))
	}
	if maxExp > 3e-7 || maxSig > 2e-7 || maxTanh > 3e-7 {
		t.Fatalf("max errors: exp rel %.2g, sigmoid abs %.2g, tanh abs %.2g", maxExp, maxSig, maxTanh)
	}
	if v := sigmoid32(-200); v != 0 && v > 1e-37 {
		t.Errorf("sigmoid(-200) = %v", v)
	}
	if v := tanh32(200); v != 1 {
		t.Errorf("tanh(200) = %v", v)
	}
	if v := tanh32(-200); v != -1 {
		t.Errorf("tanh(-200) = %v", v)
	}
}

// TestVectorActivations checks the slice kernels (AVX2 where present)
// against the scalar ones, including lengths that are not multiples of 8.
func TestVectorActivations(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 64, 131} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i%41-20) * 0.7
		}
		s, th, e := append([]float32(nil), x...), append([]float32(nil), x...), append([]float32(nil), x...)
		sigmoidSlice(s)
		tanhSlice(th)
		expSlice(e)
		for i, v := range x {
			xe := float64(v)
			if d := math.Abs(float64(s[i]) - 1/(1+math.Exp(-xe))); d > 2e-7 {
				t.Fatalf("n=%d sigmoid(%v) = %v, off by %g", n, v, s[i], d)
			}
			if d := math.Abs(float64(th[i]) - math.Tanh(xe)); d > 3e-7 {
				t.Fatalf("n=%d tanh(%v) = %v, off by %g", n, v, th[i], d)
			}
			if d := math.Abs(float64(e[i])-math.Exp(xe)) / math.Exp(xe); d > 3e-7 {
				t.Fatalf("n=%d exp(%v) = %v, off by %g (rel)", n, v, e[i], d)
			}
		}
	}
}
