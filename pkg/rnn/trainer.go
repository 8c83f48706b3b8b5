package rnn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// TrainerConfig sets how a Trainer computes a step.
type TrainerConfig struct {
	// Threads is the number of goroutines that share a step, each running
	// the whole forward and backward pass on a slice of the batch with its
	// own gradient buffer (no synchronisation inside the time loop).
	// Default 1.
	Threads int
	// BLASThreads is the number of threads of one OpenBLAS call; 0 leaves
	// the library's setting. With Threads > 1 use 1, so the goroutines do
	// not oversubscribe the cores.
	BLASThreads int
	// Clip is the maximum global L2 norm of the gradient (0: no clipping).
	Clip float64
	// Seed drives dropout masks.
	Seed uint64
}

// Validate reports an impossible setting.
func (c TrainerConfig) Validate() error {
	if c.Threads < 0 || c.BLASThreads < 0 {
		return fmt.Errorf("rnn: negative thread count (threads %d, blas threads %d)", c.Threads, c.BLASThreads)
	}
	if c.Clip < 0 || math.IsNaN(c.Clip) {
		return fmt.Errorf("rnn: clip must be >= 0, got %v", c.Clip)
	}
	return nil
}

// Trainer computes gradients of a Model on one or more goroutines and
// applies an optimizer. Gradients are those of the summed loss, so shards
// of a batch (goroutines here, workers in a cluster) add up exactly; Apply
// divides by the total target count.
type Trainer[F Float] struct {
	m        *Model[F]
	opt      optim.Optimizer[F]
	cfg      TrainerConfig
	params   []optim.Param[F]
	replicas []*replica[F]
	final    State[F]
}

// replica is one goroutine's share of a step.
type replica[F Float] struct {
	tape  *Tape[F]
	grads []F
	batch Batch[F]
	init  State[F]
	res   Result[F]
	err   error
}

// NewTrainer returns a trainer for m with optimizer opt (nil: gradients
// only, for callers that apply updates themselves).
func NewTrainer[F Float](m *Model[F], opt optim.Optimizer[F], cfg TrainerConfig) (*Trainer[F], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	if cfg.BLASThreads > 0 {
		SetBLASThreads(cfg.BLASThreads)
	}
	t := &Trainer[F]{m: m, opt: opt, cfg: cfg, params: m.Params.Optim()}
	for i := 0; i < cfg.Threads; i++ {
		r := &replica[F]{tape: m.NewTape(cfg.Seed + uint64(i))}
		if i == 0 {
			r.grads = m.Params.Grad
		} else {
			r.grads = make([]F, m.Params.Len())
		}
		t.replicas = append(t.replicas, r)
	}
	return t, nil
}

// Model returns the trained model.
func (t *Trainer[F]) Model() *Model[F] { return t.m }

// Optimizer returns the optimizer (nil when none was given).
func (t *Trainer[F]) Optimizer() optim.Optimizer[F] { return t.opt }

// Compute clears the gradient and sets m.Params.Grad to the gradient of the
// summed loss of b, starting from init (zero fields: zeros). It returns the
// summed loss and count, and the final state of the stack (a view of trainer
// memory, valid until the next call; Clone it to carry it to the next TBPTT
// window).
func (t *Trainer[F]) Compute(b *Batch[F], init State[F], train bool) (Result[F], error) {
	return t.ComputeReady(b, init, train, nil)
}

// ComputeReady is Compute that reports its progress: it calls ready(lo),
// when ready is set, each time m.Params.Grad[lo:] holds its final value
// for this step (every goroutine has finished those parameters and their
// gradients are summed), with lo decreasing through Model.ReadyOffsets (or
// a subset of them) down to 0. Compute writes Grad[lo:] no more after
// ready(lo), so the caller may read it, or reduce it in place with other
// workers, from another goroutine while the backward pass goes on below lo.
// ready is called on the calling goroutine and must not block for long;
// it is not called at all when the step fails (a non-finite loss).
func (t *Trainer[F]) ComputeReady(b *Batch[F], init State[F], train bool, ready func(lo int)) (Result[F], error) {
	P := min(len(t.replicas), b.B)
	if P <= 1 {
		r := t.replicas[0]
		clear(r.grads)
		res, err := r.tape.Forward(b, init, train)
		if err != nil {
			return res, err
		}
		r.tape.backward(r.grads, ready)
		return res, nil
	}
	marks := make(chan replicaMark, P*(len(t.m.ReadyOffsets())+2))
	for i := 0; i < P; i++ {
		r := t.replicas[i]
		b0, b1 := i*b.B/P, (i+1)*b.B/P
		sliceBatch(&r.batch, b, b0, b1, t.m.cfg)
		r.init.H = sliceState(r.init.H, init.H, b.B, t.m.cfg.Hidden, b0, b1)
		r.init.C = sliceState(r.init.C, init.C, b.B, t.m.cfg.Hidden, b0, b1)
		go func() {
			clear(r.grads)
			r.res, r.err = r.tape.Forward(&r.batch, r.init, train)
			if r.err == nil {
				r.tape.backward(r.grads, func(lo int) { marks <- replicaMark{i, lo} })
			}
			marks <- replicaMark{i, -1}
		}()
	}
	t.sumAsReady(marks, P, ready)
	var res Result[F]
	for i := 0; i < P; i++ {
		r := t.replicas[i]
		if r.err != nil {
			return res, r.err
		}
		res.Loss += r.res.Loss
		res.Count += r.res.Count
	}
	// Reassemble the final state of the whole batch.
	t.final.H = t.gatherState(t.final.H, b.B, P, func(r *replica[F]) []F { return r.res.Final.H })
	t.final.C = t.gatherState(t.final.C, b.B, P, func(r *replica[F]) []F { return r.res.Final.C })
	res.Final = t.final
	return res, nil
}

