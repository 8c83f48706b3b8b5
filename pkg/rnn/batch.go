package rnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Batch is one minibatch, time-major. Which fields are used depends on the
// model's shape:
//
//	SeqToSeq:       Tokens or X over T steps; Targets [T*B] or Y [T*B*Outputs]
//	SeqToVec:       Tokens or X over T steps; Targets [B] or Y [B*Outputs]
//	VecToSeq:       X [B*Input]; DecIn and Targets [TD*B]
//	EncoderDecoder: Tokens or X over T steps; DecIn and Targets [TD*B]
//
// Lengths and DecLengths give the valid steps per sequence (nil: all);
// targets at padded steps are ignored whatever their value.
type Batch[F Float] struct {
	T, B       int
	Tokens     []int32 // [T*B] input token ids (models with Vocab > 0)
	X          []F     // [T*B*Input] dense inputs, or [B*Input] for VecToSeq
	Lengths    []int   // valid input steps per sequence
	Targets    []int32 // class targets; Ignore skips one
	Y          []F     // regression targets
	TD         int     // decoder steps
	DecIn      []int32 // [TD*B] decoder inputs (BOS, then the targets shifted)
	DecLengths []int   // valid decoder steps per sequence
}

// Result is the outcome of a forward pass.
type Result[F Float] struct {
	Loss  float64  // summed loss over the counted targets
	Count int      // number of targets counted (values, for MSE)
	Final State[F] // final state of the (encoder) stack; view of tape memory
}

// Mean returns the mean loss per counted target.
func (r Result[F]) Mean() float64 {
	if r.Count == 0 {
		return 0
	}
	return r.Loss / float64(r.Count)
}

// ErrNonFinite is returned when a loss is NaN or infinite.
var ErrNonFinite = errors.New("rnn: loss is not finite")

// Tape holds one forward pass of a Model and the scratch of its backward
// pass. It belongs to one goroutine; reuse it for every step.
type Tape[F Float] struct {
	m        *Model[F]
	b        *Batch[F]
	enc, dec *StackTape[F]
	x, decX  []F
	out      []F // stack output read by the head
	rows     int // head rows
	feat     []F // SeqToVec head input [B*Hd]
	logits   []F
	dLogits  []F
	dHead    []F
	tgt      []int32
	rowMask  []bool
	bridge   []F // VecToSeq tanh(bridge) [B*L*H]
	decInit  State[F]
	dFinal   State[F]
	rng      *rand.Rand
	train    bool
	fused    bool // the last encode used the fused embedding path
}

// NewTape returns a tape for m. seed drives dropout masks.
func (m *Model[F]) NewTape(seed uint64) *Tape[F] {
	tp := &Tape[F]{m: m, rng: rand.New(rand.NewPCG(seed, 0xd209))}
	if m.rnn != nil {
		tp.enc = m.rnn.NewTape()
	}
	if m.dec != nil {
		tp.dec = m.dec.NewTape()
	}
	return tp
}

// Forward runs the model on b from the initial state init (zero fields mean
// zeros; it applies to the stack that reads the input) and returns the
// summed loss. train enables dropout.
func (tp *Tape[F]) Forward(b *Batch[F], init State[F], train bool) (Result[F], error) {
	var res Result[F]
	if err := tp.m.checkBatch(b, true); err != nil {
		return res, err
	}
	fin, err := tp.body(b, init, train)
	if err != nil {
		return res, err
	}
	res.Final = fin
	loss, count, err := tp.head()
	if err != nil {
		return res, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return res, fmt.Errorf("%w (sum %v over %d targets)", ErrNonFinite, loss, count)
	}
	res.Loss, res.Count = loss, count
	return res, nil
}

// Predict runs the model on b without targets (in evaluation mode) and
// returns the head's outputs: logits for CrossEntropy, values for MSE,
// [T*B, Outputs] for SeqToSeq and the decoders, [B, Outputs] for SeqToVec;
// and the final state of the stack that reads the input. Both are views of
// tape memory.
func (tp *Tape[F]) Predict(b *Batch[F], init State[F]) ([]F, State[F], error) {
	if err := tp.m.checkBatch(b, false); err != nil {
		return nil, State[F]{}, err
	}
	fin, err := tp.body(b, init, false)
	if err != nil {
		return nil, State[F]{}, err
	}
	m := tp.m
	tp.logits = grow(tp.logits, tp.rows*m.cfg.Outputs)
	linearForward(m.head, m.Params.Value, tp.out, tp.rows, tp.logits)
	return tp.logits, fin, nil
}

