package shard

// Batch is one rank's share of a global batch, laid out time-major as
// pkg/rnn consumes it: row b of step t is at Tokens[t*B+b] for token input,
// or X[(t*B+b)*Dim+i] for features. Rows shorter than T are padded with
// zeros; Lengths (or Mask) tells the real steps.
type Batch struct {
	Epoch uint64 // epoch the batch belongs to
	Step  uint64 // index of the global batch within its epoch

	T   int // padded input steps (the longest row on this rank)
	B   int // rows on this rank; may be 0 when a global batch has fewer rows than ranks
	Dim int // features per input step; 0 means token input in Tokens

	Tokens  []int32   // token input [T][B], when Dim == 0
	X       []float32 // feature input [T][B][Dim], when Dim > 0
	Lengths []int     // real input steps of each row

	Labels []int // class label per row, nil when examples carry none

	OutT       int       // padded output steps; 0 when there is no output sequence
	OutDim     int       // features per output step; 0 means token output in Targets
	Targets    []int32   // token targets [OutT][B]: next token (TBPTT) or decoder output
	Y          []float32 // feature targets [OutT][B][OutDim] (forecasting)
	OutLengths []int     // real output steps of each row

	Indices []int // dataset index of each row; nil for streams

	StreamIDs []int  // TBPTT: global stream id of each row, to key carried hidden state
	Reset     []bool // TBPTT: row starts a fresh segment; zero its hidden state

	GlobalB   int   // rows in the whole global batch, for weighting gradients
	RankSizes []int // rows each rank receives from this global batch
}

// Mask returns a [T][B] mask: 1 for real steps, 0 for padding.
func (b *Batch) Mask() []float32 {
	m := make([]float32, b.T*b.B)
	for r, n := range b.Lengths {
		for t := 0; t < n; t++ {
			m[t*b.B+r] = 1
		}
	}
	return m
}

// Padding returns the number of padded input cells and the total cells
// (T*B) of the batch.
func (b *Batch) Padding() (padded, total int) {
	total = b.T * b.B
	real := 0
	for _, n := range b.Lengths {
		real += n
	}
	return total - real, total
}

// Collate pads examples into a time-major batch. All examples must share
// the same input kind and Dim, the same output kind and Dim, and either all
// carry a label or none; otherwise it returns an ErrConfig error.
func Collate(exs []Example) (*Batch, error) {
	b := &Batch{B: len(exs), Lengths: make([]int, len(exs))}
	if len(exs) == 0 {
		return b, nil
	}
	s := shapeOf(exs[0])
	for i, e := range exs {
		if err := s.check(e, i); err != nil {
			return nil, err
		}
		b.Lengths[i] = e.Input.Len()
		b.T = max(b.T, b.Lengths[i])
	}
	b.Dim = s.inDim
	b.Tokens, b.X = packSeqs(exs, b.T, s.inDim, func(e *Example) Seq { return e.Input })
	if s.label {
		b.Labels = make([]int, len(exs))
		for i, e := range exs {
			b.Labels[i] = e.Label
		}
	}
	if s.outLen {
		b.OutDim = s.outDim
		b.OutLengths = make([]int, len(exs))
		for i, e := range exs {
			b.OutLengths[i] = e.Output.Len()
			b.OutT = max(b.OutT, b.OutLengths[i])
		}
		b.Targets, b.Y = packSeqs(exs, b.OutT, s.outDim, func(e *Example) Seq { return e.Output })
	}
	return b, nil
}

// packSeqs lays the chosen sequence of every example out time-major.
func packSeqs(exs []Example, T, dim int, pick func(*Example) Seq) ([]int32, []float32) {
	B := len(exs)
	if dim == 0 {
		out := make([]int32, T*B)
		for b := range exs {
			for t, v := range pick(&exs[b]).Tokens {
				out[t*B+b] = v
			}
		}
		return out, nil
	}
	out := make([]float32, T*B*dim)
	for b := range exs {
		s := pick(&exs[b])
		for t := 0; t < s.Len(); t++ {
			copy(out[(t*B+b)*dim:(t*B+b+1)*dim], s.Values[t*dim:(t+1)*dim])
		}
	}
	return nil, out
}

// DecoderInputs returns the teacher-forcing decoder inputs for token
// targets, [OutT][B]: bos at step 0, then the targets shifted right by one
// (what pkg/rnn calls DecIn). It returns nil when Targets is empty.
func (b *Batch) DecoderInputs(bos int32) []int32 {
	if len(b.Targets) == 0 {
		return nil
	}
	out := make([]int32, len(b.Targets))
	for r := 0; r < b.B; r++ {
		out[r] = bos
	}
	copy(out[b.B:], b.Targets[:len(b.Targets)-b.B])
	return out
}
