package optim

import "fmt"

// SGDConfig holds the hyperparameters of torch.optim.SGD (the learning rate
// is given to each Step). The zero value is plain SGD, which is also
// PyTorch's default.
type SGDConfig struct {
	// Momentum factor; 0 (the default) disables momentum.
	Momentum float64 `json:"momentum" yaml:"momentum"`
	// Dampening for momentum; default 0. The buffer update is
	// buf = momentum*buf + (1-dampening)*grad.
	Dampening float64 `json:"dampening" yaml:"dampening"`
	// WeightDecay is the L2 penalty added to the gradient (grad += wd*p);
	// default 0.
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
	// Nesterov enables Nesterov momentum; it needs Momentum > 0 and
	// Dampening == 0, as in PyTorch. Default false.
	Nesterov bool `json:"nesterov" yaml:"nesterov"`
}

// DefaultSGDConfig returns PyTorch's defaults: no momentum, no dampening, no
// weight decay, no Nesterov.
func DefaultSGDConfig() SGDConfig { return SGDConfig{} }

// Validate applies PyTorch's checks: momentum, dampening and weight decay
// non-negative (dampening at most 1), and Nesterov only with momentum and
// without dampening.
func (c SGDConfig) Validate() error {
	const huge = 1e300 // finite; NaN and Inf are rejected
	if err := checkRange(KindSGD, "momentum", c.Momentum, 0, huge, false); err != nil {
		return err
	}
	if err := checkRange(KindSGD, "dampening", c.Dampening, 0, 1, false); err != nil {
		return err
	}
	if err := checkRange(KindSGD, "weight_decay", c.WeightDecay, 0, huge, false); err != nil {
		return err
	}
	if c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0) {
		return fmt.Errorf("%w: sgd nesterov needs momentum > 0 and dampening = 0 (have %v, %v)", ErrConfig, c.Momentum, c.Dampening)
	}
	return nil
}

func (c SGDConfig) buffers() int {
	if c.Momentum != 0 {
		return 1 // momentum_buffer
	}
	return 0
}

// SGD is stochastic gradient descent with optional momentum, dampening,
// Nesterov momentum and L2 weight decay, following torch.optim.SGD: the
// momentum buffer starts as a copy of the first gradient, not at zero.
type SGD[F Float] struct {
	cfg SGDConfig
	state[F]
}

// NewSGD returns an SGD optimizer, or an ErrConfig error if cfg is invalid.
func NewSGD[F Float](cfg SGDConfig) (*SGD[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &SGD[F]{cfg: cfg, state: state[F]{kind: KindSGD, nbuf: cfg.buffers()}}, nil
}

// Config returns the hyperparameters in use.
func (o *SGD[F]) Config() SGDConfig { return o.cfg }

// Step implements Optimizer.
func (o *SGD[F]) Step(params []Param[F], lr float64) error {
	if err := o.prepare(params, lr); err != nil {
		return err
	}
	first := o.steps == 0
	for i := range params {
		p := &params[i]
		sl := o.slots[p.Name]
		var buf []F
		if o.nbuf > 0 {
			buf = sl.buf(0)
		}
		sgdUpdate(p.Value, p.Grad, buf, o.cfg, decay(p, o.cfg.WeightDecay), lr, first)
	}
	o.steps++
	return nil
}

// sgdUpdate is one torch.optim.SGD step over one parameter. buf is nil
// without momentum.
func sgdUpdate[F Float](v, g, buf []F, c SGDConfig, wd, lr float64, first bool) {
	g = g[:len(v)]
	wdF, mom, keep, negLR := F(wd), F(c.Momentum), F(1-c.Dampening), F(-lr)
	if buf != nil {
		buf = buf[:len(v)]
	}
	for j := range v {
		d := g[j]
		if wd != 0 {
			d += wdF * v[j]
		}
		if buf != nil {
			if first {
				buf[j] = d
			} else {
				buf[j] = buf[j]*mom + keep*d
			}
			if c.Nesterov {
				d += mom * buf[j]
			} else {
				d = buf[j]
			}
		}
		v[j] += negLR * d
	}
}

func (o *SGD[F]) hypers() []hyper {
	return []hyper{
		{"momentum", o.cfg.Momentum},
		{"dampening", o.cfg.Dampening},
		{"weight_decay", o.cfg.WeightDecay},
		{"nesterov", boolHyper(o.cfg.Nesterov)},
	}
}

func (o *SGD[F]) setHypers(h *hyperSet) (int, func(), error) {
	c := SGDConfig{
		Momentum:    h.float("momentum"),
		Dampening:   h.float("dampening"),
		WeightDecay: h.float("weight_decay"),
		Nesterov:    h.bool("nesterov"),
	}
	if err := h.done(); err != nil {
		return 0, nil, err
	}
	if err := c.Validate(); err != nil {
		return 0, nil, err
	}
	return c.buffers(), func() { o.cfg = c }, nil
}

// MarshalBinary implements Optimizer.
func (o *SGD[F]) MarshalBinary() ([]byte, error) { return marshalState(&o.state, o.hypers()) }

// UnmarshalBinary implements Optimizer.
func (o *SGD[F]) UnmarshalBinary(data []byte) error {
	return unmarshalState(&o.state, data, o.setHypers)
}
