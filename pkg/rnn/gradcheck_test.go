package rnn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// stackCase is one configuration of the shared cell suite.
type stackCase struct {
	name string
	cfg  StackConfig
	T, B int
	lens []int // nil: full length
}

// cellSuite lists the configurations every cell runs: single layer, stacked
// with dropout, masked variable lengths, bidirectional.
func cellSuite() []stackCase {
	var cs []stackCase
	for _, cell := range []Cell{RNNTanh, RNNReLU, LSTM, GRU} {
		cs = append(cs,
			stackCase{name: cell.String() + "/1layer", cfg: StackConfig{Cell: cell, Input: 3, Hidden: 4}, T: 5, B: 2},
			stackCase{name: cell.String() + "/2layer-dropout", cfg: StackConfig{Cell: cell, Input: 3, Hidden: 4, Layers: 2, Dropout: 0.3}, T: 4, B: 3},
			stackCase{name: cell.String() + "/masked", cfg: StackConfig{Cell: cell, Input: 2, Hidden: 3, Layers: 2}, T: 5, B: 3, lens: []int{5, 2, 0}},
			stackCase{name: cell.String() + "/bidirectional", cfg: StackConfig{Cell: cell, Input: 2, Hidden: 3, Layers: 2, Bidirectional: true}, T: 4, B: 3, lens: []int{4, 1, 3}},
		)
	}
	return cs
}

func newTestStack(t testing.TB, cfg StackConfig, seed uint64) (*Stack[float64], *Params[float64]) {
	t.Helper()
	b := &builder{}
	s, err := newStack[float64](cfg, "rnn.", b)
	if err != nil {
		t.Fatal(err)
	}
	p := newParams[float64](b)
	s.vals = p.Value
	s.init(p.Value, rand.New(rand.NewPCG(seed, 1)))
	// Move ReLU units away from the kink so finite differences are smooth.
	return s, p
}

func randVec(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (2*rng.Float64() - 1) * scale
	}
	return v
}

// stackObjective is sum(out*R) + sum(hT*Rh) + sum(cT*Rc), a loss whose
// gradient with respect to the outputs and final state is R, Rh, Rc.
type stackObjective struct {
	x, h0, c0, R, Rh, Rc []float64
}

func (o *stackObjective) eval(t testing.TB, s *Stack[float64], tp *StackTape[float64], c stackCase, dropSeed uint64) float64 {
	init := State[float64]{H: o.h0, C: o.c0}
	out, fin, err := s.Forward(tp, o.x, c.T, c.B, c.lens, init, true, rand.New(rand.NewPCG(dropSeed, 2)))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for i, v := range out {
		sum += v * o.R[i]
	}
	for i, v := range fin.H {
		sum += v * o.Rh[i]
	}
	for i, v := range fin.C {
		sum += v * o.Rc[i]
	}
	return sum
}

// checkGrad compares an analytic gradient with central differences of f
// with respect to every element of x.
func checkGrad(t *testing.T, what string, x, analytic []float64, f func() float64) {
	t.Helper()
	const h = 1e-6
	bad := 0
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		fp := f()
		x[i] = orig - h
		fm := f()
		x[i] = orig
		num := (fp - fm) / (2 * h)
		if diff := math.Abs(num - analytic[i]); diff > 1e-6+1e-5*math.Abs(num) {
			if bad < 5 {
				t.Errorf("%s[%d]: analytic %.9g, numeric %.9g", what, i, analytic[i], num)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d gradients wrong", what, bad, len(x))
	}
}

func TestStackGradients(t *testing.T) {
	for _, c := range cellSuite() {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			s, p := newTestStack(t, c.cfg, 3)
			if c.cfg.Cell == RNNReLU {
				// Shift pre-activations away from 0 so the kink of ReLU is not
				// straddled by the finite differences.
				for _, dirs := range s.layers {
					for _, l := range dirs {
						for i, b := 0, view(p.Value, l.bih, l.hid); i < len(b); i++ {
							b[i] = 0.5
						}
					}
				}
			}
			n := s.StateSize(c.B)
			o := &stackObjective{
				x:  randVec(rng, c.T*c.B*c.cfg.Input, 1),
				h0: randVec(rng, n, 0.5),
				R:  randVec(rng, c.T*c.B*s.OutputSize(), 1),
				Rh: randVec(rng, n, 1),
			}
			if c.cfg.Cell == LSTM {
				o.c0, o.Rc = randVec(rng, n, 0.5), randVec(rng, n, 1)
			}
			xCopy := append([]float64(nil), o.x...)
			tp := s.NewTape()
			o.eval(t, s, tp, c, 11)
			p.ZeroGrad()
			dx, dInit := s.Backward(tp, p.Grad, o.R, State[float64]{H: o.Rh, C: o.Rc}, true)
			dx = append([]float64(nil), dx...)
			dh0 := append([]float64(nil), dInit.H...)
			dc0 := append([]float64(nil), dInit.C...)
			grad := append([]float64(nil), p.Grad...)
			f := func() float64 { return o.eval(t, s, s.NewTape(), c, 11) }
			for _, spec := range p.Specs() {
				checkGrad(t, spec.Name, p.Value[spec.Offset:spec.Offset+spec.Size], grad[spec.Offset:spec.Offset+spec.Size], f)
			}
			checkGrad(t, "input", o.x, dx, f)
			checkGrad(t, "h0", o.h0, dh0, f)
			if o.c0 != nil {
				checkGrad(t, "c0", o.c0, dc0, f)
			}
			for i := range xCopy {
				if xCopy[i] != o.x[i] {
					t.Fatal("forward modified its input")
				}
			}
		})
	}
}

