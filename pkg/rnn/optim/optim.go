package optim

import (
	"errors"
	"fmt"
)

// Float is the element type of parameters and gradients.
type Float interface{ ~float32 | ~float64 }

// Param is one named parameter tensor with its gradient. Value and Grad have
// the same length; Shape is informational (the optimizers treat a parameter
// as a flat vector). Name follows PyTorch state_dict names, for example
// "rnn.weight_ih_l0", and keys the optimizer state.
type Param[F Float] struct {
	Name  string
	Shape []int
	Value []F
	Grad  []F
	// NoDecay exempts the parameter from weight decay (biases and
	// normalisation gains, commonly). It is the equivalent of putting the
	// parameter in a PyTorch param group with weight_decay=0.
	NoDecay bool
}

// Optimizer updates parameters from their gradients and saves its state.
type Optimizer[F Float] interface {
	// Step applies one update with the learning rate of this step. The
	// parameters must be the same set (by name and length) on every call;
	// the order may change. On error no parameter is modified.
	Step(params []Param[F], lr float64) error
	// MarshalBinary encodes the optimizer state: kind, hyperparameters,
	// step count and per-parameter buffers, with a checksum.
	MarshalBinary() ([]byte, error)
	// UnmarshalBinary replaces the optimizer state with one written by
	// MarshalBinary of the same kind. As with PyTorch's load_state_dict,
	// the hyperparameters stored in the state win over the ones the
	// optimizer was constructed with.
	UnmarshalBinary([]byte) error
}

// Errors returned (wrapped, with context) by this package. Test with errors.Is.
var (
	// ErrConfig reports an invalid hyperparameter.
	ErrConfig = errors.New("optim: invalid config")
	// ErrParams reports a parameter set that does not match the optimizer
	// state: a missing, extra, duplicated or resized parameter name.
	ErrParams = errors.New("optim: parameters do not match optimizer state")
	// ErrNonFinite reports a NaN or infinite gradient.
	ErrNonFinite = errors.New("optim: non-finite gradient")
	// ErrCorrupt reports optimizer state bytes that cannot be decoded:
	// bad magic, unsupported version, truncation or a checksum mismatch.
	ErrCorrupt = errors.New("optim: corrupt state")
	// ErrKind reports state written by a different kind of optimizer.
	ErrKind = errors.New("optim: optimizer kind mismatch")
)

// Optimizer kinds, as used in Config.Kind and in encoded state.
const (
	KindSGD     = "sgd"
	KindAdam    = "adam"
	KindAdamW   = "adamw"
	KindRMSprop = "rmsprop"
)

// Config selects an optimizer by name, for configuration files. Only the
// section matching Kind is used. Start from DefaultConfig and decode the
// file over it, so that omitted fields keep PyTorch's defaults rather than
// Go's zero values (a zero beta2 or eps is valid but almost never meant).
type Config struct {
	// Kind is one of "sgd", "adam", "adamw", "rmsprop".
	Kind    string        `json:"kind" yaml:"kind"`
	SGD     SGDConfig     `json:"sgd" yaml:"sgd"`
	Adam    AdamConfig    `json:"adam" yaml:"adam"`
	AdamW   AdamConfig    `json:"adamw" yaml:"adamw"`
	RMSprop RMSpropConfig `json:"rmsprop" yaml:"rmsprop"`
}

// DefaultConfig returns a Config of the given kind whose every section holds
// PyTorch's defaults.
func DefaultConfig(kind string) Config {
	return Config{
		Kind:    kind,
		SGD:     DefaultSGDConfig(),
		Adam:    DefaultAdamConfig(),
		AdamW:   DefaultAdamWConfig(),
		RMSprop: DefaultRMSpropConfig(),
	}
}

// Validate checks Kind and the section it selects.
func (c Config) Validate() error {
	switch c.Kind {
	case KindSGD:
		return c.SGD.Validate()
	case KindAdam, KindAdamW:
		return c.adam().Validate()
	case KindRMSprop:
		return c.RMSprop.Validate()
	}
	return fmt.Errorf("%w: unknown kind %q (want %q, %q, %q or %q)",
		ErrConfig, c.Kind, KindSGD, KindAdam, KindAdamW, KindRMSprop)
}

// Buffers returns how many values per parameter the optimizer cfg.Kind
// keeps as state: sgd 1 with momentum, else 0; adam and adamw 2 (3 with
// amsgrad); rmsprop 1, plus 1 with momentum and 1 when centered. Memory
// estimates multiply the parameter count by it; an unknown kind gives 0.
func (c Config) Buffers() int {
	switch c.Kind {
	case KindSGD:
		return c.SGD.buffers()
	case KindAdam, KindAdamW:
		return c.adam().buffers()
	case KindRMSprop:
		n, _, _ := c.RMSprop.buffers()
		return n
	}
	return 0
}

func (c Config) adam() AdamConfig {
	if c.Kind == KindAdamW {
		return c.AdamW
	}
	return c.Adam
}

// New returns the optimizer that cfg.Kind names, configured by its section.
func New[F Float](cfg Config) (Optimizer[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Kind {
	case KindSGD:
		return NewSGD[F](cfg.SGD)
	case KindAdam:
		return NewAdam[F](cfg.Adam)
	case KindAdamW:
		return NewAdamW[F](cfg.AdamW)
	default: // KindRMSprop; Validate rejected the rest.
		return NewRMSprop[F](cfg.RMSprop)
	}
}

// checkRange returns an ErrConfig error unless lo <= v <= hi (or lo <= v <
// hi when openHi). NaN fails every comparison and so is rejected.
func checkRange(kind, name string, v, lo, hi float64, openHi bool) error {
	ok := v >= lo && v <= hi
	if openHi {
		ok = v >= lo && v < hi
	}
	if ok {
		return nil
	}
	bracket := "]"
	if openHi {
		bracket = ")"
	}
	return fmt.Errorf("%w: %s %s = %v, want in [%v, %v%s", ErrConfig, kind, name, v, lo, hi, bracket)
}

// checkEps refuses a zero eps: the update divides by sqrt(v) + eps, and v
// is 0 wherever a gradient has been 0, so eps = 0 makes 0/0 = NaN.
func checkEps(kind string, eps float64) error {
	if eps > 0 {
		return nil
	}
	return fmt.Errorf("%w: %s eps = %v, want > 0 (the update divides by sqrt(v) + eps, and v is 0 where gradients are 0)", ErrConfig, kind, eps)
}
