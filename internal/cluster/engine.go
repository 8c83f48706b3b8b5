package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/recur-ml/recur/pkg/allreduce"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/rnn/optim"
	"github.com/recur-ml/recur/pkg/shard"
)

// engine is a worker's model, optimizer, data and carried state: the
// compute side of a worker, with no networking of its own.
type engine struct {
	job    JobConfig
	corpus *shard.TextCorpus
	model  *rnn.Model[float32]
	opt    optim.Optimizer[float32]
	tr     *rnn.Trainer[float32]

	mu    sync.Mutex // held while the state changes
	step  int64      // updates applied
	carry []float32  // H then C of every stream, [L, Bg, H] each

	rank, world int
	streams     *shard.Streams
	batch       rnn.Batch[float32]
	init        rnn.State[float32]
	buf         []float32 // allreduce buffer: grads | loss, count | carry

	snapMu   sync.Mutex
	snapStep int64
	snap     []byte
}

// newEngine builds the model and data of job, at step 0.
func newEngine(job JobConfig) (*engine, error) {
	corpus, err := shard.OpenText(job.Data.Text, shard.TextConfig{TrainFraction: job.Data.TrainFraction})
	if err != nil {
		return nil, err
	}
	e := &engine{job: job, corpus: corpus, snapStep: -1}
	if e.model, err = newModel(job, corpus.Vocab().Size()); err != nil {
		corpus.Close()
		return nil, err
	}
	if e.opt, err = optim.New[float32](job.Optimizer); err != nil {
		corpus.Close()
		return nil, err
	}
	if e.tr, err = rnn.NewTrainer(e.model, e.opt, rnn.TrainerConfig{Threads: job.Train.Threads, BLASThreads: 1, Clip: job.Train.Clip, Seed: job.Train.Seed}); err != nil {
		corpus.Close()
		return nil, err
	}
	e.carry = make([]float32, e.carrySize())
	return e, nil
}

// newModel builds the job's model for a vocabulary size.
func newModel(job JobConfig, vocab int) (*rnn.Model[float32], error) {
	cell, err := rnn.ParseCell(job.Model.Cell)
	if err != nil {
		return nil, err
	}
	return rnn.New[float32](rnn.Config{Shape: rnn.SeqToSeq, Vocab: vocab, Embed: job.Model.Embed, Cell: cell,
		Hidden: job.Model.Hidden, Layers: job.Model.Layers, Dropout: job.Model.Dropout, Seed: job.Train.Seed})
}

func (e *engine) close() error { return e.corpus.Close() }

// carrySize is the length of the carried state of all streams.
func (e *engine) carrySize() int {
	n := e.model.Stack().StateSize(e.job.Data.Batch)
	if e.job.Model.Cell == "lstm" {
		n *= 2
	}
	return n
}

// state encodes the current state; the caller holds e.mu.
func (e *engine) state() ([]byte, error) {
	p, err := e.model.MarshalBinary()
	if err != nil {
		return nil, err
	}
	o, err := e.opt.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s := State{Step: e.step, Params: p, Optim: o, Carry: e.carry}
	return s.MarshalBinary()
}

// load replaces the state with b.
func (e *engine) load(b []byte) error {
	var s State
	if err := s.UnmarshalBinary(b); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(s.Carry) != len(e.carry) {
		return fmt.Errorf("cluster: state carries %d values, this model needs %d", len(s.Carry), len(e.carry))
	}
	if err := e.model.UnmarshalBinary(s.Params); err != nil {
		return fmt.Errorf("cluster: state parameters: %w", err)
	}
	if len(s.Optim) > 0 {
		if err := e.opt.UnmarshalBinary(s.Optim); err != nil {
			return fmt.Errorf("cluster: state optimizer: %w", err)
		}
	}
	copy(e.carry, s.Carry)
	e.step = s.Step
	return nil
}

