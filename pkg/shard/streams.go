package shard

import "fmt"

// Tokens is a random-access token sequence, such as one part of a text
// corpus. ReadTokens fills dst with the tokens at [off, off+len(dst)).
type Tokens interface {
	Len() int64
	ReadTokens(dst []int32, off int64) error
}

// TokenSlice is an in-memory Tokens.
type TokenSlice []int32

// Len returns the number of tokens.
func (s TokenSlice) Len() int64 { return int64(len(s)) }

// ReadTokens copies tokens [off, off+len(dst)) into dst.
func (s TokenSlice) ReadTokens(dst []int32, off int64) error {
	if off < 0 || off+int64(len(dst)) > int64(len(s)) {
		return fmt.Errorf("%w: tokens [%d, %d) outside [0, %d)", ErrConfig, off, off+int64(len(dst)), len(s))
	}
	copy(dst, s[off:])
	return nil
}

// StreamConfig configures TBPTT streams.
type StreamConfig struct {
	// Streams is the global number of parallel streams B (the global batch
	// rows), independent of the number of workers. Required.
	Streams int
	// Steps is the window length T (truncated BPTT length). Required.
	Steps int
	// Seed, with the epoch, picks the epoch's start offset when RandomOffset.
	Seed uint64
	// RandomOffset shifts the streams of each epoch by an offset in
	// [0, Steps) drawn from (Seed, epoch), so windows do not always cut the
	// corpus at the same places. The default (false) starts at 0, as char-rnn.
	RandomOffset bool
	// Rank of this worker, in [0, World).
	Rank int
	// World is the number of workers; 0 means 1.
	World int
}

// Validate reports whether the configuration is usable.
func (c StreamConfig) Validate() error {
	if c.Streams <= 0 || c.Steps <= 0 {
		return configErr("Streams %d and Steps %d must be positive", c.Streams, c.Steps)
	}
	w := max(c.World, 1)
	if c.World < 0 || c.Rank < 0 || c.Rank >= w {
		return configErr("rank %d of world %d", c.Rank, c.World)
	}
	return nil
}

// Streams cuts a long token sequence into B parallel streams read window by
// window, as char-rnn does, for truncated backpropagation through time.
//
// Layout of epoch e, over N tokens: offset o = 0, or a (Seed, e)-derived
// value in [0, T) with RandomOffset. Each stream gets a segment of
// S = (N-1-o)/B tokens (integer division): stream b covers tokens
// [o+b*S, o+(b+1)*S). Window k (k < K = S/T) of stream b is the input
// tokens [o+b*S+k*T, +T) with targets shifted by one token. The tokens of
// a segment past K*T are not used in that epoch. Global batch k holds window
// k of every stream; rank r of W gets the streams Span(B, r, W), so the set of
// streams, and which window each reads, never depend on W.
//
// Batch.StreamIDs names the stream of each row, so a trainer keys carried
// hidden state by stream id and it follows the stream to whichever worker
// reads it after a change of W. Batch.Reset is true on every row of the first
// window of an epoch: the trainer must zero that stream's hidden state.
type Streams struct {
	src  Tokens
	cfg  StreamConfig
	n    int64
	segs int64 // segment length of the current epoch
	off  int64 // start offset of the current epoch
	k    int64 // windows per epoch in the current epoch

	epoch uint64
	pos   int64 // next window
}

// NewStreams returns streams over src positioned at the start of epoch 0.
// It fails when the corpus is too short for one window per stream.
func NewStreams(src Tokens, cfg StreamConfig) (*Streams, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := src.Len()
	worst := n - 1 - int64(cfg.Steps-1)
	if !cfg.RandomOffset {
		worst = n - 1
	}
	if worst/int64(cfg.Streams) < int64(cfg.Steps) {
		return nil, configErr("%d tokens too few for %d streams of windows of %d steps", n, cfg.Streams, cfg.Steps)
	}
	s := &Streams{src: src, cfg: cfg, n: n}
	s.setEpoch(0)
	return s, nil
}

// layout returns the start offset, segment length and windows per stream of
// epoch e.
func (s *Streams) layout(e uint64) (off, seg, k int64) {
	if s.cfg.RandomOffset {
		off = int64(NewSplitMix64(deriveSeed(s.cfg.Seed, e, purposeOffset)).IntN(s.cfg.Steps))
	}
	seg = (s.n - 1 - off) / int64(s.cfg.Streams)
	return off, seg, seg / int64(s.cfg.Steps)
}

