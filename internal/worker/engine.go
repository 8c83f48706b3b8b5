package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/allreduce"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// engine is a worker's model, optimizer, data and carried state: the
// compute side of a worker, with no networking of its own.
type engine struct {
	job   job.Config
	hash  string // job.Hash(): the job this state belongs to
	task  task.Task
	model *rnn.Model[float32]
	opt   optim.Optimizer[float32]
	tr    *rnn.Trainer[float32]

	mu    sync.Mutex // held while the state changes
	step  int64      // updates applied
	carry []float32  // H then C of every stream, [L, Bg, H] each

	rank, world int
	init        rnn.State[float32]
	buf         []float32 // allreduce buffer: grads | loss, count | carry
	tail        []float32 // overlapped step: loss, count | carry
	buckets     []bucket  // overlapped step: the gradient's buckets, in reduction order
	parts       int       // overlapped step: the model's ready offsets
	// testReady, set by tests only, runs in the backward pass after each
	// ready offset has gone to the reducer (to hold backward there).
	testReady func(lo int)

	snapMu   sync.Mutex
	snapStep int64
	snap     []byte
}

// newEngine builds the model and data of job, at step 0.
func newEngine(jc job.Config) (*engine, error) {
	t, err := task.Open(jc)
	if err != nil {
		return nil, err
	}
	// This machine may be smaller than the coordinator's: refuse a model
	// that cannot fit before allocating it.
	if err := task.CheckMemory(jc, t); err != nil {
		t.Close()
		return nil, err
	}
	e := &engine{job: jc, hash: jc.Hash(), task: t, snapStep: -1}
	if err := e.build(); err != nil {
		t.Close()
		return nil, err
	}
	return e, nil
}

func (e *engine) build() error {
	mc, err := e.task.ModelConfig()
	if err != nil {
		return err
	}
	if e.model, err = rnn.New[float32](mc); err != nil {
		return err
	}
	if e.opt, err = optim.New[float32](e.job.Optimizer); err != nil {
		return err
	}
	if e.tr, err = newTrainer(e.model, e.opt, e.job); err != nil {
		return err
	}
	e.carry = make([]float32, e.carrySize())
	e.planBuckets()
	return nil
}

// planBuckets cuts the gradient for overlapped steps (cluster.bucket_bytes).
func (e *engine) planBuckets() {
	offs := e.model.ReadyOffsets()
	e.buckets = planBuckets(offs, e.model.Params.Len(), e.job.Cluster.BucketBytes)
	e.parts = len(offs)
}

func newTrainer(m *rnn.Model[float32], opt optim.Optimizer[float32], jc job.Config) (*rnn.Trainer[float32], error) {
	return rnn.NewTrainer(m, opt, rnn.TrainerConfig{Threads: jc.Train.Threads, BLASThreads: 1, Clip: jc.Train.Clip, Seed: jc.Train.Seed})
}

// setPolicy adopts jc, a job of the same hash whose policy may differ
// (cluster settings, train.clip, train.threads: what a resumed run may
// change): the state is kept, and every member computes alike again.
func (e *engine) setPolicy(jc job.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	tr, err := newTrainer(e.model, e.opt, jc)
	if err != nil {
		return err
	}
	e.tr, e.job = tr, jc
	e.planBuckets()
	return nil
}

func (e *engine) close() error { return e.task.Close() }

// carrySize is the length of the carried state of all streams.
func (e *engine) carrySize() int {
	if e.task.Streams() == 0 {
		return 0
	}
	n := e.model.Stack().StateSize(e.task.Streams())
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
	s := cluster.State{Step: e.step, Params: p, Optim: o, Carry: e.carry}
	return s.MarshalBinary()
}

// load replaces the state with b.
func (e *engine) load(b []byte) error {
	var s cluster.State
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

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// checksum returns a CRC-32C of the parameters and carried states (never 0,
// which means "not computed" on the wire).
func (e *engine) checksum() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.model.Params.Value
	c := crc32.Update(0, castagnoliTable, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
	if len(e.carry) > 0 {
		c = crc32.Update(c, castagnoliTable, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(e.carry))), 4*len(e.carry)))
	}
	return max(c, 1)
}

