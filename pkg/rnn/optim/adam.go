package optim

import "math"

// AdamConfig holds the hyperparameters of torch.optim.Adam and
// torch.optim.AdamW (the learning rate is given to each Step).
type AdamConfig struct {
	// Beta1 and Beta2 are the decay rates of the first and second moment
	// estimates; defaults 0.9 and 0.999. Each must be in [0, 1).
	Beta1 float64 `json:"beta1" yaml:"beta1"`
	Beta2 float64 `json:"beta2" yaml:"beta2"`
	// Eps is added to the denominator after the square root (as PyTorch
	// does, not inside it); default 1e-8.
	Eps float64 `json:"eps" yaml:"eps"`
	// WeightDecay: for Adam an L2 penalty added to the gradient (default
	// 0); for AdamW the decoupled decay p -= lr*wd*p applied before the
	// moment update (default 0.01).
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
	// AMSGrad uses the running maximum of the second moment in the
	// denominator; default false.
	AMSGrad bool `json:"amsgrad" yaml:"amsgrad"`
}

// DefaultAdamConfig returns torch.optim.Adam's defaults: betas (0.9, 0.999),
// eps 1e-8, no weight decay, no AMSGrad.
func DefaultAdamConfig() AdamConfig { return AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// DefaultAdamWConfig returns torch.optim.AdamW's defaults: those of Adam with
// weight decay 0.01.
func DefaultAdamWConfig() AdamConfig {
	c := DefaultAdamConfig()
	c.WeightDecay = 0.01
	return c
}

// Validate applies PyTorch's checks (betas in [0, 1), eps and weight decay
// finite and non-negative) and one more: eps must be positive, or a
// parameter whose gradient is zero gets 0/0 = NaN.
func (c AdamConfig) Validate() error {
	const huge = 1e300
	for _, f := range []struct {
		name   string
		v, hi  float64
		openHi bool
	}{
		{"beta1", c.Beta1, 1, true},
		{"beta2", c.Beta2, 1, true},
		{"eps", c.Eps, huge, false},
		{"weight_decay", c.WeightDecay, huge, false},
	} {
		if err := checkRange(KindAdam, f.name, f.v, 0, f.hi, f.openHi); err != nil {
			return err
		}
	}
	return checkEps(KindAdam, c.Eps)
}

func (c AdamConfig) buffers() int {
	if c.AMSGrad {
		return 3 // exp_avg, exp_avg_sq, max_exp_avg_sq
	}
	return 2
}

// Adam is the Adam optimizer (Kingma & Ba) with PyTorch's arithmetic: bias
// correction, eps added outside the square root, optional AMSGrad. Built by
// NewAdamW it is AdamW (Loshchilov & Hutter), whose weight decay is
// decoupled from the gradient.
type Adam[F Float] struct {
	cfg       AdamConfig
	decoupled bool
	state[F]
}

// NewAdam returns an Adam optimizer (L2 weight decay added to the gradient).
func NewAdam[F Float](cfg AdamConfig) (*Adam[F], error) { return newAdam[F](cfg, KindAdam) }

// NewAdamW returns an AdamW optimizer (decoupled weight decay).
func NewAdamW[F Float](cfg AdamConfig) (*Adam[F], error) { return newAdam[F](cfg, KindAdamW) }

func newAdam[F Float](cfg AdamConfig, kind string) (*Adam[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Adam[F]{cfg: cfg, decoupled: kind == KindAdamW, state: state[F]{kind: kind, nbuf: cfg.buffers()}}, nil
}

// Config returns the hyperparameters in use.
func (o *Adam[F]) Config() AdamConfig { return o.cfg }

// Step implements Optimizer.
func (o *Adam[F]) Step(params []Param[F], lr float64) error {
	if err := o.prepare(params, lr); err != nil {
		return err
	}
	t := float64(o.steps + 1)
	k := adamStep{
		lr:        lr,
		stepSize:  lr / (1 - math.Pow(o.cfg.Beta1, t)),
		bc2Sqrt:   math.Sqrt(1 - math.Pow(o.cfg.Beta2, t)),
		decoupled: o.decoupled,
	}
	for i := range params {
		p := &params[i]
		sl := o.slots[p.Name]
		var vmax []F
		if o.cfg.AMSGrad {
			vmax = sl.buf(2)
		}
		adamUpdate(p.Value, p.Grad, sl.buf(0), sl.buf(1), vmax, o.cfg, decay(p, o.cfg.WeightDecay), k)
	}
	o.steps++
	return nil
}

// adamStep holds the per-step scalars, computed in float64 as PyTorch does
// in Python.
type adamStep struct {
	lr, stepSize, bc2Sqrt float64
	decoupled             bool
}

// adamUpdate is one Adam/AdamW step over one parameter; vmax is nil without
// AMSGrad.
func adamUpdate[F Float](v, g, m, s, vmax []F, c AdamConfig, wd float64, k adamStep) {
	g, m, s = g[:len(v)], m[:len(v)], s[:len(v)]
	b1, b2 := F(c.Beta1), F(c.Beta2)
	c1, c2 := F(1-c.Beta1), F(1-c.Beta2)
	eps, bc2Sqrt, negStep := F(c.Eps), F(k.bc2Sqrt), F(-k.stepSize)
	var l2, shrink F = 0, 1
	switch {
	case wd == 0:
	case k.decoupled:
		shrink = F(1 - k.lr*wd)
	default:
		l2 = F(wd)
	}
	if vmax != nil {
		vmax = vmax[:len(v)]
	}
	for j := range v {
		gj := g[j] + l2*v[j]
		v[j] *= shrink
		m[j] = m[j]*b1 + c1*gj
		s[j] = s[j]*b2 + c2*gj*gj
		sj := s[j]
		if vmax != nil {
			sj = max(vmax[j], sj)
			vmax[j] = sj
		}
		denom := sqrt(sj)/bc2Sqrt + eps
		v[j] += negStep * m[j] / denom
	}
}

func sqrt[F Float](x F) F { return F(math.Sqrt(float64(x))) }

func (o *Adam[F]) hypers() []hyper {
	return []hyper{
		{"beta1", o.cfg.Beta1},
		{"beta2", o.cfg.Beta2},
		{"eps", o.cfg.Eps},
		{"weight_decay", o.cfg.WeightDecay},
		{"amsgrad", boolHyper(o.cfg.AMSGrad)},
	}
}

func (o *Adam[F]) setHypers(h *hyperSet) (int, func(), error) {
	c := AdamConfig{
		Beta1:       h.float("beta1"),
		Beta2:       h.float("beta2"),
		Eps:         h.float("eps"),
		WeightDecay: h.float("weight_decay"),
		AMSGrad:     h.bool("amsgrad"),
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
func (o *Adam[F]) MarshalBinary() ([]byte, error) { return marshalState(&o.state, o.hypers()) }

// UnmarshalBinary implements Optimizer.
func (o *Adam[F]) UnmarshalBinary(data []byte) error {
	return unmarshalState(&o.state, data, o.setHypers)
}