func TestMaskedStepsFreezeState(t *testing.T) {
	for _, cell := range []Cell{RNNTanh, LSTM, GRU} {
		t.Run(cell.String(), func(t *testing.T) {
			cfg := StackConfig{Cell: cell, Input: 2, Hidden: 3}
			s, _ := newTestStack(t, cfg, 5)
			rng := rand.New(rand.NewPCG(1, 2))
			T, B := 6, 2
			x := randVec(rng, T*B*2, 1)
			lens := []int{6, 3}
			out, fin, err := s.Forward(s.NewTape(), x, T, B, lens, State[float64]{}, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Sequence 1 alone, 3 steps, must give the same final state.
			x1 := make([]float64, 3*2)
			for tt := 0; tt < 3; tt++ {
				copy(x1[tt*2:], x[(tt*B+1)*2:(tt*B+2)*2])
			}
			_, fin1, err := s.Forward(s.NewTape(), x1, 3, 1, nil, State[float64]{}, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j < 3; j++ {
				if math.Abs(fin.H[1*3+j]-fin1.H[j]) > 1e-12 {
					t.Fatalf("final state of the short sequence differs: %v vs %v", fin.H[3:6], fin1.H)
				}
			}
			for tt := 3; tt < T; tt++ {
				for j := 0; j < 3; j++ {
					if out[(tt*B+1)*3+j] != 0 {
						t.Fatalf("output at padded step %d is %v, want 0", tt, out[(tt*B+1)*3+j])
					}
				}
			}
		})
	}
}

// TestTBPTTCarry checks that running two windows with the state carried
// equals one forward pass over the concatenated window.
func TestTBPTTCarry(t *testing.T) {
	for _, cell := range []Cell{RNNTanh, LSTM, GRU} {
		t.Run(cell.String(), func(t *testing.T) {
			cfg := StackConfig{Cell: cell, Input: 2, Hidden: 3, Layers: 2}
			s, _ := newTestStack(t, cfg, 9)
			rng := rand.New(rand.NewPCG(3, 4))
			T, B := 8, 2
			x := randVec(rng, T*B*2, 1)
			_, full, err := s.Forward(s.NewTape(), x, T, B, nil, State[float64]{}, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			full = full.Clone()
			tp := s.NewTape()
			_, st, err := s.Forward(tp, x[:4*B*2], 4, B, nil, State[float64]{}, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			carry := st.Clone()
			_, st2, err := s.Forward(tp, x[4*B*2:], 4, B, nil, carry, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range full.H {
				if math.Abs(full.H[i]-st2.H[i]) > 1e-12 {
					t.Fatalf("h[%d]: carried %v, full %v", i, st2.H[i], full.H[i])
				}
			}
		})
	}
}

func TestStackRejectsBadShapes(t *testing.T) {
	s, _ := newTestStack(t, StackConfig{Cell: LSTM, Input: 2, Hidden: 3}, 1)
	tp := s.NewTape()
	cases := []struct {
		name    string
		x       []float64
		T, B    int
		lengths []int
		init    State[float64]
	}{
		{"empty", nil, 0, 0, nil, State[float64]{}},
		{"short input", make([]float64, 5), 2, 2, nil, State[float64]{}},
		{"length over T", make([]float64, 8), 2, 2, []int{3, 1}, State[float64]{}},
		{"lengths count", make([]float64, 8), 2, 2, []int{1}, State[float64]{}},
		{"state size", make([]float64, 8), 2, 2, nil, State[float64]{H: make([]float64, 5)}},
	}
	for _, c := range cases {
		if _, _, err := s.Forward(tp, c.x, c.T, c.B, c.lengths, c.init, false, nil); err == nil {
			t.Errorf("%s: no error", c.name)
		} else {
			fmt.Println(c.name+":", err)
		}
	}
}
