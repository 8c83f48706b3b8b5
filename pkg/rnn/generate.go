package rnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Sample continues prime with n tokens drawn from a SeqToSeq token model,
// the way char-rnn generates text. temperature scales the logits (below 1
// is more conservative); 0 or less takes the most likely token.
func (m *Model[F]) Sample(prime []int32, n int, temperature float64, rng *rand.Rand) ([]int32, error) {
	if m.cfg.Shape != SeqToSeq || m.emb == nil {
		return nil, errors.New("rnn: sampling needs a sequence-to-sequence model with token inputs")
	}
	if len(prime) == 0 {
		return nil, errors.New("rnn: sampling needs at least one prime token")
	}
	if n < 0 {
		return nil, fmt.Errorf("rnn: cannot sample %d tokens", n)
	}
	if err := m.emb.checkTokens(prime); err != nil {
		return nil, fmt.Errorf("prime: %w", err)
	}
	if m.cfg.Outputs != m.cfg.Vocab {
		return nil, fmt.Errorf("rnn: the model predicts %d classes but reads %d tokens; it cannot feed its output back", m.cfg.Outputs, m.cfg.Vocab)
	}
	tp := m.rnn.NewTape()
	vals := m.Params.Value
	x := make([]F, len(prime)*m.emb.dim)
	embedForward(m.emb, vals, prime, x)
	out, fin, err := m.rnn.Forward(tp, x, len(prime), 1, nil, State[F]{}, false, nil)
	if err != nil {
		return nil, err
	}
	H := m.rnn.OutputSize()
	state := fin.Clone()
	logits := make([]F, m.cfg.Outputs)
	probs := make([]float64, m.cfg.Outputs)
	last := out[(len(prime)-1)*H:]
	res := make([]int32, 0, n)
	tok := []int32{0}
	for len(res) < n {
		linearForward(m.head, vals, last, 1, logits)
		tok[0] = pick(logits, temperature, probs, rng)
		res = append(res, tok[0])
		embedForward(m.emb, vals, tok, x[:m.emb.dim])
		out, fin, err = m.rnn.Forward(tp, x[:m.emb.dim], 1, 1, nil, state, false, nil)
		if err != nil {
			return nil, err
		}
		copy(state.H, fin.H)
		copy(state.C, fin.C)
		last = out
	}
	return res, nil
}

// pick draws a class from softmax(logits/temperature), or the argmax when
// temperature <= 0.
func pick[F Float](logits []F, temperature float64, probs []float64, rng *rand.Rand) int32 {
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	if temperature <= 0 || rng == nil {
		return int32(best)
	}
	var z float64
	m := float64(logits[best])
	for j, v := range logits {
		probs[j] = math.Exp((float64(v) - m) / temperature)
		z += probs[j]
	}
	u := rng.Float64() * z
	for j, p := range probs {
		u -= p
		if u <= 0 {
			return int32(j)
		}
	}
	return int32(len(probs) - 1)
}

// Decode greedily decodes every sequence of b for a VecToSeq or
// EncoderDecoder model: b holds the encoder inputs (Tokens or X with
// Lengths) or the conditioning vectors (X). Each output starts from BOS and
// ends at EOS (not included) or after maxLen tokens.
func (m *Model[F]) Decode(b *Batch[F], maxLen int) ([][]int32, error) {
	if m.dec == nil {
		return nil, errors.New("rnn: decoding needs a vec2seq or encoder-decoder model")
	}
	if maxLen <= 0 {
		return nil, fmt.Errorf("rnn: maxLen must be positive, got %d", maxLen)
	}
	if err := m.checkInputs(b); err != nil {
		return nil, err
	}
	tp := m.NewTape(0)
	tp.b = b
	if m.cfg.Shape == EncoderDecoder {
		_, fin, err := tp.encode(b, State[F]{})
		if err != nil {
			return nil, err
		}
		tp.encToDec(fin, b.B)
	} else {
		tp.vecToState(b)
	}
	state := tp.decInit.Clone()
	B, O, E := b.B, m.cfg.Outputs, m.decEmb.dim
	vals := m.Params.Value
	cur := make([]int32, B)
	for i := range cur {
		cur[i] = int32(m.cfg.BOS)
	}
	x := make([]F, B*E)
	logits := make([]F, B*O)
	outs := make([][]int32, B)
	done := make([]bool, B)
	left := B
	for step := 0; step < maxLen && left > 0; step++ {
		embedForward(m.decEmb, vals, cur, x)
		out, fin, err := m.dec.Forward(tp.dec, x, 1, B, nil, state, false, nil)
		if err != nil {
			return nil, err
		}
		copy(state.H, fin.H)
		copy(state.C, fin.C)
		linearForward(m.head, vals, out, B, logits)
		for i := 0; i < B; i++ {
			cur[i] = pick(logits[i*O:(i+1)*O], 0, nil, nil)
			if done[i] {
				continue
			}
			if int(cur[i]) == m.cfg.EOS {
				done[i] = true
				left--
				continue
			}
			outs[i] = append(outs[i], cur[i])
		}
	}
	return outs, nil
}
