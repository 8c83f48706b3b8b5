package rnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// TestTrainerThreadsMatch checks that splitting a batch over goroutines
// gives the gradient and final state of the single-threaded step.
func TestTrainerThreadsMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, c := range modelCases(rng) {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Seed = 3
			grads := map[int][]float64{}
			finals := map[int][]float64{}
			for _, threads := range []int{1, 2, 3} {
				m, err := New[float64](c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				tr, err := NewTrainer(m, nil, TrainerConfig{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				res, err := tr.Compute(c.b, State[float64]{}, false)
				if err != nil {
					t.Fatal(err)
				}
				grads[threads] = append([]float64(nil), m.Params.Grad...)
				finals[threads] = append([]float64(nil), res.Final.H...)
			}
			for _, th := range []int{2, 3} {
				for i := range grads[1] {
					if math.Abs(grads[1][i]-grads[th][i]) > 1e-12 {
						t.Fatalf("threads=%d: grad[%d] %v != %v", th, i, grads[th][i], grads[1][i])
					}
				}
				for i := range finals[1] {
					if finals[1][i] != finals[th][i] {
						t.Fatalf("threads=%d: final state[%d] %v != %v", th, i, finals[th][i], finals[1][i])
					}
				}
			}
		})
	}
}

// TestTrainerLearnsCopyTask trains a small LSTM LM to predict a repeating
// sequence and checks the loss falls well below chance.
func TestTrainerLearnsCopyTask(t *testing.T) {
	m, err := New[float32](Config{Shape: SeqToSeq, Vocab: 8, Cell: LSTM, Hidden: 32, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	opt, err := optim.New[float32](optim.DefaultConfig(optim.KindAdam))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, opt, TrainerConfig{Threads: 2, Clip: 5})
	if err != nil {
		t.Fatal(err)
	}
	T, B := 16, 8
	b := &Batch[float32]{T: T, B: B, Tokens: make([]int32, T*B), Targets: make([]int32, T*B)}
	for s := 0; s < B; s++ {
		for i := 0; i < T; i++ {
			b.Tokens[i*B+s] = int32((i + s) % 8)
			b.Targets[i*B+s] = int32((i + s + 1) % 8)
		}
	}
	var first, last float64
	for step := 0; step < 150; step++ {
		res, _, err := tr.Step(b, State[float32]{}, 0.01)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = res.Mean()
		}
		last = res.Mean()
	}
	if first < 1.8 || last > 0.05 {
		t.Fatalf("loss went from %.3f to %.3f; want from ~ln 8 to < 0.05", first, last)
	}
}

// ComputeReady reports the gradient from the end down, at offsets of
// ReadyOffsets, ending at 0; what it reports is final (it equals the
// gradient after the call, bit for bit), and the gradient is that of
// Compute, bit for bit, on 1 to 3 goroutines (which may differ in taking
// the fused embedding path: replicas of one row have fewer rows than the
// vocabulary).
func TestComputeReady(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, c := range modelCases(rng) {
		for _, threads := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/threads-%d", c.name, threads), func(t *testing.T) {
				c.cfg.Seed = 4
				m, err := New[float64](c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				offs := m.ReadyOffsets()
				if offs[len(offs)-1] != 0 || !slices.IsSortedFunc(offs, func(a, b int) int { return b - a }) || len(slices.Compact(slices.Clone(offs))) != len(offs) {
					t.Fatalf("ReadyOffsets %v: want strictly decreasing to 0", offs)
				}
				tr, err := NewTrainer(m, nil, TrainerConfig{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tr.Compute(c.b, State[float64]{}, false); err != nil {
					t.Fatal(err)
				}
				want := slices.Clone(m.Params.Grad)
				m.Params.Grad[0] = math.NaN() // ComputeReady must clear it
				type seen struct {
					lo   int
					grad []float64
				}
				var got []seen
				if _, err := tr.ComputeReady(c.b, State[float64]{}, false, func(lo int) {
					got = append(got, seen{lo, slices.Clone(m.Params.Grad[lo:])})
				}); err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 || got[len(got)-1].lo != 0 {
					t.Fatalf("ready calls %v: want the last at 0", got)
				}
				prev := m.Params.Len() + 1
				for _, s := range got {
					if s.lo >= prev || !slices.Contains(offs, s.lo) {
						t.Fatalf("ready(%d) after ready(%d); offsets %v", s.lo, prev, offs)
					}
					prev = s.lo
					for i, v := range s.grad {
						if math.Float64bits(v) != math.Float64bits(want[s.lo+i]) {
							t.Fatalf("ready(%d): grad[%d] was %v, ends %v", s.lo, s.lo+i, v, want[s.lo+i])
						}
					}
				}
			})
		}
	}
}

// A failed step (a non-finite loss on one goroutine) reports nothing ready.
func TestComputeReadyFailure(t *testing.T) {
	m, err := New[float32](Config{Shape: SeqToSeq, Input: 1, Outputs: 1, Loss: MSE, Cell: GRU, Hidden: 3, Layers: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, nil, TrainerConfig{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	T, B := 3, 3
	b := &Batch[float32]{T: T, B: B, X: make([]float32, T*B), Y: make([]float32, T*B)}
	b.Y[T*B-1] = float32(math.Inf(1)) // the last sequence, on the last goroutine
	calls := 0
	if _, err := tr.ComputeReady(b, State[float32]{}, true, func(int) { calls++ }); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("err %v, want ErrNonFinite", err)
	}
	if calls != 0 {
		t.Fatalf("%d ready calls in a failed step", calls)
	}
}