// replicaMark says that replica i's gradients from lo on are final; lo -1:
// the replica has finished (or failed).
type replicaMark struct{ i, lo int }

// sumAsReady receives the replicas' marks until all P have finished. Each
// time every replica has passed an offset, it adds the gradients of the
// range just completed into replica 0's (in replica order, as one sum
// after the whole pass would) and calls ready. The replicas go on below
// that range meanwhile: nothing else touches it.
func (t *Trainer[F]) sumAsReady(marks <-chan replicaMark, P int, ready func(lo int)) {
	n := t.m.Params.Len()
	pos := make([]int, P) // each replica's lowest final offset
	for i := range pos {
		pos[i] = n
	}
	summed, running, failed := n, P, false
	for running > 0 {
		mk := <-marks
		if mk.lo < 0 {
			running--
			failed = failed || t.replicas[mk.i].err != nil
			continue
		}
		pos[mk.i] = mk.lo
		lo := slices.Max(pos)
		if lo >= summed || failed {
			continue
		}
		dst := t.replicas[0].grads[lo:summed]
		for _, r := range t.replicas[1:P] {
			addTo(dst, r.grads[lo:summed])
		}
		summed = lo
		if ready != nil {
			ready(lo)
		}
	}
}

// gatherState concatenates the replicas' [LD, Bp, H] states into [LD, B, H].
func (t *Trainer[F]) gatherState(dst []F, B, P int, get func(*replica[F]) []F) []F {
	first := get(t.replicas[0])
	if first == nil {
		return nil
	}
	H := t.m.cfg.Hidden
	LD := len(first) / (t.replicas[0].batch.B * H)
	dst = grow(dst, LD*B*H)
	for i := 0; i < P; i++ {
		r := t.replicas[i]
		src := get(r)
		b0, b1 := i*B/P, (i+1)*B/P
		w := b1 - b0
		for l := 0; l < LD; l++ {
			copy(dst[(l*B+b0)*H:(l*B+b1)*H], src[l*w*H:(l+1)*w*H])
		}
	}
	return dst
}

// Apply divides the gradient by count (the number of targets the gradient
// sums over, across every shard and worker), clips it to the global norm,
// checks it is finite and applies the optimizer with learning rate lr. It
// returns the gradient norm before clipping.
func (t *Trainer[F]) Apply(count int, lr float64) (float64, error) {
	if count <= 0 {
		return 0, fmt.Errorf("rnn: no targets counted in this step")
	}
	scale := F(1 / float64(count))
	for i := range t.m.Params.Grad {
		t.m.Params.Grad[i] *= scale
	}
	var norm float64
	if t.cfg.Clip > 0 {
		norm = optim.ClipGlobalNorm(t.params, t.cfg.Clip)
	} else {
		norm = optim.ClipGlobalNorm(t.params, math.Inf(1))
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("%w: %v", optim.ErrNonFinite, optim.CheckFinite(t.params))
	}
	if t.opt == nil {
		return norm, nil
	}
	return norm, t.opt.Step(t.params, lr)
}

// Step runs Compute and Apply on one batch and returns the result (with the
// mean loss available from Result.Mean) and the gradient norm.
func (t *Trainer[F]) Step(b *Batch[F], init State[F], lr float64) (Result[F], float64, error) {
	res, err := t.Compute(b, init, true)
	if err != nil {
		return res, 0, err
	}
	norm, err := t.Apply(res.Count, lr)
	return res, norm, err
}

// sliceState copies columns [b0, b1) of a [LD, B, H] state into dst.
func sliceState[F Float](dst, src []F, B, H, b0, b1 int) []F {
	if src == nil {
		return nil
	}
	LD, w := len(src)/(B*H), b1-b0
	dst = grow(dst, LD*w*H)
	for l := 0; l < LD; l++ {
		copy(dst[l*w*H:(l+1)*w*H], src[(l*B+b0)*H:(l*B+b1)*H])
	}
	return dst
}

// Reseed restarts the dropout masks' random source of every goroutine from
// seed, so a step's masks depend on the seed alone (a distributed worker
// reseeds with its step and rank, and needs no RNG state in checkpoints).
func (t *Trainer[F]) Reseed(seed uint64) {
	for i, r := range t.replicas {
		r.tape.rng = rand.New(rand.NewPCG(seed, uint64(i)+0xd209))
	}
}
