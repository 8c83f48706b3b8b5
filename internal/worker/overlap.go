package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/recur-ml/recur/pkg/allreduce"
)

// A step with cluster.overlap reduces the gradient in buckets while the
// backward pass runs. Trainer.ComputeReady says, on the engine's
// goroutine, how far down the gradient is final; the engine hands that
// offset to a reducer goroutine, which reduces every bucket it covers, one
// ring call after another, in the order backward finishes them (head, top
// layer, ..., embedding). When backward ends the reducer takes the rest
// and then the tail (loss, token count, carried states) with the bad flag.
// Nothing is applied until every call has succeeded: the global token
// count (the gradient's divisor) and the bad flag come with the tail,
// global-norm clipping needs every bucket, and a ring that fails mid-step
// must leave weights, optimizer and carried state as they were, on every
// rank, so that the step is dropped everywhere.
//
// Every rank cuts the same buckets (they depend on the model and
// cluster.bucket_bytes alone) and makes the same calls in the same order,
// whatever its backward's timing: a rank with a non-finite loss or no rows
// still sends every bucket (zeros) so the calls line up; one with a
// non-finite loss sets the bad flag, which the ring ORs into every rank's
// result of the call.

// bucket is a range [lo, hi) of the gradient reduced in one ring call.
type bucket struct{ lo, hi int }

// planBuckets cuts a gradient of n elements at the model's ready offsets
// (decreasing, ending at 0) into buckets in reduction order: a bucket takes
// whole parts from the top down until it holds at least minBytes of
// float32 (0: one bucket per part); a last bucket below minBytes joins the
// one before, which backward finishes just before it.
func planBuckets(offs []int, n int, minBytes int64) []bucket {
	var out []bucket
	hi := n
	for _, o := range offs {
		if o < hi && (int64(hi-o)*4 >= minBytes || o == 0) {
			out = append(out, bucket{o, hi})
			hi = o
		}
	}
	if k := len(out); k >= 2 && int64(out[k-1].hi-out[k-1].lo)*4 < minBytes {
		out[k-2].lo = out[k-1].lo
		out = out[:k-1]
	}
	return out
}

// bucketTiming is one ring call of a step, for metrics: which part of the
// buffer, when its data was ready, when its call began and how long it
// took. Times count from the start of the step.
type bucketTiming struct {
	// Lo and Hi bound the elements reduced: gradient [Lo, Hi), or for the
	// tail 0 and its length. A plain step's one uncompressed call holds
	// the gradient and the tail: [0, gradient + tail).
	Lo, Hi int
	Tail   bool // the loss, token count and carried states
	// Ready is when backward had finished the range (for the tail: when
	// the whole step's compute had).
	Ready time.Duration
	// Start is when its ring call began: at Ready, or when the calls
	// before it were done.
	Start     time.Duration
	Reduce    time.Duration // the call's wall time
	BytesSent int64         // payload bytes this rank sent in the call
}

// readyMsg tells the reducer that the gradient from lo on is final, at
// time at (since the step began); last: backward has ended (lo is 0) and
// bad says whether this rank's contribution is unusable.
type readyMsg struct {
	lo   int
	at   time.Duration
	last bool
	bad  bool
}

// reduceOutcome is what the reducer hands back: whether any rank set the
// bad flag, and the calls it made.
type reduceOutcome struct {
	anyBad  bool
	timings []bucketTiming
	err     error
}

// reducer runs a step's ring calls on its own goroutine.
type reducer struct {
	ready  chan readyMsg
	out    chan reduceOutcome
	cancel context.CancelFunc
	done   chan struct{}
}

// startReducer starts the reducer of one step over grad (reduced in place,
// bucket by bucket) and tail. t0 is the start of the step.
func (e *engine) startReducer(ctx context.Context, r *allreduce.Ring, grad, tail []float32, t0 time.Time) *reducer {
	ctx, cancel := context.WithCancel(ctx)
	red := &reducer{
		// One message per ready offset at most, and the last: the engine
		// never blocks on a reducer that has stopped.
		ready:  make(chan readyMsg, e.parts+2),
		out:    make(chan reduceOutcome, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(red.done)
		red.out <- e.reduceBuckets(ctx, r, grad, tail, red.ready, t0)
	}()
	return red
}

// stop cancels the reducer (failing its ring call if one runs) and waits
// for its goroutine; it is a no-op once the reducer has finished.
func (red *reducer) stop() {
	red.cancel()
	<-red.done
}

// reduceBuckets reduces e.buckets as ready messages cover them, then the
// tail. It returns at the first failure: the ring is dead then, and the
// engine applies nothing.
func (e *engine) reduceBuckets(ctx context.Context, r *allreduce.Ring, grad, tail []float32, ready <-chan readyMsg, t0 time.Time) reduceOutcome {
	var o reduceOutcome
	comp := compression(e.job.Cluster.Compression)
	scale := gradScale(e.job)
	bad, last := false, false
	var computed time.Duration
	next := 0
	// The buckets as ready messages cover them; then the last message (the
	// tail is written and bad known only once backward has returned, after
	// its ready(0)).
	for next < len(e.buckets) || !last {
		var m readyMsg
		select {
		case m = <-ready:
		case <-ctx.Done():
			o.err = fmt.Errorf("step %d: waiting for the backward pass: %w", e.step, ctx.Err())
			return o
		}
		if m.last {
			m.lo, bad, last, computed = 0, m.bad, true, m.at
		}
		for ; next < len(e.buckets) && e.buckets[next].lo >= m.lo; next++ {
			b := e.buckets[next]
			bt := bucketTiming{Lo: b.lo, Hi: b.hi, Ready: m.at, Start: time.Since(t0)}
			res, err := reduceGrad(ctx, r, grad[b.lo:b.hi], comp, scale, bad)
			bt.Reduce, bt.BytesSent = res.Stats.Duration, res.Stats.BytesSent
			o.timings = append(o.timings, bt)
			if err != nil {
				o.err = fmt.Errorf("step %d: gradient bucket %d of %d [%d, %d): %w", e.step, next+1, len(e.buckets), b.lo, b.hi, err)
				return o
			}
			o.anyBad = o.anyBad || res.AnyBad
		}
	}
	bt := bucketTiming{Hi: len(tail), Tail: true, Ready: computed, Start: time.Since(t0)}
	res, err := r.AllReduce(ctx, tail, allreduce.Options{Op: allreduce.Sum, Bad: bad})
	bt.Reduce, bt.BytesSent = res.Stats.Duration, res.Stats.BytesSent
	o.timings = append(o.timings, bt)
	if err != nil {
		o.err = fmt.Errorf("step %d: loss, count and carried states: %w", e.step, err)
		return o
	}
	o.anyBad = o.anyBad || res.AnyBad
	return o
}

// reduceGrad sums g over the ring in place; with compression it travels
// in 16 bits, scaled by scale (a power of two, exact) around the call as
// engine.allReduce does for the whole gradient, so that each element sees
// the same operations in both paths.
func reduceGrad(ctx context.Context, r *allreduce.Ring, g []float32, comp allreduce.Compression, scale float32, bad bool) (allreduce.Result, error) {
	if comp == allreduce.None {
		return r.AllReduce(ctx, g, allreduce.Options{Op: allreduce.Sum, Bad: bad})
	}
	for i := range g {
		g[i] *= scale
	}
	res, err := r.AllReduce(ctx, g, allreduce.Options{Op: allreduce.Sum, Compression: comp, Bad: bad})
	if err != nil {
		return res, err
	}
	inv := 1 / scale
	for i := range g {
		g[i] *= inv
	}
	return res, nil
}
