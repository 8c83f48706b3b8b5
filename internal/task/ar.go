package task

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/recur-ml/recur/pkg/shard"
)

// linearAR is the forecast's AR baseline: each output (every step and
// target) is an affine function of the last p rows of the input window
// (all input columns), fitted by least squares on the training windows in
// normalised units: a direct multi-step AR(p).
type linearAR struct {
	w   *mat.Dense // (p*dim+1) x outputs; the last row is the intercept
	p   int        // order: input rows read
	dim int        // input columns per row
}

func (t *exampleTask) trainWindows() *shard.WindowSet { return t.train.(*shard.WindowSet) }

// arOrders is the grid of AR orders tried: 1, 2, 3, 4, 6, 8, 12, 16, 24,
// ... (each about 1.5 times the last) up to top, and top itself.
func arOrders(top int) []int {
	var out []int
	for p := 1; p < top; {
		out = append(out, p)
		if p < 4 {
			p++
		} else if p%3 == 0 {
			p = p / 3 * 4
		} else {
			p = p / 2 * 3
		}
	}
	return append(out, max(top, 1))
}

// fitAR fits an AR(p) on the windows of w (normalised units).
func fitAR(w *shard.WindowSet, p int) (*linearAR, error) {
	n := w.Len()
	ex := w.Example(0)
	dim := ex.Input.Dim
	f := p*dim + 1
	q := len(ex.Output.Values)
	if n <= f {
		return nil, fmt.Errorf("%d training windows for %d coefficients", n, f)
	}
	X := mat.NewDense(n, f, nil)
	Y := mat.NewDense(n, q, nil)
	for i := 0; i < n; i++ {
		e := w.Example(i)
		in := e.Input.Values[len(e.Input.Values)-p*dim:]
		for j, v := range in {
			X.Set(i, j, float64(v))
		}
		X.Set(i, f-1, 1)
		for j, v := range e.Output.Values {
			Y.Set(i, j, float64(v))
		}
	}
	var coef mat.Dense
	if err := coef.Solve(X, Y); err != nil {
		return nil, err
	}
	return &linearAR{w: &coef, p: p, dim: dim}, nil
}

// predict returns output j for the flattened (normalised) input window x.
func (a *linearAR) predict(x []float32, j int) float64 {
	x = x[len(x)-a.p*a.dim:]
	s := a.w.At(len(x), j)
	for i, v := range x {
		s += a.w.At(i, j) * float64(v)
	}
	return s
}

// weights returns the coefficients, for an export.
func (a *linearAR) weights() *ARWeights {
	r, c := a.w.Dims()
	w := &ARWeights{Order: a.p, Weights: make([][]float64, r)}
	for i := range w.Weights {
		w.Weights[i] = make([]float64, c)
		mat.Row(w.Weights[i], i, a.w)
	}
	return w
}

// sse returns the AR model's squared error over the windows of w
// (normalised units).
func (a *linearAR) sse(w *shard.WindowSet) float64 {
	var s float64
	for i := 0; i < w.Len(); i++ {
		e := w.Example(i)
		for j, y := range e.Output.Values {
			d := a.predict(e.Input.Values, j) - float64(y)
			s += d * d
		}
	}
	return s
}

// arTop is the highest AR order tried: data.seq, or twice data.season
// when that is less.
func (t *exampleTask) arTop() int {
	if s := t.job.Data.Season; s > 0 {
		return min(2*s, t.job.Data.Seq)
	}
	return t.job.Data.Seq
}

// chooseAR fits AR(p) on the training windows for each order of
// arOrders(top) and returns the one with the least error on the
// validation windows; nil and the reason when no order can be fitted (a
// constant series makes every least squares singular).
func (t *exampleTask) chooseAR(top int) (*linearAR, error) {
	var best *linearAR
	bestErr, lastErr := math.Inf(1), error(nil)
	for _, p := range arOrders(top) {
		a, err := fitAR(t.trainWindows(), p)
		if err != nil {
			lastErr = err
			continue
		}
		if e := a.sse(t.valWindows()); e < bestErr {
			best, bestErr = a, e
		}
	}
	if best == nil {
		return nil, fmt.Errorf("forecast baseline: %w", lastErr)
	}
	return best, nil
}
