package shard

import "fmt"

// NoLabel marks an Example without a class label.
const NoLabel = -1

// Seq is a sequence of steps. A token sequence has Dim == 0 and one id per
// step in Tokens; a feature sequence has Dim >= 1 and Len()*Dim values in
// Values, step-major (Values[t*Dim+i]).
type Seq struct {
	Tokens []int32   // token ids, when Dim == 0
	Values []float32 // features, when Dim >= 1
	Dim    int       // features per step; 0 for tokens
}

// Len returns the number of steps.
func (s Seq) Len() int {
	if s.Dim == 0 {
		return len(s.Tokens)
	}
	return len(s.Values) / s.Dim
}

// IsTokens reports whether the sequence holds token ids.
func (s Seq) IsTokens() bool { return s.Dim == 0 }

// Example is one training example: an input sequence and a target, which is
// a class label (sequence classification), an output sequence
// (encoder-decoder or multi-step forecasting), or both. Readers set Label to
// NoLabel when there is none and leave Output empty when there is none.
type Example struct {
	Input  Seq
	Label  int // class index, or NoLabel
	Output Seq // target sequence; Len() == 0 when absent
}

// Dataset is a random-access collection of examples. Implementations in this
// package: Examples (in memory), *ImageSet (IDX) and *WindowSet (CSV).
type Dataset interface {
	Len() int
	Example(i int) Example
}

// seqLener is implemented by datasets that know lengths without building
// examples.
type seqLener interface{ SeqLen(i int) int }

// Examples is an in-memory Dataset.
type Examples []Example

// Len returns the number of examples.
func (e Examples) Len() int { return len(e) }

// Example returns example i.
func (e Examples) Example(i int) Example { return e[i] }

// SeqLen returns the input length of example i.
func (e Examples) SeqLen(i int) int { return e[i].Input.Len() }

// Lengths returns the input length of every example in ds.
func Lengths(ds Dataset) []int {
	out := make([]int, ds.Len())
	sl, ok := ds.(seqLener)
	for i := range out {
		if ok {
			out[i] = sl.SeqLen(i)
		} else {
			out[i] = ds.Example(i).Input.Len()
		}
	}
	return out
}

// shape describes what a batch of examples holds; all rows must agree.
type shape struct {
	inDim, outDim int
	outLen        bool // rows have an output sequence
	label         bool
}

func shapeOf(e Example) shape {
	return shape{inDim: e.Input.Dim, outDim: e.Output.Dim, outLen: e.Output.Len() > 0, label: e.Label != NoLabel}
}

// checkShape reports an error if e does not match s.
func (s shape) check(e Example, idx int) error {
	got := shapeOf(e)
	if got.inDim != s.inDim || got.label != s.label || got.outLen != s.outLen || (s.outLen && got.outDim != s.outDim) {
		return fmt.Errorf("%w: example %d has shape %+v, batch has %+v", ErrConfig, idx, got, s)
	}
	return nil
}