// snapshot keeps a copy of the current state for peers and checkpoints.
func (e *engine) snapshot() error {
	e.mu.Lock()
	b, err := e.state()
	step := e.step
	e.mu.Unlock()
	if err != nil {
		return err
	}
	e.snapMu.Lock()
	e.snap, e.snapStep = b, step
	e.snapMu.Unlock()
	return nil
}

// stateAt returns the state of step: the snapshot if it matches, else the
// live state if it matches (waiting for a running step to end).
func (e *engine) stateAt(step int64) ([]byte, error) {
	e.snapMu.Lock()
	if e.snapStep == step {
		b := e.snap
		e.snapMu.Unlock()
		return b, nil
	}
	e.snapMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.step != step {
		return nil, fmt.Errorf("cluster: state of step %d requested, this process holds step %d", step, e.step)
	}
	return e.state()
}

// setRing points the data at this rank's streams.
func (e *engine) setRing(rank, world int) error {
	if e.streams != nil && e.rank == rank && e.world == world {
		return nil
	}
	st, err := shard.NewStreams(e.corpus.Train(), shard.StreamConfig{Streams: e.job.Data.Batch, Steps: e.job.Data.Seq,
		Seed: e.job.Train.Seed, Rank: rank, World: world})
	if err != nil {
		return err
	}
	e.streams, e.rank, e.world = st, rank, world
	return nil
}

// stepResult is the outcome of one distributed step.
type stepResult struct {
	lossSum, count float64
	skipped        bool // some rank had a non-finite gradient
	compute        time.Duration
	allreduce      time.Duration
	busbw          float64
}

// run executes step e.step on ring r with learning rate lr.
func (e *engine) run(ctx context.Context, r *allreduce.Ring, lr float64) (stepResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var res stepResult
	t0 := time.Now()
	if err := e.streams.Seek(uint64(e.step)); err != nil {
		return res, err
	}
	sb, err := e.streams.Next()
	if err != nil {
		return res, err
	}
	n := e.model.Params.Len()
	cs := e.carrySize()
	e.buf = grow(e.buf, n+2+cs)
	clear(e.buf[n:])
	bad := false
	if sb.B > 0 {
		e.batch = rnn.Batch[float32]{T: sb.T, B: sb.B, Tokens: sb.Tokens, Targets: sb.Targets}
		e.gatherInit(sb)
		e.tr.Reseed(e.job.Train.Seed ^ uint64(e.step)*0x9E3779B97F4A7C15 ^ uint64(e.rank)<<48)
		out, err := e.tr.Compute(&e.batch, e.init, true)
		if err != nil && !isNonFinite(err) {
			return res, fmt.Errorf("step %d: %w", e.step, err)
		}
		bad = err != nil
		if !bad {
			copy(e.buf, e.model.Params.Grad)
			e.buf[n], e.buf[n+1] = float32(out.Loss), float32(out.Count)
			e.scatterFinal(sb, out.Final, e.buf[n+2:])
		}
	} else {
		clear(e.buf[:n])
	}
	res.compute = time.Since(t0)
	t1 := time.Now()
	ar, err := r.AllReduce(ctx, e.buf, allreduce.Options{Op: allreduce.Sum, Bad: bad})
	res.allreduce = time.Since(t1)
	if err != nil {
		return res, err
	}
	if s := res.allreduce.Seconds(); s > 0 && r.Size() > 1 {
		res.busbw = float64(4*len(e.buf)) / s * 2 * float64(r.Size()-1) / float64(r.Size())
	}
	if ar.AnyBad {
		res.skipped = true
		e.step++ // the batch is consumed, the update skipped on every rank
		return res, nil
	}
	res.lossSum, res.count = float64(e.buf[n]), float64(e.buf[n+1])
	copy(e.model.Params.Grad, e.buf[:n])
	copy(e.carry, e.buf[n+2:])
	if _, err := e.tr.Apply(int(math.Round(res.count)), lr); err != nil {
		return res, fmt.Errorf("step %d: %w", e.step, err)
	}
	e.step++
	return res, nil
}

