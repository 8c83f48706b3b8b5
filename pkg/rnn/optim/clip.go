package optim

import (
	"fmt"
	"math"
)

// ClipGlobalNorm scales all gradients in place so that their global L2 norm
// (over every element of every parameter, accumulated in float64) is at most
// maxNorm, and returns the norm before clipping.
//
// It follows torch.nn.utils.clip_grad_norm_: the scale factor is
// maxNorm/(norm+1e-6), applied whenever it is below 1 (so a norm that equals
// maxNorm is still scaled by a hair). Unlike PyTorch, a NaN or infinite norm
// leaves the gradients untouched: the caller should test the returned norm
// (or call CheckFinite) and skip the step.
//
// ClipGlobalNorm panics if maxNorm is negative or NaN.
func ClipGlobalNorm[F Float](params []Param[F], maxNorm float64) (norm float64) {
	if !(maxNorm >= 0) {
		panic(fmt.Sprintf("optim: ClipGlobalNorm: maxNorm = %v, want >= 0", maxNorm))
	}
	var sum float64
	for i := range params {
		for _, g := range params[i].Grad {
			sum += float64(g) * float64(g)
		}
	}
	norm = math.Sqrt(sum)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := F(coef)
	for i := range params {
		g := params[i].Grad
		for j := range g {
			g[j] *= c
		}
	}
	return norm
}

// CheckFinite returns an ErrNonFinite error naming the first parameter (in
// slice order) whose gradient holds a NaN or an infinity, and the index of
// the offending element; nil if every gradient is finite.
func CheckFinite[F Float](params []Param[F]) error {
	for i := range params {
		for j, g := range params[i].Grad {
			// g-g is 0 for finite g and NaN for NaN or ±Inf.
			if g-g != 0 {
				return fmt.Errorf("%w: parameter %q, element %d is %v", ErrNonFinite, params[i].Name, j, g)
			}
		}
	}
	return nil
}
