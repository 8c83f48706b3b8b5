//go:build amd64

package rnn

import (
	"math"

	"golang.org/x/sys/cpu"
)

// haveAVX2 selects the vectorised activations.
var haveAVX2 = cpu.X86.HasAVX2

// actConsts is the constant table of the AVX2 kernels (act_amd64.s).
var actConsts = [16]float32{
	-87, 88, 1.44269504088896341, 12582912, 0.693145751953125, 1.428606765330187045e-06,
	1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1,
	math.Float32frombits(0x4B400000 - 127), -1, -2, 2,
}

//go:noescape
func expAVX2(x *float32, n int, c *[16]float32)

//go:noescape
func sigmoidAVX2(x *float32, n int, c *[16]float32)

//go:noescape
func tanhAVX2(x *float32, n int, c *[16]float32)

// vecExp32 replaces x by e**x; it returns how many leading elements it did.
func vecExp32(x []float32) int {
	n := len(x) &^ 7
	if !haveAVX2 || n == 0 {
		return 0
	}
	expAVX2(&x[0], n, &actConsts)
	return n
}

// vecSigmoid32 replaces x by sigmoid(x); it returns how many leading
// elements it did.
func vecSigmoid32(x []float32) int {
	n := len(x) &^ 7
	if !haveAVX2 || n == 0 {
		return 0
	}
	sigmoidAVX2(&x[0], n, &actConsts)
	return n
}

// vecTanh32 replaces x by tanh(x); it returns how many leading elements it
// did.
func vecTanh32(x []float32) int {
	n := len(x) &^ 7
	if !haveAVX2 || n == 0 {
		return 0
	}
	tanhAVX2(&x[0], n, &actConsts)
	return n
}