func (s *Streams) setEpoch(e uint64) {
	s.epoch, s.pos = e, 0
	s.off, s.segs, s.k = s.layout(e)
}

// Seek moves to the n-th global batch counted from the first window of
// epoch 0 — the training step — so a worker positions itself from the step
// alone, whatever its rank and world size.
func (s *Streams) Seek(n uint64) error {
	for e := uint64(0); ; e++ {
		_, _, k := s.layout(e)
		if k <= 0 {
			return fmt.Errorf("%w: epoch %d has no windows", ErrConfig, e)
		}
		if n < uint64(k) {
			s.setEpoch(e)
			s.pos = int64(n)
			return nil
		}
		n -= uint64(k)
	}
}

// WindowsPerEpoch returns the number of global batches in the current epoch
// (it can vary by one between epochs with RandomOffset).
func (s *Streams) WindowsPerEpoch() int64 { return s.k }

// Next returns this rank's streams' next window and advances. Tokens holds
// the inputs [T][B_r]; Targets the next tokens [T][B_r].
func (s *Streams) Next() (*Batch, error) {
	T, B := s.cfg.Steps, s.cfg.Streams
	world := max(s.cfg.World, 1)
	lo, hi := Span(B, s.cfg.Rank, world)
	rows := hi - lo
	b := &Batch{
		Epoch: s.epoch, Step: uint64(s.pos), T: T, B: rows, OutT: T,
		Tokens: make([]int32, T*rows), Targets: make([]int32, T*rows),
		Lengths: make([]int, rows), OutLengths: make([]int, rows),
		StreamIDs: make([]int, rows), Reset: make([]bool, rows),
		GlobalB: B, RankSizes: RankSizes(B, world),
	}
	buf := make([]int32, T+1)
	for r := 0; r < rows; r++ {
		id := lo + r
		start := s.offsetOf(id)
		if err := s.src.ReadTokens(buf, start); err != nil {
			return nil, fmt.Errorf("stream %d window %d of epoch %d: %w", id, s.pos, s.epoch, err)
		}
		for t := 0; t < T; t++ {
			b.Tokens[t*rows+r] = buf[t]
			b.Targets[t*rows+r] = buf[t+1]
		}
		b.Lengths[r], b.OutLengths[r] = T, T
		b.StreamIDs[r] = id
		b.Reset[r] = s.pos == 0
	}
	s.pos++
	if s.pos == s.k {
		s.setEpoch(s.epoch + 1)
	}
	return b, nil
}

// offsetOf returns the token offset of stream id's next window.
func (s *Streams) offsetOf(id int) int64 {
	return s.off + int64(id)*s.segs + s.pos*int64(s.cfg.Steps)
}

func (s *Streams) fingerprint() uint64 {
	return fingerprint(0x5354524d, uint64(s.n), uint64(s.cfg.Streams), uint64(s.cfg.Steps), b2u(s.cfg.RandomOffset))
}

// Cursor returns the position of the next window: epoch, window index and
// the token offset of every stream's next window.
func (s *Streams) Cursor() Cursor {
	c := Cursor{Seed: s.cfg.Seed, Fingerprint: s.fingerprint(), Epoch: s.epoch, Batch: uint64(s.pos)}
	c.Offsets = make([]int64, s.cfg.Streams)
	for id := range c.Offsets {
		c.Offsets[id] = s.offsetOf(id)
	}
	return c
}

// Restore moves the streams to c, which may come from a run with another
// rank or world size over the same tokens and stream config. The stored
// offsets must agree with the layout of the cursor's epoch.
func (s *Streams) Restore(c Cursor) error {
	if err := c.checkSource(s.cfg.Seed, s.fingerprint()); err != nil {
		return err
	}
	if len(c.Offsets) != s.cfg.Streams {
		return fmt.Errorf("%w: cursor has %d stream offsets, source has %d streams", ErrCursorMismatch, len(c.Offsets), s.cfg.Streams)
	}
	off, seg, k := s.layout(c.Epoch)
	if c.Batch >= uint64(k) {
		return fmt.Errorf("%w: cursor window %d, epoch %d has %d", ErrCursorMismatch, c.Batch, c.Epoch, k)
	}
	for id, o := range c.Offsets {
		if want := off + int64(id)*seg + int64(c.Batch)*int64(s.cfg.Steps); o != want {
			return fmt.Errorf("%w: stream %d offset %d, layout says %d", ErrCursorMismatch, id, o, want)
		}
	}
	s.setEpoch(c.Epoch)
	s.pos = int64(c.Batch)
	return nil
}