// body runs everything before the head and leaves its input in tp.out.
func (tp *Tape[F]) body(b *Batch[F], init State[F], train bool) (State[F], error) {
	m := tp.m
	tp.b, tp.train = b, train
	var fin State[F]
	switch m.cfg.Shape {
	case SeqToSeq, SeqToVec, EncoderDecoder:
		out, f, err := tp.encode(b, init)
		if err != nil {
			return fin, err
		}
		fin = f
		switch m.cfg.Shape {
		case SeqToSeq:
			tp.out, tp.rows = out, b.T*b.B
			tp.maskSteps(b.T, b.B, b.Lengths, b.Targets)
		case SeqToVec:
			tp.feat = grow(tp.feat, b.B*m.rnn.OutputSize())
			topStates(tp.feat, f.H, m.rnn, b.B)
			tp.out, tp.rows = tp.feat, b.B
			tp.tgt, tp.rowMask = b.Targets, nil
		case EncoderDecoder:
			tp.encToDec(f, b.B)
			return fin, tp.decode(b)
		}
	case VecToSeq:
		tp.vecToState(b)
		return fin, tp.decode(b)
	}
	return fin, nil
}

// encode runs the input stack. Token inputs from a vocabulary no larger
// than the batch go through the stack's fused embedding path (the table is
// projected once instead of every row); larger vocabularies are gathered.
func (tp *Tape[F]) encode(b *Batch[F], init State[F]) ([]F, State[F], error) {
	m := tp.m
	tp.fused = m.emb != nil && m.emb.vocab <= b.T*b.B
	if tp.fused {
		if err := m.emb.checkTokens(b.Tokens); err != nil {
			return nil, State[F]{}, err
		}
		return m.rnn.forwardTokens(tp.enc, b.Tokens, m.emb.w, m.emb.vocab, b.T, b.B, b.Lengths, init, tp.train, tp.rng)
	}
	x, err := tp.input(b)
	if err != nil {
		return nil, State[F]{}, err
	}
	return m.rnn.Forward(tp.enc, x, b.T, b.B, b.Lengths, init, tp.train, tp.rng)
}

// input embeds or returns the encoder input.
func (tp *Tape[F]) input(b *Batch[F]) ([]F, error) {
	m := tp.m
	if m.emb == nil {
		return b.X, nil
	}
	if err := m.emb.checkTokens(b.Tokens); err != nil {
		return nil, err
	}
	tp.x = grow(tp.x, len(b.Tokens)*m.emb.dim)
	embedForward(m.emb, m.Params.Value, b.Tokens, tp.x)
	return tp.x, nil
}

// maskSteps sets the head targets to tgt with padded steps ignored.
func (tp *Tape[F]) maskSteps(T, B int, lengths []int, tgt []int32) {
	tp.rowMask = nil
	if lengths == nil {
		tp.tgt = tgt
		return
	}
	if tp.m.cfg.Loss == MSE {
		tp.rowMask = grow(tp.rowMask, T*B)
		for t := 0; t < T; t++ {
			for b := 0; b < B; b++ {
				tp.rowMask[t*B+b] = t < lengths[b]
			}
		}
		return
	}
	tp.tgt = grow(tp.tgt, T*B)
	for t := 0; t < T; t++ {
		for b := 0; b < B; b++ {
			if t < lengths[b] {
				tp.tgt[t*B+b] = tgt[t*B+b]
			} else {
				tp.tgt[t*B+b] = Ignore
			}
		}
	}
}

// topStates gathers the final hidden state of the top layer, both
// directions concatenated, into feat [B, H*Dirs].
func topStates[F Float](feat, h []F, s *Stack[F], B int) {
	H, D, L := s.cfg.Hidden, s.dirs, s.cfg.Layers
	for d := 0; d < D; d++ {
		src := h[((L-1)*D+d)*B*H:]
		for b := 0; b < B; b++ {
			copy(feat[b*D*H+d*H:b*D*H+(d+1)*H], src[b*H:(b+1)*H])
		}
	}
}