// snapshot keeps a copy of the current state for peers and checkpoints.
// It publishes the copy before releasing e.mu, so a fetch that waits for
// e.mu finds it even if the next step starts at once.
func (e *engine) snapshot() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, err := e.state()
	if err != nil {
		return err
	}
	e.snapMu.Lock()
	e.snap, e.snapStep = b, e.step
	e.snapMu.Unlock()
	return nil
}

// snapshotAt returns the snapshot if it is of step.
func (e *engine) snapshotAt(step int64) ([]byte, bool) {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	return e.snap, e.snapStep == step && e.snap != nil
}

// stateAt returns the state of step: the snapshot if it matches, else the
// live state if it matches (waiting for a running step to end).
func (e *engine) stateAt(step int64) ([]byte, error) {
	if b, ok := e.snapshotAt(step); ok {
		return b, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.snapshotAt(step); ok { // taken while this call waited
		return b, nil
	}
	if e.step != step {
		return nil, fmt.Errorf("cluster: state of step %d requested, this process holds step %d", step, e.step)
	}
	return e.state()
}

// setRing points the data at this rank's share.
func (e *engine) setRing(rank, world int) error {
	if err := e.task.SetRing(rank, world); err != nil {
		return err
	}
	e.rank, e.world = rank, world
	return nil
}

// stepResult is the outcome of one distributed step.
type stepResult struct {
	lossSum, count float64
	skipped        bool   // the update was skipped on every rank: non-finite values
	skipReason     string // where they were
	// compute is the time from the step's start to the end of backward.
	compute time.Duration
	// allreduce is the time from the end of backward until every ring
	// call had returned: the communication the step waited for (all of
	// it without overlap; with it, what backward did not hide).
	allreduce time.Duration
	// busbw is the ring's bus bandwidth over the calls' own wall time.
	busbw float64
	// calls lists the step's ring calls in order (gradient buckets, then
	// the tail; without overlap, one call, or two with compression).
	calls []bucketTiming
}

// ringTime sums the calls' wall time and payload bytes sent.
func (r stepResult) ringTime() (d time.Duration, sent int64) {
	for _, c := range r.calls {
		d += c.Reduce
		sent += c.BytesSent
	}
	return d, sent
}

// run executes step e.step on ring r with learning rate lr, overlapping
// the gradient's reduction with backward when cluster.overlap is set and
// the gradient makes more than one bucket (one bucket could only go at the
// end of backward: the step runs as without overlap, in fewer calls).
func (e *engine) run(ctx context.Context, r *allreduce.Ring, lr float64) (stepResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.job.Cluster.Overlap && len(e.buckets) > 1 {
		return e.runOverlapped(ctx, r, lr)
	}
	var res stepResult
	t0 := time.Now()
	batch, ids, reset, err := e.task.Batch(e.step)
	if err != nil {
		return res, fmt.Errorf("step %d: data: %w", e.step, err)
	}
	n := e.model.Params.Len()
	cs := e.carrySize()
	e.buf = grow(e.buf, n+2+cs)
	clear(e.buf[n:])
	bad, badReason := false, ""
	if batch.B > 0 {
		e.init = rnn.State[float32]{}
		if cs > 0 {
			e.gatherInit(ids, reset)
		}
		e.tr.Reseed(e.job.Train.Seed ^ uint64(e.step)*0x9E3779B97F4A7C15 ^ uint64(e.rank)<<48)
		out, err := e.tr.Compute(batch, e.init, true)
		if err != nil && !isNonFinite(err) {
			return res, fmt.Errorf("step %d: %w", e.step, err)
		}
		bad = err != nil
		if bad {
			badReason = fmt.Sprintf("rank %d: %v", e.rank, err)
		} else {
			copy(e.buf, e.model.Params.Grad)
			e.buf[n], e.buf[n+1] = float32(out.Loss), float32(out.Count)
			if cs > 0 {
				e.scatterFinal(ids, out.Final, e.buf[n+2:])
			}
		}
	} else {
		clear(e.buf[:n])
	}
	res.compute = time.Since(t0)
	t1 := time.Now()
	ar, err := e.allReduce(ctx, r, n, bad, &res, t0)
	res.allreduce = time.Since(t1)
	if err != nil {
		return res, err
	}
	copy(e.model.Params.Grad, e.buf[:n])
	return e.finish(res, r, ar.AnyBad, badReason, e.buf[n:], lr)
}

// finish applies a reduced step: the summed gradient in
// e.model.Params.Grad, the loss, count and carried states in tail; or
// skips it when anyBad (a rank's loss was not finite: badReason if it was
// this one's).
func (e *engine) finish(res stepResult, r *allreduce.Ring, anyBad bool, badReason string, tail []float32, lr float64) (stepResult, error) {
	d, _ := res.ringTime()
	if s := d.Seconds(); s > 0 && r.Size() > 1 {
		bytes := 4 * (e.model.Params.Len() + len(tail))
		res.busbw = float64(bytes) / s * 2 * float64(r.Size()-1) / float64(r.Size())
	}
	if anyBad {
		res.skipped = true
		res.skipReason = badReason
		if res.skipReason == "" {
			res.skipReason = "a non-finite loss or gradient on another rank"
		}
		e.step++ // the batch is consumed, the update skipped on every rank
		return res, nil
	}
	res.lossSum, res.count = float64(tail[0]), float64(tail[1])
	copy(e.carry, tail[2:])
	if _, err := e.tr.Apply(int(math.Round(res.count)), lr); err != nil {
		if !isNonFinite(err) {
			return res, fmt.Errorf("step %d: %w", e.step, err)
		}
		// Every rank holds the same summed gradient, so every rank finds
		// it non-finite and skips this update alike.
		res.skipped, res.skipReason = true, err.Error()
	}
	e.step++
	return res, nil
}

// runOverlapped is run with the gradient reduced in buckets while backward
// runs (see overlap.go).
func (e *engine) runOverlapped(ctx context.Context, r *allreduce.Ring, lr float64) (stepResult, error) {
	var res stepResult
	t0 := time.Now()
	batch, ids, reset, err := e.task.Batch(e.step)
	if err != nil {
		return res, fmt.Errorf("step %d: data: %w", e.step, err)
	}
	grad := e.model.Params.Grad
	cs := e.carrySize()
	e.tail = grow(e.tail, 2+cs)
	clear(e.tail)
	red := e.startReducer(ctx, r, grad, e.tail, t0)
	defer red.stop()
	last := readyMsg{last: true}
	badReason := ""
	if batch.B > 0 {
		e.init = rnn.State[float32]{}
		if cs > 0 {
			e.gatherInit(ids, reset)
		}
		e.tr.Reseed(e.job.Train.Seed ^ uint64(e.step)*0x9E3779B97F4A7C15 ^ uint64(e.rank)<<48)
		out, err := e.tr.ComputeReady(batch, e.init, true, func(lo int) {
			red.ready <- readyMsg{lo: lo, at: time.Since(t0)}
			if e.testReady != nil {
				e.testReady(lo)
			}
		})
		if err != nil && !isNonFinite(err) {
			return res, fmt.Errorf("step %d: %w", e.step, err)
		}
		if err != nil {
			// ComputeReady reported nothing ready: the reducer has not
			// touched grad. Send zeros, flagged bad.
			clear(grad)
			last.bad = true
			badReason = fmt.Sprintf("rank %d: %v", e.rank, err)
		} else {
			e.tail[0], e.tail[1] = float32(out.Loss), float32(out.Count)
			if cs > 0 {
				e.scatterFinal(ids, out.Final, e.tail[2:])
			}
		}
	} else {
		clear(grad)
	}
	res.compute = time.Since(t0)
	last.at = res.compute
	red.ready <- last
	t1 := time.Now()
	o := <-red.out
	res.allreduce = time.Since(t1)
	res.calls = o.timings
	if o.err != nil {
		return res, o.err
	}
	return e.finish(res, r, o.anyBad, badReason, e.tail, lr)
}

// allReduce sums e.buf (n gradients, then the loss, the token count and
// the carried states) over the ring. With cluster.compression the
// gradients travel in 16 bits, scaled by a power of two (exact in float32,
// the same on every rank) so that summed per-token gradients stay within
// fp16's range; the rest travels exact in a second call.
func (e *engine) allReduce(ctx context.Context, r *allreduce.Ring, n int, bad bool, sr *stepResult, t0 time.Time) (allreduce.Result, error) {
	comp := compression(e.job.Cluster.Compression)
	ready := time.Since(t0)
	record := func(lo, hi int, tail bool, res allreduce.Result) {
		sr.calls = append(sr.calls, bucketTiming{Lo: lo, Hi: hi, Tail: tail, Ready: ready,
			Start: time.Since(t0) - res.Stats.Duration, Reduce: res.Stats.Duration, BytesSent: res.Stats.BytesSent})
	}
	if comp == allreduce.None {
		res, err := r.AllReduce(ctx, e.buf, allreduce.Options{Op: allreduce.Sum, Bad: bad})
		record(0, len(e.buf), false, res)
		return res, err
	}
	scale := gradScale(e.job)
	g := e.buf[:n]
	for i := range g {
		g[i] *= scale
	}
	res, err := r.AllReduce(ctx, g, allreduce.Options{Op: allreduce.Sum, Compression: comp, Bad: bad})
	record(0, n, false, res)
	if err != nil {
		return res, err
	}
	tail, err := r.AllReduce(ctx, e.buf[n:], allreduce.Options{Op: allreduce.Sum, Bad: bad})
	record(0, len(e.buf)-n, true, tail)
	if err != nil {
		return res, err
	}
	inv := 1 / scale
	for i := range g {
		g[i] *= inv
	}
	res.AnyBad = res.AnyBad || tail.AnyBad
	res.Stats.Duration += tail.Stats.Duration
	res.Stats.BytesSent += tail.Stats.BytesSent
	res.Stats.BytesReceived += tail.Stats.BytesReceived
	res.Stats.Segments += tail.Stats.Segments
	return res, nil
}

// compression maps cluster.compression to the ring's encoding.
func compression(name string) allreduce.Compression {
	switch name {
	case job.CompressFP16:
		return allreduce.FP16
	case job.CompressBF16:
		return allreduce.BF16
	}
	return allreduce.None
}

// gradScale is 2^-k for the power of two k nearest the nominal tokens of a
// global batch (data.batch x data.seq): it turns summed gradients into
// per-token ones, exactly.
func gradScale(jc job.Config) float32 {
	tokens := float64(max(jc.Data.Batch, 1)) * float64(max(jc.Data.Seq, 1))
	return float32(math.Ldexp(1, -int(math.Round(math.Log2(tokens)))))
}

func isNonFinite(err error) bool {
	return errors.Is(err, rnn.ErrNonFinite) || errors.Is(err, optim.ErrNonFinite)
}

// gatherInit builds the initial state of this rank's rows from the carried
// state of all streams, zeroing streams that restart.
func (e *engine) gatherInit(ids []int, reset []bool) {
	H, L, Bg := e.job.Model.Hidden, e.job.Model.Layers, e.task.Streams()
	B := len(ids)
	per := L * Bg * H
	gather := func(dst, src []float32) []float32 {
		dst = grow(dst, L*B*H)
		for l := 0; l < L; l++ {
			for b, id := range ids {
				d := dst[(l*B+b)*H : (l*B+b+1)*H]
				if reset[b] {
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
func (e *engine) scatterFinal(ids []int, fin rnn.State[float32], dst []float32) {
	H, L, Bg := e.job.Model.Hidden, e.job.Model.Layers, e.task.Streams()
	per := L * Bg * H
	B := len(ids)
	put := func(dst, src []float32) {
		for l := 0; l < L; l++ {
			for b, id := range ids {
				copy(dst[(l*Bg+id)*H:(l*Bg+id+1)*H], src[(l*B+b)*H:(l*B+b+1)*H])
			}
		}
	}
	put(dst[:per], fin.H)
	if fin.C != nil {
		put(dst[per:], fin.C)
	}
}

// validate returns this rank's share of the validation loss of the
// current state over the first maxBatches validation batches (0: all),
// and how many it evaluated.
func (e *engine) validate(maxBatches int) (sum, count float64, batches int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.task.Validate(e.model, e.rank, e.world, maxBatches)
}

func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}
