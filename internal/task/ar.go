package task

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/recur-ml/recur/pkg/shard"
)

// linearAR is the forecast baseline: each output is an affine function of
// the whole input window, fitted by least squares on the training windows.
type linearAR struct {
	w *mat.Dense // (features+1) x outputs; the last row is the intercept
	p int
}

func (t *exampleTask) trainWindows() *shard.WindowSet { return t.train.(*shard.WindowSet) }

// fitAR fits the baseline on the training windows (normalised units).
func (t *exampleTask) fitAR(cols []int) (*linearAR, error) {
	tr := t.trainWindows()
	n := tr.Len()
	ex := tr.Example(0)
	p := len(ex.Input.Values)
	q := len(ex.Output.Values)
	if n <= p+1 {
		return nil, fmt.Errorf("forecast baseline: %d training windows for %d coefficients", n, p+1)
	}
	X := mat.NewDense(n, p+1, nil)
	Y := mat.NewDense(n, q, nil)
	for i := 0; i < n; i++ {
		e := tr.Example(i)
		for j, v := range e.Input.Values {
			X.Set(i, j, float64(v))
		}
		X.Set(i, p, 1)
		for j, v := range e.Output.Values {
			Y.Set(i, j, float64(v))
		}
	}
	var w mat.Dense
	if err := w.Solve(X, Y); err != nil {
		return nil, fmt.Errorf("forecast baseline: %w", err)
	}
	return &linearAR{w: &w, p: p}, nil
}

// predict returns output j for the flattened input window x.
func (a *linearAR) predict(x []float64, j int) float64 {
	s := a.w.At(a.p, j)
	for i := 0; i < a.p; i++ {
		s += a.w.At(i, j) * x[i]
	}
	return s
}
