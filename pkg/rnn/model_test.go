package rnn

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randTokens(rng *rand.Rand, n, vocab int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(rng.IntN(vocab))
	}
	return t
}

// modelCases covers each shape with token and dense inputs and both losses.
func modelCases(rng *rand.Rand) []struct {
	name string
	cfg  Config
	b    *Batch[float64]
} {
	T, B, TD := 4, 3, 3
	lens := []int{4, 2, 3}
	return []struct {
		name string
		cfg  Config
		b    *Batch[float64]
	}{
		{"seq2seq-tokens-ce", Config{Shape: SeqToSeq, Vocab: 5, Embed: 3, Cell: LSTM, Hidden: 4, Layers: 2},
			&Batch[float64]{T: T, B: B, Tokens: randTokens(rng, T*B, 5), Targets: randTokens(rng, T*B, 5), Lengths: lens}},
		{"seq2seq-tokens-gathered-bidir", Config{Shape: SeqToSeq, Vocab: 40, Embed: 3, Cell: GRU, Hidden: 3, Bidirectional: true},
			&Batch[float64]{T: T, B: B, Tokens: randTokens(rng, T*B, 40), Targets: randTokens(rng, T*B, 40), Lengths: lens}},
		{"seq2seq-dense-mse", Config{Shape: SeqToSeq, Input: 2, Outputs: 2, Loss: MSE, Cell: GRU, Hidden: 3},
			&Batch[float64]{T: T, B: B, X: randVec(rng, T*B*2, 1), Y: randVec(rng, T*B*2, 1), Lengths: lens}},
		{"seq2vec-dense-ce-bidir", Config{Shape: SeqToVec, Input: 2, Outputs: 3, Cell: LSTM, Hidden: 3, Bidirectional: true, Layers: 2},
			&Batch[float64]{T: T, B: B, X: randVec(rng, T*B*2, 1), Targets: randTokens(rng, B, 3), Lengths: lens}},
		{"seq2vec-tokens-mse", Config{Shape: SeqToVec, Vocab: 4, Outputs: 1, Loss: MSE, Cell: RNNTanh, Hidden: 3},
			&Batch[float64]{T: T, B: B, Tokens: randTokens(rng, T*B, 4), Y: randVec(rng, B, 1)}},
		{"vec2seq", Config{Shape: VecToSeq, Input: 3, Outputs: 5, Cell: GRU, Hidden: 3, Layers: 2, EOS: 1, BOS: 0},
			&Batch[float64]{B: B, X: randVec(rng, B*3, 1), TD: TD, DecIn: randTokens(rng, TD*B, 5), Targets: randTokens(rng, TD*B, 5), DecLengths: []int{3, 1, 2}}},
		{"encdec-bidir-lstm", Config{Shape: EncoderDecoder, Vocab: 6, Outputs: 5, Cell: LSTM, Hidden: 3, Bidirectional: true, EOS: 1, BOS: 0},
			&Batch[float64]{T: T, B: B, Tokens: randTokens(rng, T*B, 6), Lengths: lens, TD: TD, DecIn: randTokens(rng, TD*B, 5), Targets: randTokens(rng, TD*B, 5), DecLengths: []int{3, 2, 1}}},
	}
}

func TestModelGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, c := range modelCases(rng) {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Seed = 42
			m, err := New[float64](c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			tp := m.NewTape(1)
			if _, err := tp.Forward(c.b, State[float64]{}, true); err != nil {
				t.Fatal(err)
			}
			m.Params.ZeroGrad()
			tp.Backward(m.Params.Grad)
			grad := append([]float64(nil), m.Params.Grad...)
			f := func() float64 {
				r, err := m.NewTape(1).Forward(c.b, State[float64]{}, true)
				if err != nil {
					t.Fatal(err)
				}
				return r.Loss
			}
			for _, s := range m.Params.Specs() {
				checkGrad(t, s.Name, m.Params.Value[s.Offset:s.Offset+s.Size], grad[s.Offset:s.Offset+s.Size], f)
			}
		})
	}
}

func TestModelRejectsBadBatches(t *testing.T) {
	m, err := New[float32](Config{Shape: SeqToSeq, Vocab: 5, Cell: LSTM, Hidden: 4})
	if err != nil {
		t.Fatal(err)
	}
	tp := m.NewTape(1)
	cases := map[string]*Batch[float32]{
		"empty":          {T: 0, B: 0},
		"token range":    {T: 1, B: 2, Tokens: []int32{1, 9}, Targets: []int32{0, 0}},
		"target range":   {T: 1, B: 2, Tokens: []int32{1, 2}, Targets: []int32{0, 7}},
		"targets count":  {T: 1, B: 2, Tokens: []int32{1, 2}, Targets: []int32{0}},
		"length over T":  {T: 1, B: 2, Tokens: []int32{1, 2}, Targets: []int32{0, 1}, Lengths: []int{2, 1}},
		"missing tokens": {T: 2, B: 2, Targets: []int32{0, 1, 1, 1}},
	}
	for name, b := range cases {
		if _, err := tp.Forward(b, State[float32]{}, true); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for name, cfg := range map[string]Config{
		"hidden 0":      {Vocab: 5, Cell: LSTM},
		"no input":      {Hidden: 3, Outputs: 2},
		"dropout 1":     {Vocab: 5, Hidden: 3, Dropout: 1},
		"decoder mse":   {Shape: EncoderDecoder, Vocab: 5, Hidden: 3, Loss: MSE},
		"eos range":     {Shape: EncoderDecoder, Vocab: 5, Hidden: 3, EOS: 9},
		"identity lstm": {Vocab: 5, Hidden: 3, Cell: LSTM, IdentityInit: true},
	} {
		if _, err := New[float32](cfg); err == nil {
			t.Errorf("config %s: no error", name)
		}
	}
}

func TestNonFiniteLossIsAnError(t *testing.T) {
	m, _ := New[float32](Config{Shape: SeqToSeq, Vocab: 5, Cell: GRU, Hidden: 4})
	w, _, _, _ := m.Params.Lookup("head.bias")
	w[2] = float32(math.Inf(1))
	tp := m.NewTape(1)
	_, err := tp.Forward(&Batch[float32]{T: 2, B: 1, Tokens: []int32{1, 2}, Targets: []int32{2, 3}}, State[float32]{}, true)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("error %v, want ErrNonFinite", err)
	}
}
