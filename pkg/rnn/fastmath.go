package rnn

import "math"

// The activations below are exact (math package) for float64 and use a
// float32 exp with a degree-6 polynomial for float32, accurate to about
// 2 ulp, which is several times faster than converting to float64.

// exp32 returns e**x in float32 for x in the range where it is finite.
func exp32(x float32) float32 {
	const (
		ln2Hi = 0.693145751953125
		ln2Lo = 1.428606765330187045e-06
		log2e = 1.44269504088896341
	)
	if x > 88 {
		x = 88
	} else if x < -87 {
		x = -87
	}
	// x = n*ln2 + r, |r| <= ln2/2
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2Hi - n*ln2Lo
	// exp(r) by its Taylor polynomial (error < 2e-8 on the interval).
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// sigmoid returns 1/(1+e^-x).
func sigmoid[F Float](x F) F {
	if is32[F]() {
		return F(1 / (1 + exp32(-float32(x))))
	}
	return F(1 / (1 + math.Exp(-float64(x))))
}

// tanh returns the hyperbolic tangent of x.
func tanh[F Float](x F) F {
	if is32[F]() {
		v := float32(x)
		if v > 9 {
			return 1
		} else if v < -9 {
			return -1
		}
		if v > -0.25 && v < 0.25 {
			// Odd polynomial avoids the cancellation of 1-2/(e^2x+1) near 0.
			v2 := v * v
			return F(v * (1 + v2*(-1.0/3+v2*(2.0/15+v2*(-17.0/315+v2*(62.0/2835))))))
		}
		e := exp32(2 * v)
		return F((e - 1) / (e + 1))
	}
	return F(math.Tanh(float64(x)))
}
