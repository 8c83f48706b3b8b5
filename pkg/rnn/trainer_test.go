package rnn

import (
	"math"
	"math/rand/v2"
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