// encToDec sets the decoder's initial state from the encoder's final state,
// summing the two directions of a bidirectional encoder.
func (tp *Tape[F]) encToDec(fin State[F], B int) {
	s := tp.m.rnn
	H, D, L := s.cfg.Hidden, s.dirs, s.cfg.Layers
	n := L * B * H
	tp.decInit.H = grow(tp.decInit.H, n)
	sum := func(dst, src []F) {
		for l := 0; l < L; l++ {
			o := dst[l*B*H : (l+1)*B*H]
			copy(o, src[l*D*B*H:(l*D+1)*B*H])
			if D == 2 {
				addTo(o, src[(l*D+1)*B*H:(l*D+2)*B*H])
			}
		}
	}
	sum(tp.decInit.H, fin.H)
	tp.decInit.C = nil
	if fin.C != nil {
		tp.decInit.C = grow(tp.decInit.C, n)
		sum(tp.decInit.C, fin.C)
	}
}

// vecToState computes the decoder's initial state tanh(bridge(x)).
func (tp *Tape[F]) vecToState(b *Batch[F]) {
	m := tp.m
	L, H := m.cfg.Layers, m.cfg.Hidden
	tp.bridge = grow(tp.bridge, b.B*L*H)
	linearForward(m.bridge, m.Params.Value, b.X, b.B, tp.bridge)
	for i, v := range tp.bridge {
		tp.bridge[i] = tanh(v)
	}
	// [B, L*H] -> [L, B, H]
	tp.decInit.H = grow(tp.decInit.H, L*b.B*H)
	for bb := 0; bb < b.B; bb++ {
		for l := 0; l < L; l++ {
			copy(tp.decInit.H[(l*b.B+bb)*H:(l*b.B+bb+1)*H], tp.bridge[bb*L*H+l*H:bb*L*H+(l+1)*H])
		}
	}
	tp.decInit.C = nil
}

// decode runs the decoder with teacher forcing over b.DecIn.
func (tp *Tape[F]) decode(b *Batch[F]) error {
	m := tp.m
	if err := m.decEmb.checkTokens(b.DecIn); err != nil {
		return fmt.Errorf("decoder input: %w", err)
	}
	tp.decX = grow(tp.decX, len(b.DecIn)*m.decEmb.dim)
	embedForward(m.decEmb, m.Params.Value, b.DecIn, tp.decX)
	out, _, err := m.dec.Forward(tp.dec, tp.decX, b.TD, b.B, b.DecLengths, tp.decInit, tp.train, tp.rng)
	if err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	tp.out, tp.rows = out, b.TD*b.B
	tp.maskSteps(b.TD, b.B, b.DecLengths, b.Targets)
	return nil
}

// head applies the linear head and the loss to tp.out.
func (tp *Tape[F]) head() (float64, int, error) {
	m := tp.m
	O := m.cfg.Outputs
	tp.logits = grow(tp.logits, tp.rows*O)
	tp.dLogits = grow(tp.dLogits, tp.rows*O)
	linearForward(m.head, m.Params.Value, tp.out, tp.rows, tp.logits)
	if m.cfg.Loss == MSE {
		s, c := squaredError(tp.logits, tp.b.Y, tp.rows, O, tp.rowMask, tp.dLogits)
		return s, c, nil
	}
	return softmaxCrossEntropy(tp.logits, tp.rows, O, tp.tgt, tp.dLogits)
}

// Backward adds the gradient of the summed loss of the last Forward into
// grads (a vector laid out like m.Params.Grad; pass m.Params.Grad itself
// for a single-threaded step). It returns the gradient of the initial
// state, which truncated BPTT discards.
func (tp *Tape[F]) Backward(grads []F) State[F] { return tp.backward(grads, nil) }

// backward is Backward that calls ready(lo), when set, each time the
// gradients in grads[lo:] are final: backward produces them from the end of
// the parameter vector down (head, top layer, ..., embedding), at the
// offsets Model.ReadyOffsets lists, and ends with ready(0).
func (tp *Tape[F]) backward(grads []F, ready func(lo int)) State[F] {
	last := tp.m.Params.Len()
	mark := func(lo int) {
		if ready != nil && lo < last {
			last = lo
			ready(lo)
		}
	}
	var stackReady func(int)
	if ready != nil {
		stackReady = mark
	}
	for _, s := range []*StackTape[F]{tp.enc, tp.dec} {
		if s != nil {
			s.ready = stackReady
		}
	}
	d := tp.backwardParts(grads, mark)
	mark(0)
	return d
}

