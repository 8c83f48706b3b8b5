package schedule

import (
	"fmt"
	"math"
)

// plateauState is ReduceLROnPlateau's state, with the lr kept as a factor
// of the base lr so that the world scale can apply on top of it.
type plateauState struct {
	best     float64 // lowest loss seen; +Inf before the first observation
	bad      int     // observations since the last improvement
	cooldown int     // observations left in cooldown
	factor   float64 // current lr / base lr, in (0, 1]
	last     int     // step of the last observation; -1 before the first
}

func initialState() plateauState {
	return plateauState{best: math.Inf(1), factor: 1, last: -1}
}

// Observe feeds the validation loss measured at step to the plateau kind
// and reports whether it reduced the lr, as one call of PyTorch's
// ReduceLROnPlateau.step(loss) does. Steps must increase from one
// observation to the next, from 0; an observation during warmup is ignored, and so
// is every observation for kinds other than plateau. A loss that is NaN or
// infinite is an error wrapping ErrLoss and changes nothing.
func (s *Schedule) Observe(step int, valLoss float64) (reduced bool, err error) {
	if !finite(valLoss) {
		return false, fmt.Errorf("%w: step %d: loss %v", ErrLoss, step, valLoss)
	}
	if step < 0 {
		return false, fmt.Errorf("%w: negative step %d", ErrStep, step)
	}
	if s.cfg.Kind != KindPlateau || step < s.cfg.Warmup {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if step <= s.st.last {
		return false, fmt.Errorf("%w: step %d is not after step %d", ErrStep, step, s.st.last)
	}
	var next plateauState
	next, reduced = s.cfg.Plateau.step(s.st, s.cfg.BaseLR, valLoss)
	next.last = step
	s.st = next
	return reduced, nil
}

// step is one ReduceLROnPlateau.step in mode "min", threshold mode "rel".
func (p PlateauConfig) step(st plateauState, base, loss float64) (plateauState, bool) {
	if loss < st.best*(1-p.Threshold) {
		st.best, st.bad = loss, 0
	} else {
		st.bad++
	}
	if st.cooldown > 0 {
		st.cooldown--
		st.bad = 0 // bad observations in cooldown do not count
	}
	if st.bad <= p.Patience {
		return st, false
	}
	st.cooldown, st.bad = p.Cooldown, 0
	old := max(base*st.factor, p.MinLR)
	if old-max(old*p.Factor, p.MinLR) <= p.Eps {
		return st, false // PyTorch skips a change below eps
	}
	f := max(st.factor*p.Factor, p.MinLR/base)
	if f == 0 {
		return st, false // underflow, possible only with MinLR and Eps 0
	}
	st.factor = f
	return st, true
}
