package rnn

import (
	"fmt"

	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// ParamSpec describes one named parameter tensor inside a flat parameter
// vector. Names follow PyTorch state_dict names ("rnn.weight_ih_l0").
type ParamSpec struct {
	Name   string
	Shape  []int
	Offset int // first element in the flat vector
	Size   int // number of elements
}

// Params is the flat parameter vector of a model together with one gradient
// vector of the same length. Keeping all parameters in one buffer lets the
// optimizer, clipping and the ring allreduce work on a single slice.
type Params[F Float] struct {
	specs []ParamSpec
	index map[string]int
	Value []F // parameter values, laid out by specs
	Grad  []F // gradient of the loss with respect to Value
}

// builder collects parameter specs before the flat buffers are allocated.
type builder struct {
	specs []ParamSpec
	size  int
}

// add registers a parameter and returns its offset.
func (b *builder) add(name string, shape ...int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	off := b.size
	b.specs = append(b.specs, ParamSpec{Name: name, Shape: append([]int(nil), shape...), Offset: off, Size: n})
	b.size += n
	return off
}

func newParams[F Float](b *builder) *Params[F] {
	p := &Params[F]{specs: b.specs, index: make(map[string]int, len(b.specs))}
	for i, s := range b.specs {
		if _, dup := p.index[s.Name]; dup {
			panic(fmt.Sprintf("rnn: duplicate parameter name %q", s.Name))
		}
		p.index[s.Name] = i
	}
	p.Value = make([]F, b.size)
	p.Grad = make([]F, b.size)
	return p
}

// Specs returns the parameter descriptions in layout order.
func (p *Params[F]) Specs() []ParamSpec { return p.specs }

// Len returns the total number of scalar parameters.
func (p *Params[F]) Len() int { return len(p.Value) }

// Lookup returns the values and gradients of the named parameter.
func (p *Params[F]) Lookup(name string) (value, grad []F, spec ParamSpec, ok bool) {
	i, ok := p.index[name]
	if !ok {
		return nil, nil, ParamSpec{}, false
	}
	s := p.specs[i]
	return p.Value[s.Offset : s.Offset+s.Size], p.Grad[s.Offset : s.Offset+s.Size], s, true
}

// ZeroGrad clears the gradient vector.
func (p *Params[F]) ZeroGrad() { clear(p.Grad) }

// Optim returns views of every parameter for the optimizers in package optim.
// Weight decay applies to every parameter, as in PyTorch's default param group.
func (p *Params[F]) Optim() []optim.Param[F] {
	out := make([]optim.Param[F], len(p.specs))
	for i, s := range p.specs {
		out[i] = optim.Param[F]{
			Name:  s.Name,
			Shape: s.Shape,
			Value: p.Value[s.Offset : s.Offset+s.Size],
			Grad:  p.Grad[s.Offset : s.Offset+s.Size],
		}
	}
	return out
}

// view returns the n elements of buf starting at off.
func view[F Float](buf []F, off, n int) []F { return buf[off : off+n : off+n] }