func (tp *Tape[F]) backwardParts(grads []F, mark func(lo int)) State[F] {
	m, b := tp.m, tp.b
	vals := m.Params.Value
	tp.dHead = grow(tp.dHead, tp.rows*m.head.in)
	linearBackward(m.head, vals, grads, tp.out, tp.dLogits, tp.rows, tp.dHead)
	mark(m.head.w)
	switch m.cfg.Shape {
	case SeqToSeq:
		dx, dInit := m.rnn.Backward(tp.enc, grads, tp.dHead, State[F]{}, m.emb != nil)
		tp.embedBack(grads, dx)
		return dInit
	case SeqToVec:
		s := m.rnn
		tp.dFinal.H = grow(tp.dFinal.H, s.StateSize(b.B))
		clear(tp.dFinal.H)
		scatterTop(tp.dFinal.H, tp.dHead, s, b.B)
		dx, dInit := s.Backward(tp.enc, grads, nil, State[F]{H: tp.dFinal.H}, m.emb != nil)
		tp.embedBack(grads, dx)
		return dInit
	case EncoderDecoder:
		dDec := tp.decBack(grads)
		mark(m.decEmb.w)
		s := m.rnn
		tp.decToEnc(dDec, b.B)
		dx, dInit := s.Backward(tp.enc, grads, nil, tp.dFinal, m.emb != nil)
		tp.embedBack(grads, dx)
		return dInit
	case VecToSeq:
		dDec := tp.decBack(grads)
		mark(m.decEmb.w)
		L, H := m.cfg.Layers, m.cfg.Hidden
		// d bridge pre-activation = dh0 * (1 - tanh^2), [L,B,H] -> [B, L*H]
		d := grow(tp.dHead, b.B*L*H)
		for bb := 0; bb < b.B; bb++ {
			for l := 0; l < L; l++ {
				for j := 0; j < H; j++ {
					y := tp.bridge[bb*L*H+l*H+j]
					d[bb*L*H+l*H+j] = dDec.H[(l*b.B+bb)*H+j] * (1 - y*y)
				}
			}
		}
		linearBackward(m.bridge, vals, grads, b.X, d, b.B, nil)
		return State[F]{}
	}
	return State[F]{}
}

func (tp *Tape[F]) embedBack(grads, dx []F) {
	if tp.m.emb != nil && !tp.fused {
		embedBackward(tp.m.emb, grads, tp.b.Tokens, dx)
	}
}

// decBack runs the decoder's backward pass and returns its initial-state
// gradient.
func (tp *Tape[F]) decBack(grads []F) State[F] {
	m := tp.m
	dx, dInit := m.dec.Backward(tp.dec, grads, tp.dHead, State[F]{}, true)
	embedBackward(m.decEmb, grads, tp.b.DecIn, dx)
	return dInit
}

// decToEnc maps the decoder's initial-state gradient to the encoder's final
// state (both directions receive it, the adjoint of the sum).
func (tp *Tape[F]) decToEnc(d State[F], B int) {
	s := tp.m.rnn
	H, D, L := s.cfg.Hidden, s.dirs, s.cfg.Layers
	n := s.StateSize(B)
	spread := func(dst, src []F) {
		for l := 0; l < L; l++ {
			for k := 0; k < D; k++ {
				copy(dst[(l*D+k)*B*H:(l*D+k+1)*B*H], src[l*B*H:(l+1)*B*H])
			}
		}
	}
	tp.dFinal.H = grow(tp.dFinal.H, n)
	spread(tp.dFinal.H, d.H)
	tp.dFinal.C = nil
	if d.C != nil {
		tp.dFinal.C = grow(tp.dFinal.C, n)
		spread(tp.dFinal.C, d.C)
	}
}

// scatterTop is the adjoint of topStates.
func scatterTop[F Float](h, feat []F, s *Stack[F], B int) {
	H, D, L := s.cfg.Hidden, s.dirs, s.cfg.Layers
	for d := 0; d < D; d++ {
		dst := h[((L-1)*D+d)*B*H:]
		for b := 0; b < B; b++ {
			copy(dst[b*H:(b+1)*H], feat[b*D*H+d*H:b*D*H+(d+1)*H])
		}
	}
}

