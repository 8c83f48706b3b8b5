package optim

// RMSpropConfig holds the hyperparameters of torch.optim.RMSprop (the
// learning rate is given to each Step).
type RMSpropConfig struct {
	// Alpha is the smoothing constant of the squared-gradient average;
	// default 0.99, must be in [0, 1].
	Alpha float64 `json:"alpha" yaml:"alpha"`
	// Eps is added to the denominator after the square root; default 1e-8.
	Eps float64 `json:"eps" yaml:"eps"`
	// WeightDecay is the L2 penalty added to the gradient; default 0.
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
	// Momentum factor; default 0 (no momentum buffer).
	Momentum float64 `json:"momentum" yaml:"momentum"`
	// Centered normalises by an estimate of the gradient variance rather
	// than its second moment; default false.
	Centered bool `json:"centered" yaml:"centered"`
}

// DefaultRMSpropConfig returns torch.optim.RMSprop's defaults: alpha 0.99,
// eps 1e-8, no weight decay, no momentum, not centered.
func DefaultRMSpropConfig() RMSpropConfig { return RMSpropConfig{Alpha: 0.99, Eps: 1e-8} }

// Validate applies PyTorch's checks: alpha in [0, 1] (PyTorch checks only
// alpha >= 0; above 1 the average diverges), eps, weight decay and momentum
// finite and non-negative.
func (c RMSpropConfig) Validate() error {
	const huge = 1e300
	for _, f := range []struct {
		name  string
		v, hi float64
	}{
		{"alpha", c.Alpha, 1},
		{"eps", c.Eps, huge},
		{"weight_decay", c.WeightDecay, huge},
		{"momentum", c.Momentum, huge},
	} {
		if err := checkRange(KindRMSprop, f.name, f.v, 0, f.hi, false); err != nil {
			return err
		}
	}
	return checkEps(KindRMSprop, c.Eps)
}

// buffers returns the number of buffers per parameter and the indices of the
// optional ones (-1 when absent).
func (c RMSpropConfig) buffers() (n, momentum, gradAvg int) {
	n, momentum, gradAvg = 1, -1, -1 // square_avg is buffer 0
	if c.Momentum > 0 {
		momentum = n
		n++
	}
	if c.Centered {
		gradAvg = n
		n++
	}
	return n, momentum, gradAvg
}

// RMSprop is the RMSprop optimizer with PyTorch's arithmetic, including its
// optional momentum and centered variants.
type RMSprop[F Float] struct {
	cfg RMSpropConfig
	state[F]
}

// NewRMSprop returns an RMSprop optimizer, or an ErrConfig error if cfg is
// invalid.
func NewRMSprop[F Float](cfg RMSpropConfig) (*RMSprop[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n, _, _ := cfg.buffers()
	return &RMSprop[F]{cfg: cfg, state: state[F]{kind: KindRMSprop, nbuf: n}}, nil
}

// Config returns the hyperparameters in use.
func (o *RMSprop[F]) Config() RMSpropConfig { return o.cfg }

// Step implements Optimizer.
func (o *RMSprop[F]) Step(params []Param[F], lr float64) error {
	if err := o.prepare(params, lr); err != nil {
		return err
	}
	_, mi, gi := o.cfg.buffers()
	for i := range params {
		p := &params[i]
		sl := o.slots[p.Name]
		var buf, gavg []F
		if mi >= 0 {
			buf = sl.buf(mi)
		}
		if gi >= 0 {
			gavg = sl.buf(gi)
		}
		rmspropUpdate(p.Value, p.Grad, sl.buf(0), buf, gavg, o.cfg, decay(p, o.cfg.WeightDecay), lr)
	}
	o.steps++
	return nil
}

// rmspropUpdate is one RMSprop step over one parameter; buf (momentum) and
// gavg (centered) are nil when unused.
func rmspropUpdate[F Float](v, g, sq, buf, gavg []F, c RMSpropConfig, wd, lr float64) {
	g, sq = g[:len(v)], sq[:len(v)]
	alpha, keep := F(c.Alpha), F(1-c.Alpha)
	eps, wdF, mom, negLR := F(c.Eps), F(wd), F(c.Momentum), F(-lr)
	if buf != nil {
		buf = buf[:len(v)]
	}
	if gavg != nil {
		gavg = gavg[:len(v)]
	}
	for j := range v {
		gj := g[j]
		if wd != 0 {
			gj += wdF * v[j]
		}
		sq[j] = sq[j]*alpha + keep*gj*gj
		variance := sq[j]
		if gavg != nil {
			gavg[j] = gavg[j]*alpha + keep*gj
			variance -= gavg[j] * gavg[j]
		}
		avg := sqrt(variance) + eps
		if buf != nil {
			buf[j] = buf[j]*mom + gj/avg
			v[j] += negLR * buf[j]
		} else {
			v[j] += negLR * gj / avg
		}
	}
}

func (o *RMSprop[F]) hypers() []hyper {
	return []hyper{
		{"alpha", o.cfg.Alpha},
		{"eps", o.cfg.Eps},
		{"weight_decay", o.cfg.WeightDecay},
		{"momentum", o.cfg.Momentum},
		{"centered", boolHyper(o.cfg.Centered)},
	}
}

func (o *RMSprop[F]) setHypers(h *hyperSet) (int, func(), error) {
	c := RMSpropConfig{
		Alpha:       h.float("alpha"),
		Eps:         h.float("eps"),
		WeightDecay: h.float("weight_decay"),
		Momentum:    h.float("momentum"),
		Centered:    h.bool("centered"),
	}
	if err := h.done(); err != nil {
		return 0, nil, err
	}
	if err := c.Validate(); err != nil {
		return 0, nil, err
	}
	n, _, _ := c.buffers()
	return n, func() { o.cfg = c }, nil
}

// MarshalBinary implements Optimizer.
func (o *RMSprop[F]) MarshalBinary() ([]byte, error) { return marshalState(&o.state, o.hypers()) }

// UnmarshalBinary implements Optimizer.
func (o *RMSprop[F]) UnmarshalBinary(data []byte) error {
	return unmarshalState(&o.state, data, o.setHypers)
}
