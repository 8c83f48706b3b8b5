package rnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// StackConfig describes a stack of recurrent layers, the equivalent of
// PyTorch's nn.RNN/nn.LSTM/nn.GRU module.
type StackConfig struct {
	Cell          Cell    // cell type; default RNNTanh (the zero value)
	Input         int     // input features per step; required
	Hidden        int     // hidden units per direction; required
	Layers        int     // stacked layers; default 1
	Bidirectional bool    // run a second direction over the reversed sequence
	Dropout       float64 // dropout on the outputs of every layer but the last, training only; default 0
	// ForgetBias is added to the LSTM forget-gate bias (b_ih) at
	// initialisation; 1 is a common choice, 0 (the default) matches PyTorch.
	ForgetBias float64
	// IdentityInit initialises weight_hh of a ReLU RNN to the identity and its
	// biases to zero (Le, Jaitly and Hinton, "A Simple Way to Initialize
	// Recurrent Networks of Rectified Linear Units").
	IdentityInit bool
}

func (c *StackConfig) withDefaults() StackConfig {
	d := *c
	if d.Layers == 0 {
		d.Layers = 1
	}
	return d
}

// Validate reports the first impossible value in the configuration.
func (c *StackConfig) Validate() error {
	d := c.withDefaults()
	switch {
	case d.Cell < RNNTanh || d.Cell > GRU:
		return fmt.Errorf("rnn: invalid cell %d", int(d.Cell))
	case d.Input <= 0:
		return fmt.Errorf("rnn: input size must be positive, got %d", d.Input)
	case d.Hidden <= 0:
		return fmt.Errorf("rnn: hidden size must be positive, got %d", d.Hidden)
	case d.Layers < 1:
		return fmt.Errorf("rnn: layers must be at least 1, got %d", d.Layers)
	case d.Dropout < 0 || d.Dropout >= 1 || math.IsNaN(d.Dropout):
		return fmt.Errorf("rnn: dropout must be in [0, 1), got %v", d.Dropout)
	case d.IdentityInit && d.Cell != RNNReLU:
		return errors.New("rnn: identity initialisation applies to the ReLU RNN only")
	}
	return nil
}

// Stack is a stack of recurrent layers. Its parameters live in a Params
// vector shared with the rest of a model; it holds no activations.
type Stack[F Float] struct {
	vals   []F // the model's parameter values (shared, read-only in a step)
	cfg    StackConfig
	dirs   int
	layers [][]layer // [layer][direction]
}

// Dirs returns 2 for a bidirectional stack, else 1.
func (s *Stack[F]) Dirs() int { return s.dirs }

// Config returns the stack's configuration with defaults applied.
func (s *Stack[F]) Config() StackConfig { return s.cfg }

// OutputSize returns the features per step of the stack's output.
func (s *Stack[F]) OutputSize() int { return s.cfg.Hidden * s.dirs }

// StateSize returns the length of one state tensor [Layers*Dirs, B, H] for a
// batch of b sequences.
func (s *Stack[F]) StateSize(b int) int { return s.cfg.Layers * s.dirs * b * s.cfg.Hidden }

