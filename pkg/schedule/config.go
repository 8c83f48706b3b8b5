package schedule

import (
	"errors"
	"fmt"
	"math"
)

// Kinds of schedule, the values of Config.Kind.
const (
	KindConstant    = "constant"    // the base lr at every step
	KindStep        = "step"        // PyTorch StepLR
	KindExponential = "exponential" // PyTorch ExponentialLR
	KindCosine      = "cosine"      // PyTorch CosineAnnealingLR, closed form
	KindPlateau     = "plateau"     // PyTorch ReduceLROnPlateau, mode "min", threshold mode "rel"
)

// Config describes a schedule. Fields that a kind does not use are ignored
// by it. Start from DefaultConfig and set what differs.
type Config struct {
	// Kind is one of the Kind constants. Default "constant".
	Kind string `json:"kind" yaml:"kind"`
	// BaseLR is the learning rate the schedule starts from, before the
	// world scale. Default 1e-3 (Adam's usual rate).
	BaseLR float64 `json:"base_lr" yaml:"base_lr"`
	// Warmup is the number of steps of linear warmup in front of the main
	// schedule; 0 means none. Default 0.
	Warmup int `json:"warmup" yaml:"warmup"`
	// WarmupStart is the fraction of the lr that warmup starts from, in
	// [0, 1] (PyTorch's LinearLR start_factor, which must be > 0 there).
	// Default 1/3, LinearLR's default.
	WarmupStart float64 `json:"warmup_start" yaml:"warmup_start"`
	// StepSize is the number of steps between two decays of the step
	// kind. Default 30, the period of the classic ImageNet recipe.
	StepSize int `json:"step_size" yaml:"step_size"`
	// Gamma is the decay factor of the step and exponential kinds, > 0.
	// Default 0.1, StepLR's default.
	Gamma float64 `json:"gamma" yaml:"gamma"`
	// TMax is the half period of the cosine kind in steps, >= 1: the lr
	// reaches EtaMin at step TMax (after warmup) and, as in PyTorch,
	// climbs back to the base lr at 2*TMax. It has no default: set it to
	// the number of steps after warmup.
	TMax int `json:"t_max" yaml:"t_max"`
	// EtaMin is the lowest lr of the cosine kind, in [0, BaseLR]. It is
	// not scaled by the world size. Default 0.
	EtaMin float64 `json:"eta_min" yaml:"eta_min"`
	// ScaleByWorld applies the linear scaling rule: the base lr is
	// multiplied by world/BaseWorld. Default false.
	ScaleByWorld bool `json:"scale_by_world" yaml:"scale_by_world"`
	// BaseWorld is the world size at which BaseLR was tuned, >= 1.
	// Default 1.
	BaseWorld int `json:"base_world" yaml:"base_world"`
	// Plateau configures the plateau kind.
	Plateau PlateauConfig `json:"plateau" yaml:"plateau"`
}

// PlateauConfig configures the plateau kind with the parameters of
// PyTorch's ReduceLROnPlateau in mode "min" and threshold mode "rel".
type PlateauConfig struct {
	// Factor multiplies the lr at each reduction, in (0, 1). Default 0.1.
	Factor float64 `json:"factor" yaml:"factor"`
	// Patience is the number of observations without improvement that
	// are tolerated; the next one reduces the lr. Default 10.
	Patience int `json:"patience" yaml:"patience"`
	// Threshold is the relative improvement that counts: a loss improves
	// on the best when loss < best*(1-Threshold). In [0, 1). Default 1e-4.
	Threshold float64 `json:"threshold" yaml:"threshold"`
	// Cooldown is the number of observations after a reduction during
	// which bad observations are not counted. Default 0.
	Cooldown int `json:"cooldown" yaml:"cooldown"`
	// MinLR is the floor of the reduced lr (before the world scale), >= 0.
	// Default 0.
	MinLR float64 `json:"min_lr" yaml:"min_lr"`
	// Eps is the smallest change of the lr worth making: a reduction
	// that would change it by no more than Eps is skipped. Default 1e-8.
	Eps float64 `json:"eps" yaml:"eps"`
}

// DefaultConfig returns a constant schedule at 1e-3 with PyTorch's
// defaults for every other field.
func DefaultConfig() Config {
	return Config{
		Kind:        KindConstant,
		BaseLR:      1e-3,
		WarmupStart: 1.0 / 3,
		StepSize:    30,
		Gamma:       0.1,
		BaseWorld:   1,
		Plateau:     DefaultPlateauConfig(),
	}
}

// DefaultPlateauConfig returns ReduceLROnPlateau's defaults.
func DefaultPlateauConfig() PlateauConfig {
	return PlateauConfig{Factor: 0.1, Patience: 10, Threshold: 1e-4, MinLR: 0, Eps: 1e-8}
}

// Validate reports every field the kind uses that is out of range, each as
// an error wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if !finite(c.BaseLR) || c.BaseLR <= 0 {
		bad("base_lr %v must be finite and > 0", c.BaseLR)
	}
	if c.Warmup < 0 {
		bad("warmup %d must be >= 0", c.Warmup)
	}
	if c.Warmup > 0 && !(c.WarmupStart >= 0 && c.WarmupStart <= 1) {
		bad("warmup_start %v must be in [0, 1]", c.WarmupStart)
	}
	if c.ScaleByWorld && c.BaseWorld < 1 {
		bad("base_world %d must be >= 1", c.BaseWorld)
	}
	switch c.Kind {
	case KindConstant:
	case KindStep:
		if c.StepSize < 1 {
			bad("step_size %d must be >= 1", c.StepSize)
		}
		c.validateGamma(bad)
	case KindExponential:
		c.validateGamma(bad)
	case KindCosine:
		if c.TMax < 1 {
			bad("t_max %d must be >= 1", c.TMax)
		}
		if !(c.EtaMin >= 0 && c.EtaMin <= c.BaseLR) {
			bad("eta_min %v must be in [0, base_lr %v]", c.EtaMin, c.BaseLR)
		}
	case KindPlateau:
		c.Plateau.validate(bad)
	default:
		bad("unknown kind %q (want %s, %s, %s, %s or %s)", c.Kind,
			KindConstant, KindStep, KindExponential, KindCosine, KindPlateau)
	}
	return errors.Join(errs...)
}

func (c Config) validateGamma(bad func(string, ...any)) {
	if !finite(c.Gamma) || c.Gamma <= 0 {
		bad("gamma %v must be finite and > 0", c.Gamma)
	}
}

func (p PlateauConfig) validate(bad func(string, ...any)) {
	if !(p.Factor > 0 && p.Factor < 1) {
		bad("plateau.factor %v must be in (0, 1)", p.Factor)
	}
	if p.Patience < 0 {
		bad("plateau.patience %d must be >= 0", p.Patience)
	}
	if !(p.Threshold >= 0 && p.Threshold < 1) {
		bad("plateau.threshold %v must be in [0, 1)", p.Threshold)
	}
	if p.Cooldown < 0 {
		bad("plateau.cooldown %d must be >= 0", p.Cooldown)
	}
	if !finite(p.MinLR) || p.MinLR < 0 {
		bad("plateau.min_lr %v must be finite and >= 0", p.MinLR)
	}
	if !finite(p.Eps) || p.Eps < 0 {
		bad("plateau.eps %v must be finite and >= 0", p.Eps)
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