// checkBatch validates the batch's fields against the model.
func (m *Model[F]) checkBatch(b *Batch[F], targets bool) error {
	if err := m.checkInputs(b); err != nil {
		return err
	}
	c := m.cfg
	need := func(what string, got, want int) error {
		if got != want {
			return fmt.Errorf("rnn: batch %s has %d values, want %d", what, got, want)
		}
		return nil
	}
	if c.Shape == SeqToVec && b.Lengths != nil {
		for i, L := range b.Lengths {
			if L < 1 {
				return fmt.Errorf("rnn: sequence %d is empty; a sequence-to-vector model needs at least one step", i)
			}
		}
	}
	if !targets {
		if c.Shape == VecToSeq || c.Shape == EncoderDecoder {
			if b.TD <= 0 {
				return fmt.Errorf("rnn: empty decoder window (TD=%d)", b.TD)
			}
			return need("DecIn", len(b.DecIn), b.TD*b.B)
		}
		return nil
	}
	switch c.Shape {
	case SeqToSeq, SeqToVec:
		rows := b.B
		if c.Shape == SeqToSeq {
			rows = b.T * b.B
		}
		if c.Loss == MSE {
			return need("Y", len(b.Y), rows*c.Outputs)
		}
		return need("Targets", len(b.Targets), rows)
	default:
		if b.TD <= 0 {
			return fmt.Errorf("rnn: empty decoder window (TD=%d)", b.TD)
		}
		if err := need("DecIn", len(b.DecIn), b.TD*b.B); err != nil {
			return err
		}
		return need("Targets", len(b.Targets), b.TD*b.B)
	}
}

// sliceBatch makes dst the columns [b0, b1) of src, reusing dst's buffers.
func sliceBatch[F Float](dst, src *Batch[F], b0, b1 int, cfg Config) {
	B, w := src.B, b1-b0
	dst.T, dst.B, dst.TD = src.T, w, src.TD
	cols := func(d []int32, s []int32, steps int) []int32 {
		if s == nil {
			return nil
		}
		d = grow(d, steps*w)
		for t := 0; t < steps; t++ {
			copy(d[t*w:(t+1)*w], s[t*B+b0:t*B+b1])
		}
		return d
	}
	colsF := func(d []F, s []F, steps, n int) []F {
		if s == nil {
			return nil
		}
		d = grow(d, steps*w*n)
		for t := 0; t < steps; t++ {
			copy(d[t*w*n:(t+1)*w*n], s[(t*B+b0)*n:(t*B+b1)*n])
		}
		return d
	}
	sub := func(d, s []int) []int {
		if s == nil {
			return nil
		}
		return append(d[:0], s[b0:b1]...)
	}
	dst.Tokens = cols(dst.Tokens, src.Tokens, src.T)
	dst.Lengths = sub(dst.Lengths, src.Lengths)
	dst.DecLengths = sub(dst.DecLengths, src.DecLengths)
	dst.DecIn = cols(dst.DecIn, src.DecIn, src.TD)
	if cfg.Shape == VecToSeq {
		dst.X = colsF(dst.X, src.X, 1, cfg.Input)
	} else {
		dst.X = colsF(dst.X, src.X, src.T, cfg.Input)
	}
	switch cfg.Shape {
	case SeqToSeq:
		dst.Targets = cols(dst.Targets, src.Targets, src.T)
		dst.Y = colsF(dst.Y, src.Y, src.T, cfg.Outputs)
	case SeqToVec:
		dst.Targets = cols(dst.Targets, src.Targets, 1)
		dst.Y = colsF(dst.Y, src.Y, 1, cfg.Outputs)
	default:
		dst.Targets = cols(dst.Targets, src.Targets, src.TD)
	}
}

// checkInputs validates the batch's input fields (what the encoder or the
// bridge reads).
func (m *Model[F]) checkInputs(b *Batch[F]) error {
	c := m.cfg
	if b.B <= 0 {
		return fmt.Errorf("rnn: empty batch (B=%d)", b.B)
	}
	if c.Shape == VecToSeq {
		if len(b.X) != b.B*c.Input {
			return fmt.Errorf("rnn: batch X has %d values, want B*Input = %d", len(b.X), b.B*c.Input)
		}
		return nil
	}
	if b.T <= 0 {
		return fmt.Errorf("rnn: empty batch (T=%d)", b.T)
	}
	if c.Vocab > 0 {
		if len(b.Tokens) != b.T*b.B {
			return fmt.Errorf("rnn: batch Tokens has %d values, want T*B = %d", len(b.Tokens), b.T*b.B)
		}
	} else if len(b.X) != b.T*b.B*c.Input {
		return fmt.Errorf("rnn: batch X has %d values, want T*B*Input = %d", len(b.X), b.T*b.B*c.Input)
	}
	return nil
}
