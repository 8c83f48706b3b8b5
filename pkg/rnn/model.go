package rnn

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Shape is one of the four ways a recurrent model maps inputs to outputs.
type Shape int

const (
	// SeqToSeq predicts at every step, aligned with the input (next char,
	// next value).
	SeqToSeq Shape = iota
	// SeqToVec reads a sequence and predicts once from the final state
	// (classify a sequence).
	SeqToVec
	// VecToSeq sets the initial state from a vector through a linear bridge
	// with tanh, then decodes a token sequence.
	VecToSeq
	// EncoderDecoder encodes an input sequence; its final state starts a
	// decoder that emits a token sequence ended by EOS (teacher forcing in
	// training).
	EncoderDecoder
)

var shapeNames = map[Shape]string{SeqToSeq: "seq2seq", SeqToVec: "seq2vec", VecToSeq: "vec2seq", EncoderDecoder: "encdec"}

// String returns the configuration name of the shape.
func (s Shape) String() string {
	if n, ok := shapeNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// ParseShape parses "seq2seq", "seq2vec", "vec2seq" or "encdec".
func ParseShape(s string) (Shape, error) {
	for k, v := range shapeNames {
		if v == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("rnn: unknown model shape %q (want seq2seq, seq2vec, vec2seq or encdec)", s)
}

// Loss selects the training objective.
type Loss int

const (
	// CrossEntropy is softmax cross-entropy over Outputs classes.
	CrossEntropy Loss = iota
	// MSE is the mean squared error over Outputs values (regression).
	MSE
)

// Config describes a whole model: input, recurrent stack, head.
type Config struct {
	Shape Shape
	// Vocab > 0 makes the inputs token ids, embedded into Embed features.
	Vocab int
	// Embed is the embedding width; default Hidden.
	Embed int
	// Input is the number of dense input features per step when Vocab is 0
	// (VecToSeq: the width of the conditioning vector).
	Input int
	// Outputs is the head width: classes for CrossEntropy, values for MSE.
	// Default: Vocab (a language model).
	Outputs int
	Loss    Loss
	// The recurrent stack (the encoder, for EncoderDecoder).
	Cell          Cell
	Hidden        int
	Layers        int
	Dropout       float64
	Bidirectional bool
	ForgetBias    float64
	IdentityInit  bool
	// EOS is the decoder token that ends an output sequence (VecToSeq,
	// EncoderDecoder); BOS starts it. Both index the output vocabulary.
	EOS, BOS int
	// Seed drives the initialisation.
	Seed uint64
}

// withDefaults returns c with documented defaults applied.
func (c Config) withDefaults() Config {
	if c.Layers == 0 {
		c.Layers = 1
	}
	if c.Vocab > 0 && c.Embed == 0 {
		c.Embed = c.Hidden
	}
	if c.Outputs == 0 {
		c.Outputs = c.Vocab
	}
	return c
}

// Validate reports the first impossible value.
func (c Config) Validate() error {
	d := c.withDefaults()
	if _, ok := shapeNames[d.Shape]; !ok {
		return fmt.Errorf("rnn: invalid model shape %d", int(d.Shape))
	}
	if d.Vocab < 0 || d.Input < 0 || d.Embed < 0 || d.Outputs < 0 {
		return errors.New("rnn: sizes must not be negative")
	}
	if d.Vocab == 0 && d.Input == 0 {
		return errors.New("rnn: set Vocab (token inputs) or Input (dense features)")
	}
	if d.Outputs == 0 {
		return errors.New("rnn: Outputs must be positive")
	}
	if d.Loss != CrossEntropy && d.Loss != MSE {
		return fmt.Errorf("rnn: invalid loss %d", int(d.Loss))
	}
	if (d.Shape == VecToSeq || d.Shape == EncoderDecoder) && d.Loss != CrossEntropy {
		return errors.New("rnn: decoders emit tokens and need the CrossEntropy loss")
	}
	if d.Shape == VecToSeq && d.Input == 0 {
		return errors.New("rnn: vec2seq needs Input, the width of the conditioning vector")
	}
	if d.Shape == VecToSeq || d.Shape == EncoderDecoder {
		if d.EOS < 0 || d.EOS >= d.Outputs || d.BOS < 0 || d.BOS >= d.Outputs {
			return fmt.Errorf("rnn: EOS %d and BOS %d must index the %d outputs", d.EOS, d.BOS, d.Outputs)
		}
	}
	sc := d.stackConfig()
	return sc.Validate()
}

func (c Config) stackConfig() StackConfig {
	in := c.Input
	if c.Vocab > 0 {
		in = c.Embed
	}
	return StackConfig{Cell: c.Cell, Input: in, Hidden: c.Hidden, Layers: c.Layers, Dropout: c.Dropout,
		Bidirectional: c.Bidirectional, ForgetBias: c.ForgetBias, IdentityInit: c.IdentityInit}
}

// Model is a recurrent model with its parameters. A Model is safe for
// concurrent Forward/Backward calls on distinct tapes and gradient vectors;
// updating the parameters must not overlap them.
type Model[F Float] struct {
	cfg    Config
	Params *Params[F]
	emb    *embedding // input embedding (nil for dense inputs)
	rnn    *Stack[F]  // the recurrent stack (encoder for EncoderDecoder)
	bridge *linear    // VecToSeq: vector -> initial state
	decEmb *embedding // decoder token embedding
	dec    *Stack[F]  // decoder stack
	head   *linear
}

// New builds a model with freshly initialised parameters.
func New[F Float](cfg Config) (*Model[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Model[F]{cfg: cfg}
	b := &builder{}
	sc := cfg.stackConfig()
	if cfg.Vocab > 0 && cfg.Shape != VecToSeq {
		m.emb = &embedding{vocab: cfg.Vocab, dim: cfg.Embed}
		m.emb.w = b.add("embedding.weight", cfg.Vocab, cfg.Embed)
	}
	headIn := cfg.Hidden
	switch cfg.Shape {
	case SeqToSeq, SeqToVec:
		s, err := newStack[F](sc, "rnn.", b)
		if err != nil {
			return nil, err
		}
		m.rnn = s
		headIn = s.OutputSize()
	case VecToSeq, EncoderDecoder:
		if cfg.Shape == VecToSeq {
			m.bridge = &linear{in: cfg.Input, out: cfg.Layers * cfg.Hidden}
			m.bridge.w = b.add("bridge.weight", m.bridge.out, m.bridge.in)
			m.bridge.b = b.add("bridge.bias", m.bridge.out)
		} else {
			s, err := newStack[F](sc, "rnn.", b)
			if err != nil {
				return nil, err
			}
			m.rnn = s
		}
		emb := cfg.Embed
		if emb == 0 {
			emb = cfg.Hidden
		}
		m.decEmb = &embedding{vocab: cfg.Outputs, dim: emb}
		m.decEmb.w = b.add("decoder.embedding.weight", cfg.Outputs, emb)
		dc := sc
		dc.Input, dc.Bidirectional, dc.IdentityInit = emb, false, false
		s, err := newStack[F](dc, "decoder.rnn.", b)
		if err != nil {
			return nil, err
		}
		m.dec = s
	}
	m.head = &linear{in: headIn, out: cfg.Outputs}
	m.head.w = b.add("head.weight", cfg.Outputs, headIn)
	m.head.b = b.add("head.bias", cfg.Outputs)
	m.Params = newParams[F](b)
	for _, s := range []*Stack[F]{m.rnn, m.dec} {
		if s != nil {
			s.vals = m.Params.Value
		}
	}
	m.Init(cfg.Seed)
	return m, nil
}

// Config returns the model's configuration with defaults applied.
func (m *Model[F]) Config() Config { return m.cfg }

// Init re-initialises every parameter from seed: embeddings N(0,1) as
// nn.Embedding, recurrent and linear layers U(-1/sqrt(fan), 1/sqrt(fan)) as
// PyTorch.
func (m *Model[F]) Init(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	vals := m.Params.Value
	for _, e := range []*embedding{m.emb, m.decEmb} {
		if e != nil {
			for i, t := 0, view(vals, e.w, e.vocab*e.dim); i < len(t); i++ {
				t[i] = F(rng.NormFloat64())
			}
		}
	}
	for _, s := range []*Stack[F]{m.rnn, m.dec} {
		if s != nil {
			s.init(vals, rng)
		}
	}
	if m.bridge != nil {
		initLinear(m.bridge, vals, rng)
	}
	initLinear(m.head, vals, rng)
}

// Stack returns the model's recurrent stack (the encoder of an
// encoder-decoder), or nil for VecToSeq.
func (m *Model[F]) Stack() *Stack[F] { return m.rnn }

// Decoder returns the decoder stack of VecToSeq and EncoderDecoder models.
func (m *Model[F]) Decoder() *Stack[F] { return m.dec }

// ReadyOffsets lists, from the end of the parameter vector down to 0, the
// offsets at which the backward pass finishes a part of the gradient: the
// head, each layer of the decoder (top first) and its embedding, each
// layer of the stack (top first), then the input embedding or bridge.
// Gradients from such an offset to the end are final once backward has
// passed it (Trainer.ComputeReady reports these offsets, or a subset of
// them), so a caller can cut the gradient into buckets that are ready in
// this order and reduce each while backward continues. The list is strictly
// decreasing and ends with 0.
func (m *Model[F]) ReadyOffsets() []int {
	out := []int{m.head.w}
	layers := func(s *Stack[F]) {
		for k := len(s.layers) - 1; k >= 0; k-- {
			out = append(out, s.layers[k][0].wih)
		}
	}
	if m.dec != nil {
		layers(m.dec)
		out = append(out, m.decEmb.w)
	}
	if m.rnn != nil {
		layers(m.rnn)
	}
	if out[len(out)-1] != 0 { // the input embedding or the bridge
		out = append(out, 0)
	}
	return out
}
