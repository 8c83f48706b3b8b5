package rnn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// The four shapes of the slides, each trained on a small task.

func newTestTrainer(t *testing.T, cfg Config, lr float64) (*Model[float32], *Trainer[float32]) {
	t.Helper()
	m, err := New[float32](cfg)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := optim.New[float32](optim.DefaultConfig(optim.KindAdam))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(m, opt, TrainerConfig{Threads: 2, Clip: 5, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return m, tr
}

// TestSeqToSeqNextValue: an aligned regression predicting the next value of
// noisy sine waves of random phase and frequency.
func TestSeqToSeqNextValue(t *testing.T) {
	_, tr := newTestTrainer(t, Config{Shape: SeqToSeq, Input: 1, Outputs: 1, Loss: MSE, Cell: GRU, Hidden: 24, Seed: 2}, 0)
	rng := rand.New(rand.NewPCG(1, 1))
	T, B := 30, 16
	batch := func() *Batch[float32] {
		b := &Batch[float32]{T: T, B: B, X: make([]float32, T*B), Y: make([]float32, T*B)}
		for s := 0; s < B; s++ {
			ph, fr := rng.Float64()*6.28, 0.2+0.3*rng.Float64()
			for i := 0; i < T; i++ {
				b.X[i*B+s] = float32(math.Sin(ph + fr*float64(i)))
				b.Y[i*B+s] = float32(math.Sin(ph + fr*float64(i+1)))
			}
		}
		return b
	}
	var mse float64
	for step := 0; step < 300; step++ {
		res, _, err := tr.Step(batch(), State[float32]{}, 0.01)
		if err != nil {
			t.Fatal(err)
		}
		mse = res.Mean()
	}
	// Predicting the current value (persistence) has MSE around 0.06-0.1.
	if mse > 0.01 {
		t.Fatalf("next-value MSE %.4f after training, want < 0.01", mse)
	}
}

// TestSeqToVecClassify: classify variable-length sequences of ±1 by the sign
// of their sum, reading the final state.
func TestSeqToVecClassify(t *testing.T) {
	m, tr := newTestTrainer(t, Config{Shape: SeqToVec, Input: 1, Outputs: 2, Cell: LSTM, Hidden: 16, Seed: 3}, 0)
	rng := rand.New(rand.NewPCG(2, 2))
	T, B := 12, 32
	batch := func() *Batch[float32] {
		b := &Batch[float32]{T: T, B: B, X: make([]float32, T*B), Targets: make([]int32, B), Lengths: make([]int, B)}
		for s := 0; s < B; s++ {
			L := 1 + 2*rng.IntN(T/2) // odd lengths: the sum is never 0
			b.Lengths[s] = L
			sum := 0
			for i := 0; i < L; i++ {
				v := 2*rng.IntN(2) - 1
				sum += v
				b.X[i*B+s] = float32(v)
			}
			if sum > 0 {
				b.Targets[s] = 1
			}
		}
		return b
	}
	for step := 0; step < 400; step++ {
		if _, _, err := tr.Step(batch(), State[float32]{}, 0.01); err != nil {
			t.Fatal(err)
		}
	}
	correct, total := 0, 0
	tp := m.NewTape(0)
	for k := 0; k < 10; k++ {
		b := batch()
		logits, _, err := tp.Predict(b, State[float32]{})
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s < B; s++ {
			if int32(pick(logits[s*2:s*2+2], 0, nil, nil)) == b.Targets[s] {
				correct++
			}
			total++
		}
	}
	if acc := float64(correct) / float64(total); acc < 0.95 {
		t.Fatalf("accuracy %.3f, want >= 0.95", acc)
	}
}

// digitsTask returns decoder inputs/targets for target sequences (tokens
// 2..11 are digits 0..9, BOS=0, EOS=1).
func decoderBatch(b *Batch[float32], outs [][]int32) {
	B := len(outs)
	TD := 0
	for _, o := range outs {
		TD = max(TD, len(o)+1)
	}
	b.TD = TD
	b.DecIn = make([]int32, TD*B)
	b.Targets = make([]int32, TD*B)
	b.DecLengths = make([]int, B)
	for s, o := range outs {
		b.DecLengths[s] = len(o) + 1
		prev := int32(0)
		for i := 0; i <= len(o); i++ {
			b.DecIn[i*B+s] = prev
			tgt := int32(1)
			if i < len(o) {
				tgt = o[i]
			}
			b.Targets[i*B+s] = tgt
			prev = tgt
		}
	}
}

// TestVecToSeqCount: from a one-hot digit d, emit d, d+1, ..., 9 then EOS.
func TestVecToSeqCount(t *testing.T) {
	m, tr := newTestTrainer(t, Config{Shape: VecToSeq, Input: 10, Outputs: 12, Cell: GRU, Hidden: 32, EOS: 1, BOS: 0, Seed: 4}, 0)
	want := func(d int) []int32 {
		var o []int32
		for k := d; k < 10; k++ {
			o = append(o, int32(k+2))
		}
		return o
	}
	b := &Batch[float32]{B: 10, X: make([]float32, 100)}
	var outs [][]int32
	for d := 0; d < 10; d++ {
		b.X[d*10+d] = 1
		outs = append(outs, want(d))
	}
	decoderBatch(b, outs)
	for step := 0; step < 300; step++ {
		if _, _, err := tr.Step(b, State[float32]{}, 0.01); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.Decode(b, 20)
	if err != nil {
		t.Fatal(err)
	}
	for d := 0; d < 10; d++ {
		if !slices.Equal(got[d], want(d)) {
			t.Errorf("digit %d decoded %v, want %v", d, got[d], want(d))
		}
	}
}

// TestEncoderDecoderReverse: reverse digit strings of length 1..6; the
// output must end at EOS and match exactly on held-out strings.
func TestEncoderDecoderReverse(t *testing.T) {
	m, tr := newTestTrainer(t, Config{Shape: EncoderDecoder, Vocab: 12, Outputs: 12, Embed: 16, Cell: LSTM, Hidden: 64, EOS: 1, BOS: 0, Seed: 5}, 0)
	rng := rand.New(rand.NewPCG(3, 3))
	const maxLen, B = 6, 32
	batch := func() (*Batch[float32], [][]int32) {
		b := &Batch[float32]{T: maxLen, B: B, Tokens: make([]int32, maxLen*B), Lengths: make([]int, B)}
		var outs [][]int32
		for s := 0; s < B; s++ {
			L := 1 + rng.IntN(maxLen)
			b.Lengths[s] = L
			seq := make([]int32, L)
			for i := range seq {
				seq[i] = int32(2 + rng.IntN(10))
				b.Tokens[i*B+s] = seq[i]
			}
			slices.Reverse(seq)
			outs = append(outs, seq)
		}
		decoderBatch(b, outs)
		return b, outs
	}
	for step := 0; step < 1200; step++ {
		b, _ := batch()
		if _, _, err := tr.Step(b, State[float32]{}, 0.005); err != nil {
			t.Fatal(err)
		}
	}
	correct, total := 0, 0
	for k := 0; k < 8; k++ {
		b, want := batch()
		got, err := m.Decode(b, 2*maxLen)
		if err != nil {
			t.Fatal(err)
		}
		for s := range want {
			if slices.Equal(got[s], want[s]) {
				correct++
			}
			total++
		}
	}
	if acc := float64(correct) / float64(total); acc < 0.9 {
		t.Fatalf("exact-match accuracy %.3f, want >= 0.9", acc)
	}
	t.Logf("exact match %d/%d", correct, total)
}

// TestSampleTemperature checks sampling runs, respects the vocabulary, and
// that temperature 0 is deterministic.
func TestSampleTemperature(t *testing.T) {
	m, err := New[float32](Config{Shape: SeqToSeq, Vocab: 6, Cell: LSTM, Hidden: 8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Sample([]int32{1, 2}, 20, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Sample([]int32{1, 2}, 20, 0, nil)
	if !slices.Equal(a, b) || len(a) != 20 {
		t.Fatalf("greedy samples differ or wrong length: %v %v", a, b)
	}
	s, err := m.Sample([]int32{3}, 50, 1.0, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range s {
		if tok < 0 || tok >= 6 {
			t.Fatalf("sampled token %d outside the vocabulary", tok)
		}
	}
	if _, err := m.Sample([]int32{9}, 5, 1, nil); err == nil {
		t.Fatal("prime outside the vocabulary accepted")
	}
	if _, err := m.Sample([]int32{1}, -5, 1, nil); err == nil { // used to panic: makeslice: cap out of range
		t.Fatal("a negative count accepted")
	}
}
