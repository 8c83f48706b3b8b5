package rnn

import (
	"fmt"
	"math"
)

// embedding maps token ids to rows of a [Vocab, Dim] table.
type embedding struct {
	vocab, dim int
	w          int // offset of the table
}

// checkTokens reports the first token outside [0, vocab).
func (e *embedding) checkTokens(tokens []int32) error {
	for i, t := range tokens {
		if t < 0 || int(t) >= e.vocab {
			return fmt.Errorf("rnn: token %d at position %d is outside the vocabulary [0, %d)", t, i, e.vocab)
		}
	}
	return nil
}

// embedForward gathers the table rows of tokens into out [len(tokens), dim].
func embedForward[F Float](e *embedding, vals []F, tokens []int32, out []F) {
	tab := view(vals, e.w, e.vocab*e.dim)
	for i, t := range tokens {
		copy(out[i*e.dim:(i+1)*e.dim], tab[int(t)*e.dim:(int(t)+1)*e.dim])
	}
}

// embedBackward scatters dOut [len(tokens), dim] into the table gradient.
func embedBackward[F Float](e *embedding, grads []F, tokens []int32, dOut []F) {
	tab := view(grads, e.w, e.vocab*e.dim)
	for i, t := range tokens {
		addTo(tab[int(t)*e.dim:(int(t)+1)*e.dim], dOut[i*e.dim:(i+1)*e.dim])
	}
}

// linear is y = x W^T + b with W [out, in] and b [out], as nn.Linear.
type linear struct {
	in, out int
	w, b    int // offsets
}

// linearForward computes y [n, out] from x [n, in].
func linearForward[F Float](l *linear, vals []F, x []F, n int, y []F) {
	fillRows(y[:n*l.out], n, view(vals, l.b, l.out))
	gemm(false, true, n, l.out, l.in, 1, x, l.in, view(vals, l.w, l.out*l.in), l.in, 1, y, l.out)
}

// linearBackward adds the weight and bias gradients for dy [n, out] and, if
// dx is not nil, writes the input gradient dx [n, in].
func linearBackward[F Float](l *linear, vals, grads []F, x, dy []F, n int, dx []F) {
	gemm(true, false, l.out, l.in, n, 1, dy, l.out, x, l.in, 1, view(grads, l.w, l.out*l.in), l.in)
	addColSums(view(grads, l.b, l.out), dy[:n*l.out], n)
	if dx != nil {
		gemm(false, false, n, l.in, l.out, 1, dy, l.out, view(vals, l.w, l.out*l.in), l.in, 0, dx, l.in)
	}
}

// initLinear fills W and b with U(-1/sqrt(in), 1/sqrt(in)), as nn.Linear.
func initLinear[F Float](l *linear, vals []F, rng interface{ Float64() float64 }) {
	k := 1 / math.Sqrt(float64(l.in))
	for _, p := range [][]F{view(vals, l.w, l.out*l.in), view(vals, l.b, l.out)} {
		for i := range p {
			p[i] = F((2*rng.Float64() - 1) * k)
		}
	}
}

// Ignore marks a target that contributes nothing to the loss (padding).
const Ignore = -1

// softmaxCrossEntropy computes the summed cross-entropy of logits [n, V]
// against targets (Ignore skips a row) and writes the gradient of that sum
// into dLogits (zero rows for ignored targets). It returns the loss sum in
// float64 and the number of counted rows.
func softmaxCrossEntropy[F Float](logits []F, n, V int, targets []int32, dLogits []F) (float64, int, error) {
	var sum float64
	count := 0
	for r := 0; r < n; r++ {
		row := logits[r*V : (r+1)*V]
		d := dLogits[r*V : (r+1)*V]
		t := targets[r]
		if t == Ignore {
			clear(d)
			continue
		}
		if t < 0 || int(t) >= V {
			return 0, 0, fmt.Errorf("rnn: target %d at row %d is outside [0, %d)", t, r, V)
		}
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		for j, v := range row {
			d[j] = v - m
		}
		expSlice(d)
		var z F
		for _, e := range d {
			z += e
		}
		inv := 1 / z
		for j := range d {
			d[j] *= inv
		}
		sum += float64(m) + math.Log(float64(z)) - float64(row[t])
		d[t] -= 1
		count++
	}
	return sum, count, nil
}

// squaredError computes sum((y-t)^2) over the rows whose mask is set (nil:
// all) and writes its gradient 2(y-t) into dy. Rows have width w.
func squaredError[F Float](y, target []F, n, w int, rowMask []bool, dy []F) (float64, int) {
	var sum float64
	count := 0
	for r := 0; r < n; r++ {
		yr, tr, dr := y[r*w:(r+1)*w], target[r*w:(r+1)*w], dy[r*w:(r+1)*w]
		if rowMask != nil && !rowMask[r] {
			clear(dr)
			continue
		}
		for j := range yr {
			e := yr[j] - tr[j]
			sum += float64(e) * float64(e)
			dr[j] = 2 * e
		}
		count += w
	}
	return sum, count
}