func isNonFinite(err error) bool {
	return errors.Is(err, rnn.ErrNonFinite) || errors.Is(err, optim.ErrNonFinite)
}

// gatherInit builds the initial state of this rank's rows from the carried
// state of all streams, zeroing streams that restart.
func (e *engine) gatherInit(sb *shard.Batch) {
	H, L, Bg := e.job.Model.Hidden, e.job.Model.Layers, e.job.Data.Batch
	per := L * Bg * H
	gather := func(dst, src []float32) []float32 {
		dst = grow(dst, L*sb.B*H)
		for l := 0; l < L; l++ {
			for b, id := range sb.StreamIDs {
				d := dst[(l*sb.B+b)*H : (l*sb.B+b+1)*H]
				if sb.Reset[b] {
					clear(d)
					continue
				}
				copy(d, src[(l*Bg+id)*H:(l*Bg+id+1)*H])
			}
		}
		return dst
	}
	e.init.H = gather(e.init.H, e.carry[:per])
	if e.job.Model.Cell == "lstm" {
		e.init.C = gather(e.init.C, e.carry[per:])
	} else {
		e.init.C = nil
	}
}

// scatterFinal writes this rank's final states into their streams' slots of
// the (zeroed) global carry region.
func (e *engine) scatterFinal(sb *shard.Batch, fin rnn.State[float32], dst []float32) {
	H, L, Bg := e.job.Model.Hidden, e.job.Model.Layers, e.job.Data.Batch
	per := L * Bg * H
	put := func(dst, src []float32) {
		for l := 0; l < L; l++ {
			for b, id := range sb.StreamIDs {
				copy(dst[(l*Bg+id)*H:(l*Bg+id+1)*H], src[(l*sb.B+b)*H:(l*sb.B+b+1)*H])
			}
		}
	}
	put(dst[:per], fin.H)
	if fin.C != nil {
		put(dst[per:], fin.C)
	}
}

// validate returns this rank's share of the validation loss of the current
// state: streams over the validation split, split by rank like training.
func (e *engine) validate() (sum, count float64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Evaluate(e.model, e.corpus.Validation(), e.job.Data.Batch, e.job.Data.Seq, e.job.Train.ValWindows, e.rank, e.world, e.job.Train.Threads)
}

// Evaluate returns the summed cross-entropy and the token count of a
// language model over tokens read as B streams of T-step windows with the
// state carried (as in training), for rank of world (0 of 1: all of it).
// B is halved until the tokens hold a window per stream; maxWindows > 0
// caps the windows read.
func Evaluate(m *rnn.Model[float32], tokens shard.Tokens, B, T, maxWindows, rank, world, threads int) (sum, count float64, err error) {
	for B > 1 && tokens.Len() < int64(B*(T+1)) {
		B /= 2
	}
	st, err := shard.NewStreams(tokens, shard.StreamConfig{Streams: B, Steps: T, Rank: rank, World: world})
	if err != nil {
		return 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	n := int(st.WindowsPerEpoch())
	if maxWindows > 0 {
		n = min(n, maxWindows)
	}
	ev, err := rnn.NewTrainer(m, nil, rnn.TrainerConfig{Threads: max(threads, 1)})
	if err != nil {
		return 0, 0, err
	}
	defer m.Params.ZeroGrad()
	var carry rnn.State[float32]
	for i := 0; i < n; i++ {
		sb, err := st.Next()
		if err != nil {
			return 0, 0, fmt.Errorf("evaluate window %d: %w", i, err)
		}
		if sb.B == 0 {
			continue
		}
		res, err := ev.Compute(&rnn.Batch[float32]{T: sb.T, B: sb.B, Tokens: sb.Tokens, Targets: sb.Targets}, carry, false)
		if err != nil {
			return 0, 0, fmt.Errorf("evaluate window %d: %w", i, err)
		}
		carry = res.Final.Clone()
		sum += res.Loss
		count += float64(res.Count)
	}
	return sum, count, nil
}

func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