// newStack registers the stack's parameters under prefix ("rnn.") with
// PyTorch names: weight_ih_l{k}[_reverse], weight_hh_l{k}, bias_ih_l{k},
// bias_hh_l{k}.
func newStack[F Float](cfg StackConfig, prefix string, b *builder) (*Stack[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Stack[F]{cfg: cfg, dirs: 1}
	if cfg.Bidirectional {
		s.dirs = 2
	}
	G := cfg.Cell.gates() * cfg.Hidden
	for k := 0; k < cfg.Layers; k++ {
		in := cfg.Input
		if k > 0 {
			in = cfg.Hidden * s.dirs
		}
		var dirs []layer
		for d := 0; d < s.dirs; d++ {
			sfx := fmt.Sprintf("_l%d", k)
			if d == 1 {
				sfx += "_reverse"
			}
			l := layer{cell: cfg.Cell, in: in, hid: cfg.Hidden}
			l.wih = b.add(prefix+"weight_ih"+sfx, G, in)
			l.whh = b.add(prefix+"weight_hh"+sfx, G, cfg.Hidden)
			l.bih = b.add(prefix+"bias_ih"+sfx, G)
			l.bhh = b.add(prefix+"bias_hh"+sfx, G)
			dirs = append(dirs, l)
		}
		s.layers = append(s.layers, dirs)
	}
	return s, nil
}

// init binds the stack to vals and fills its's parameters: U(-1/sqrt(H), 1/sqrt(H)) as PyTorch,
// then the optional forget bias and identity initialisation.
func (s *Stack[F]) init(vals []F, rng *rand.Rand) {
	H := s.cfg.Hidden
	k := 1 / math.Sqrt(float64(H))
	G := s.cfg.Cell.gates() * H
	for _, dirs := range s.layers {
		for _, l := range dirs {
			for _, p := range [][]F{view(vals, l.wih, G*l.in), view(vals, l.whh, G*H), view(vals, l.bih, G), view(vals, l.bhh, G)} {
				uniform(p, k, rng)
			}
			if s.cfg.Cell == LSTM && s.cfg.ForgetBias != 0 {
				fb := view(vals, l.bih, G)[H : 2*H]
				for j := range fb {
					fb[j] += F(s.cfg.ForgetBias)
				}
			}
			if s.cfg.IdentityInit {
				w := view(vals, l.whh, H*H)
				clear(w)
				for j := 0; j < H; j++ {
					w[j*H+j] = 1
				}
				clear(view(vals, l.bih, H))
				clear(view(vals, l.bhh, H))
			}
		}
	}
}

// uniform fills p with U(-k, k).
func uniform[F Float](p []F, k float64, rng *rand.Rand) {
	for i := range p {
		p[i] = F((2*rng.Float64() - 1) * k)
	}
}

// State is the recurrent state of a stack for a batch: H (and C for LSTM),
// each laid out [Layers*Dirs, B, Hidden] as PyTorch's h_n and c_n.
type State[F Float] struct {
	H, C []F
}

// Clone returns a deep copy of the state.
func (s State[F]) Clone() State[F] {
	return State[F]{H: append([]F(nil), s.H...), C: append([]F(nil), s.C...)}
}

// StackTape holds the activations of one forward pass of a Stack, for the
// backward pass, and the scratch of both. A tape belongs to one goroutine;
// reuse it across steps to avoid allocation.
type StackTape[F Float] struct {
	T, B    int
	lengths []int
	tapes   [][]layerTape[F] // [layer][dir]
	ins     [][]F            // input of each layer (after dropout), [T*B*in]
	outs    [][]F            // concatenated output of each layer
	masks   [][]F            // dropout scale per element of ins[k], k >= 1
	rev     [][]F            // reversed input per layer (bidirectional)
	dIn     []F              // gradient scratch, size of the largest layer input
	dOut    []F              // gradient of a layer's concatenated output
	dRev    []F              // reversed gradient scratch
	dx      []F              // gradient of the stack input
	final   State[F]
	dInit   State[F]
	tok     []int32 // token input of the first layer (forwardTokens)
	revTok  []int32
	emb     int // offset of the embedding table
	vocab   int
	// ready, when set, is told after each layer's backward pass that the
	// gradients from that layer's first parameter on are final (see
	// Trainer.ComputeReady).
	ready func(lo int)
}

// NewTape returns an empty tape for s.
func (s *Stack[F]) NewTape() *StackTape[F] {
	tp := &StackTape[F]{}
	tp.tapes = make([][]layerTape[F], len(s.layers))
	for k := range tp.tapes {
		tp.tapes[k] = make([]layerTape[F], s.dirs)
	}
	tp.ins = make([][]F, len(s.layers))
	tp.outs = make([][]F, len(s.layers))
	tp.masks = make([][]F, len(s.layers))
	tp.rev = make([][]F, len(s.layers))
	return tp
}

// checkBatch validates the shape of a batch against the stack.
func checkBatch(T, B, xLen, in int, lengths []int) error {
	if T <= 0 || B <= 0 {
		return fmt.Errorf("rnn: empty batch (T=%d, B=%d)", T, B)
	}
	if xLen != T*B*in {
		return fmt.Errorf("rnn: input has %d values, want T*B*in = %d*%d*%d = %d", xLen, T, B, in, T*B*in)
	}
	if lengths != nil {
		if len(lengths) != B {
			return fmt.Errorf("rnn: %d lengths for a batch of %d", len(lengths), B)
		}
		for b, L := range lengths {
			if L < 0 || L > T {
				return fmt.Errorf("rnn: sequence %d has length %d, outside [0, T=%d]", b, L, T)
			}
		}
	}
	return nil
}

// Forward runs the stack over x [T, B, Input] (time-major). lengths gives the
// valid steps of each sequence (nil: all T); padded steps output zeros and
// keep the state. init is the initial state (nil fields mean zeros). When
// train is set and the stack has dropout, the masks are drawn from rng. It
// returns the last layer's output [T, B, Hidden*Dirs] and the final state;
// both are views of tape buffers, valid until the tape's next Forward.
func (s *Stack[F]) Forward(tp *StackTape[F], x []F, T, B int, lengths []int, init State[F], train bool, rng *rand.Rand) ([]F, State[F], error) {
	if err := checkBatch(T, B, len(x), s.cfg.Input, lengths); err != nil {
		return nil, State[F]{}, err
	}
	tp.tok = nil
	return s.forward(tp, x, T, B, lengths, init, train, rng)
}

// forwardTokens is Forward for a first layer that reads token ids through
// the embedding table at offset emb of the parameter vector (vocab rows of
// Input features). Backward with needInput then adds the table's gradient
// into grads instead of returning an input gradient.
func (s *Stack[F]) forwardTokens(tp *StackTape[F], tokens []int32, emb, vocab, T, B int, lengths []int, init State[F], train bool, rng *rand.Rand) ([]F, State[F], error) {
	if err := checkBatch(T, B, len(tokens)*s.cfg.Input, s.cfg.Input, lengths); err != nil {
		return nil, State[F]{}, err
	}
	tp.tok, tp.emb, tp.vocab = tokens, emb, vocab
	return s.forward(tp, nil, T, B, lengths, init, train, rng)
}

func (s *Stack[F]) forward(tp *StackTape[F], x []F, T, B int, lengths []int, init State[F], train bool, rng *rand.Rand) ([]F, State[F], error) {
	n := s.StateSize(B)
	if init.H != nil && len(init.H) != n {
		return nil, State[F]{}, fmt.Errorf("rnn: initial state h has %d values, want layers*dirs*B*H = %d", len(init.H), n)
	}
	if init.C != nil && (s.cfg.Cell != LSTM || len(init.C) != n) {
		return nil, State[F]{}, fmt.Errorf("rnn: initial cell state c has %d values, want %d (LSTM only)", len(init.C), n)
	}
	if train && s.cfg.Dropout > 0 && s.cfg.Layers > 1 && rng == nil {
		return nil, State[F]{}, errors.New("rnn: training with dropout needs a random source")
	}
	H, D := s.cfg.Hidden, s.dirs
	tp.T, tp.B, tp.lengths = T, B, lengths
	tp.final.H = grow(tp.final.H, n)
	if s.cfg.Cell == LSTM {
		tp.final.C = grow(tp.final.C, n)
	} else {
		tp.final.C = nil
	}
	in := x
	for k, dirs := range s.layers {
		tp.ins[k] = in
		if D == 2 {
			tp.outs[k] = grow(tp.outs[k], T*B*2*H)
		}
		for d := range dirs {
			l := &dirs[d]
			lt := &tp.tapes[k][d]
			sl := (k*D + d) * B * H
			var h0, c0 []F
			if init.H != nil {
				h0 = init.H[sl : sl+B*H]
			}
			if init.C != nil {
				c0 = init.C[sl : sl+B*H]
			}
			xin := in
			lt.tok = nil
			if k == 0 && tp.tok != nil {
				lt.tok, lt.emb, lt.V = tp.tok, tp.emb, tp.vocab
				if d == 1 {
					tp.revTok = grow(tp.revTok, len(tp.tok))
					reverseTokens(tp.revTok, tp.tok, T, B, lengths)
					lt.tok = tp.revTok
				}
			} else if d == 1 {
				tp.rev[k] = grow(tp.rev[k], len(in))
				reverseSeq(tp.rev[k], in, T, B, l.in, lengths)
				xin = tp.rev[k]
			}
			forward(l, s.vals, lt, xin, T, B, lengths, h0, c0)
			copy(tp.final.H[sl:sl+B*H], lt.hs[T*B*H:(T+1)*B*H])
			if s.cfg.Cell == LSTM {
				copy(tp.final.C[sl:sl+B*H], lt.cs[T*B*H:(T+1)*B*H])
			}
			if D == 1 {
				tp.outs[k] = lt.out
			} else {
				interleave(tp.outs[k], lt.out, T, B, H, d, lengths)
			}
		}
		in = tp.outs[k]
		if k+1 < len(s.layers) && train && s.cfg.Dropout > 0 {
			tp.masks[k+1] = grow(tp.masks[k+1], len(in))
			tp.ins[k+1] = grow(tp.ins[k+1], len(in))
			dropout(tp.ins[k+1], tp.masks[k+1], in, s.cfg.Dropout, rng)
			in = tp.ins[k+1]
		} else if k+1 < len(s.layers) {
			tp.masks[k+1] = tp.masks[k+1][:0]
		}
	}
	return in, tp.final, nil
}

// Backward propagates dOut [T, B, Hidden*Dirs] (nil for none) and the
// gradient of the final state (nil fields for none) through the window of
// the tape's last Forward. Parameter gradients are added into grads (a
// vector laid out like the model's Params). When needInput is set it
// returns the gradient of the input [T, B, Input]. It always returns the
// gradient of the initial state. Results are views of tape buffers.
func (s *Stack[F]) Backward(tp *StackTape[F], grads, dOut []F, dFinal State[F], needInput bool) (dx []F, dInit State[F]) {
	T, B, H, D := tp.T, tp.B, s.cfg.Hidden, s.dirs
	n := s.StateSize(B)
	tp.dInit.H = grow(tp.dInit.H, n)
	if s.cfg.Cell == LSTM {
		tp.dInit.C = grow(tp.dInit.C, n)
	}
	dcur := dOut
	for k := len(s.layers) - 1; k >= 0; k-- {
		dirs := s.layers[k]
		needIn := k > 0 || needInput
		tokens := k == 0 && tp.tok != nil
		inSize := dirs[0].in
		var acc []F
		if D == 2 && needIn && !tokens {
			tp.dIn, tp.dOut = tp.dOut, tp.dIn // dcur may live in tp.dIn
			tp.dIn = grow(tp.dIn, T*B*inSize)
			clear(tp.dIn)
			acc = tp.dIn
		}
		for d := range dirs {
			l := &dirs[d]
			lt := &tp.tapes[k][d]
			sl := (k*D + d) * B * H
			dOutDir := dcur
			if D == 2 && dcur != nil {
				tp.dRev = grow(tp.dRev, T*B*H)
				deinterleave(tp.dRev, dcur, T, B, H, d, tp.lengths)
				dOutDir = tp.dRev
			}
			var dhT, dcT []F
			if dFinal.H != nil {
				dhT = dFinal.H[sl : sl+B*H]
			}
			if dFinal.C != nil {
				dcT = dFinal.C[sl : sl+B*H]
			}
			dh0, dc0 := backward(l, s.vals, grads, lt, dOutDir, dhT, dcT, needIn)
			copy(tp.dInit.H[sl:sl+B*H], dh0)
			if dc0 != nil {
				copy(tp.dInit.C[sl:sl+B*H], dc0)
			}
			if !needIn || tokens {
				continue
			}
			if D == 1 {
				acc = lt.dx
			} else if d == 0 {
				addTo(acc, lt.dx)
			} else {
				addReversed(acc, lt.dx, T, B, inSize, tp.lengths)
			}
		}
		if tp.ready != nil {
			tp.ready(dirs[0].wih) // the layer's parameters (and a fused table) are done
		}
		if !needIn || tokens {
			break
		}
		if k > 0 && len(tp.masks[k]) > 0 {
			for i, m := range tp.masks[k] {
				acc[i] *= m
			}
		}
		dcur = acc
	}
	if needInput && tp.tok == nil {
		return dcur, tp.dInit
	}
	return nil, tp.dInit
}

// reverseTokens is reverseSeq for token ids (padding reads token 0).
func reverseTokens(dst, src []int32, T, B int, lengths []int) {
	for b := 0; b < B; b++ {
		L := seqLen(lengths, T, b)
		for t := 0; t < T; t++ {
			if t >= L {
				dst[t*B+b] = 0
				continue
			}
			dst[t*B+b] = src[(L-1-t)*B+b]
		}
	}
}

// seqLen returns the valid length of sequence b.
func seqLen(lengths []int, T, b int) int {
	if lengths == nil {
		return T
	}
	return lengths[b]
}

// reverseSeq writes each sequence of src [T, B, n] reversed over its valid
// length into dst; padded steps are zero.
func reverseSeq[F Float](dst, src []F, T, B, n int, lengths []int) {
	for b := 0; b < B; b++ {
		L := seqLen(lengths, T, b)
		for t := 0; t < T; t++ {
			d := dst[(t*B+b)*n : (t*B+b+1)*n]
			if t >= L {
				clear(d)
				continue
			}
			s := L - 1 - t
			copy(d, src[(s*B+b)*n:(s*B+b+1)*n])
		}
	}
}

// interleave writes direction d's output src [T, B, H] into the
// concatenated output dst [T, B, 2H], undoing the time reversal for d == 1.
func interleave[F Float](dst, src []F, T, B, H, d int, lengths []int) {
	for b := 0; b < B; b++ {
		L := seqLen(lengths, T, b)
		for t := 0; t < T; t++ {
			o := dst[(t*B+b)*2*H+d*H : (t*B+b)*2*H+(d+1)*H]
			s := t
			if d == 1 {
				if t >= L {
					clear(o)
					continue
				}
				s = L - 1 - t
			}
			copy(o, src[(s*B+b)*H:(s*B+b+1)*H])
		}
	}
}

// deinterleave is the adjoint of interleave: it extracts direction d's part
// of src [T, B, 2H] into dst [T, B, H] in that direction's time order.
func deinterleave[F Float](dst, src []F, T, B, H, d int, lengths []int) {
	for b := 0; b < B; b++ {
		L := seqLen(lengths, T, b)
		for t := 0; t < T; t++ {
			o := dst[(t*B+b)*H : (t*B+b+1)*H]
			s := t
			if d == 1 {
				if t >= L {
					clear(o)
					continue
				}
				s = L - 1 - t
			}
			copy(o, src[(s*B+b)*2*H+d*H:(s*B+b)*2*H+(d+1)*H])
		}
	}
}

// addReversed adds the reversed-time gradient src [T, B, n] into dst.
func addReversed[F Float](dst, src []F, T, B, n int, lengths []int) {
	for b := 0; b < B; b++ {
		L := seqLen(lengths, T, b)
		for t := 0; t < L; t++ {
			s := L - 1 - t
			addTo(dst[(s*B+b)*n:(s*B+b+1)*n], src[(t*B+b)*n:(t*B+b+1)*n])
		}
	}
}

// addTo adds src into dst element-wise.
func addTo[F Float](dst, src []F) {
	for i, v := range src[:len(dst)] {
		dst[i] += v
	}
}

// dropout writes src*mask into dst, with mask 0 (probability p) or 1/(1-p).
func dropout[F Float](dst, mask, src []F, p float64, rng *rand.Rand) {
	keep := F(1 / (1 - p))
	for i := range src {
		if rng.Float64() < p {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
		dst[i] = src[i] * mask[i]
	}
}
