package optim

import (
	"fmt"
	"math"
)

// slot is the state of one parameter: nbuf buffers of n elements each, laid
// out back to back in one allocation.
type slot[F Float] struct {
	n     int
	bufs  []F
	stamp uint64 // last Step call that saw this name; catches duplicates
}

// buf returns buffer i of the slot.
func (s *slot[F]) buf(i int) []F { return s.bufs[i*s.n : (i+1)*s.n : (i+1)*s.n] }

// state is what every optimizer keeps: the step count and per-name buffers.
// The number of buffers per parameter depends on the kind and its config.
type state[F Float] struct {
	kind  string
	nbuf  int
	steps uint64
	stamp uint64
	slots map[string]*slot[F]
}

// Steps reports how many updates have been applied (restored by UnmarshalBinary).
func (s *state[F]) Steps() uint64 { return s.steps }

// prepare checks params and lr before any update and allocates the state on
// the first call. After it returns nil every params[i].Name has a slot of the
// right size, and the set of names equals the set of slots.
func (s *state[F]) prepare(params []Param[F], lr float64) error {
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("%w: %s step %d: learning rate %v, want finite and >= 0", ErrConfig, s.kind, s.steps+1, lr)
	}
	for i := range params {
		p := &params[i]
		if len(p.Value) != len(p.Grad) {
			panic(fmt.Sprintf("optim: parameter %q: len(Value) = %d, len(Grad) = %d", p.Name, len(p.Value), len(p.Grad)))
		}
	}
	if s.slots == nil {
		return s.allocate(params)
	}
	s.stamp++
	if len(params) != len(s.slots) {
		return fmt.Errorf("%w: %s: got %d parameters, state has %d", ErrParams, s.kind, len(params), len(s.slots))
	}
	for i := range params {
		p := &params[i]
		sl, ok := s.slots[p.Name]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s: parameter %q has no state", ErrParams, s.kind, p.Name)
		case sl.stamp == s.stamp:
			return fmt.Errorf("%w: %s: parameter %q given twice", ErrParams, s.kind, p.Name)
		case sl.n != len(p.Value):
			return fmt.Errorf("%w: %s: parameter %q has %d elements, state has %d", ErrParams, s.kind, p.Name, len(p.Value), sl.n)
		}
		sl.stamp = s.stamp
	}
	return nil
}

// allocate creates zeroed state for params on the first Step.
func (s *state[F]) allocate(params []Param[F]) error {
	slots := make(map[string]*slot[F], len(params))
	for i := range params {
		p := &params[i]
		if _, dup := slots[p.Name]; dup {
			return fmt.Errorf("%w: %s: parameter %q given twice", ErrParams, s.kind, p.Name)
		}
		slots[p.Name] = &slot[F]{n: len(p.Value), bufs: make([]F, s.nbuf*len(p.Value))}
	}
	s.slots = slots
	return nil
}

// decay returns the weight decay that applies to p.
func decay[F Float](p *Param[F], wd float64) float64 {
	if p.NoDecay {
		return 0
	}
	return wd
}
