package schedule

import (
	"fmt"
	"math"
	"sync"
)

// Schedule gives the learning rate of every step. It is safe for concurrent
// use: LR may be called while another goroutine calls Observe.
type Schedule struct {
	cfg Config

	mu sync.Mutex
	st plateauState
}

// New returns the schedule cfg describes, or cfg.Validate's error.
func New(cfg Config) (*Schedule, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Schedule{cfg: cfg, st: initialState()}, nil
}

// Config returns the configuration the schedule was built from.
func (s *Schedule) Config() Config { return s.cfg }

// LR returns the learning rate of step (counted from 0) with world workers.
// It depends only on its arguments and, for the plateau kind, on the state
// built by Observe. A negative step counts as 0 and a world below 1 as 1.
func (s *Schedule) LR(step, world int) float64 {
	step = max(step, 0)
	base := s.cfg.BaseLR
	scale := s.worldScale(world)
	if w := s.cfg.Warmup; step < w {
		// PyTorch LinearLR's closed form, with end_factor 1.
		start := s.cfg.WarmupStart
		return base * scale * (start + (1-start)*float64(step)/float64(w))
	}
	return s.main(step-s.cfg.Warmup, base, scale)
}

// worldScale is the linear scaling rule's factor world/BaseWorld, or 1.
func (s *Schedule) worldScale(world int) float64 {
	if !s.cfg.ScaleByWorld {
		return 1
	}
	return float64(max(world, 1)) / float64(s.cfg.BaseWorld)
}

// main is the schedule after warmup at its own step n.
func (s *Schedule) main(n int, base, scale float64) float64 {
	c := &s.cfg
	switch c.Kind {
	case KindStep:
		return base * scale * math.Pow(c.Gamma, float64(n/c.StepSize))
	case KindExponential:
		return base * scale * math.Pow(c.Gamma, float64(n))
	case KindCosine:
		return c.EtaMin + (base*scale-c.EtaMin)*(1+math.Cos(math.Pi*float64(n)/float64(c.TMax)))/2
	case KindPlateau:
		return s.plateauLR() * scale
	default: // KindConstant; New rejected every other kind.
		return base * scale
	}
}

// Factor returns the plateau kind's current factor: the product of the
// reductions so far, 1 before the first (and always 1 for other kinds).
func (s *Schedule) Factor() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.factor
}

// plateauLR is the plateau kind's lr before the world scale: the base lr
// times the factor, floored at MinLR.
func (s *Schedule) plateauLR() float64 {
	s.mu.Lock()
	f := s.st.factor
	s.mu.Unlock()
	return max(s.cfg.BaseLR*f, s.cfg.Plateau.MinLR)
}

// String describes the schedule for logs.
func (s *Schedule) String() string {
	c := s.cfg
	str := fmt.Sprintf("%s lr=%g", c.Kind, c.BaseLR)
	if c.Warmup > 0 {
		str += fmt.Sprintf(" warmup=%d from %.3g", c.Warmup, c.WarmupStart)
	}
	if c.ScaleByWorld {
		str += fmt.Sprintf(" x world/%d", c.BaseWorld)
	}
	return str
}
