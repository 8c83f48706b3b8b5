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
		magic = 12582912 // 1.5 * 2^23: adding it rounds to an integer
	)
	if x < -87 {
		x = -87
	}
	if x > 88 {
		x = 88
	}
	// x = n*ln2 + r, |r| <= ln2/2; n read from the mantissa of t.
	t := x*log2e + magic
	n := t - magic
	r := x - n*ln2Hi - n*ln2Lo
	// exp(r) by its Taylor polynomial (error < 2e-8 on the interval).
	p := ((((((1.0/720)*r+1.0/120)*r+1.0/24)*r+1.0/6)*r+0.5)*r+1)*r + 1
	return p * math.Float32frombits(uint32(int32(math.Float32bits(t))-0x4B400000+127)<<23)
}

// sigmoid32 is the float32 logistic function.
func sigmoid32(x float32) float32 { return 1 / (1 + exp32(-x)) }

// tanh32 is the float32 hyperbolic tangent, 2*sigmoid(2x)-1; its absolute
// error is below 2e-7.
func tanh32(x float32) float32 { return 2/(1+exp32(-2*x)) - 1 }

// sigmoid returns 1/(1+e^-x).
func sigmoid[F Float](x F) F {
	if is32[F]() {
		return F(sigmoid32(float32(x)))
	}
	return F(1 / (1 + math.Exp(-float64(x))))
}

// tanh returns the hyperbolic tangent of x.
func tanh[F Float](x F) F {
	if is32[F]() {
		return F(tanh32(float32(x)))
	}
	return F(math.Tanh(float64(x)))
}

// sigmoidSlice replaces every element of x by sigmoid(x).
func sigmoidSlice[F Float](x []F) {
	i := 0
	if is32[F]() {
		x32 := as32(x)
		for i = vecSigmoid32(x32); i < len(x32); i++ {
			x32[i] = sigmoid32(x32[i])
		}
		return
	}
	for ; i < len(x); i++ {
		x[i] = sigmoid(x[i])
	}
}

// tanhSlice replaces every element of x by tanh(x).
func tanhSlice[F Float](x []F) {
	i := 0
	if is32[F]() {
		x32 := as32(x)
		for i = vecTanh32(x32); i < len(x32); i++ {
			x32[i] = tanh32(x32[i])
		}
		return
	}
	for ; i < len(x); i++ {
		x[i] = tanh(x[i])
	}
}

// expSlice replaces every element of x by e**x.
func expSlice[F Float](x []F) {
	i := 0
	if is32[F]() {
		x32 := as32(x)
		for i = vecExp32(x32); i < len(x32); i++ {
			x32[i] = exp32(x32[i])
		}
		return
	}
	for ; i < len(x); i++ {
		x[i] = F(math.Exp(float64(x[i])))
	}
}
