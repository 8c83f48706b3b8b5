// Package scaling is a cost model of a data-parallel training step: the
// compute of one worker, a ring allreduce of the gradients, and the part of
// that allreduce hidden behind the backward pass. It is pure arithmetic:
// Fit reads allreduce measurements, Predict and Recommend answer "how fast
// on N workers and this link", and Validate compares the model with
// measured steps. docs/SCALING.md shows its figures; cmd/scalemodel prints
// them from docs/measurements/scaling.json.
package scaling

import (
	"errors"
	"fmt"
	"math"
)

// Ring is the cost of one ring allreduce of Bytes bytes over N ranks:
//
//	t = 2(N-1)·Alpha + 2(N-1)/N · Bytes · Beta
//
// Alpha is the time of one of the ring's 2(N-1) steps that does not depend
// on the bytes (a hop's latency and the per-step software cost); Beta the
// time per byte that crosses a link (the inverse of the rate the ring
// reaches, CPU included). nccl-tests' busbw is 1/Beta for large messages.
type Ring struct {
	Alpha float64 `json:"alpha_s"`
	Beta  float64 `json:"beta_s_per_byte"`
}

// Time is the allreduce time of bytes over n ranks (0 for one rank).
func (r Ring) Time(n int, bytes float64) float64 {
	if n <= 1 {
		return 0
	}
	hops := 2 * float64(n-1)
	return hops*r.Alpha + hops/float64(n)*bytes*r.Beta
}

// At returns the ring on a link of rate bytes/s, from this ring fitted on
// a link of fitted bytes/s: the share of the link the fitted ring reached
// (protocol framing, TCP headers) carries over, until the transport's CPU
// cost per byte binds: cpuRate is the bytes per second one rank's
// transport moves on the cores it has (0: unbounded). Alpha carries over
// unchanged.
func (r Ring) At(fitted, rate, cpuRate float64) Ring {
	beta := r.Beta * fitted / rate
	if cpuRate > 0 && 1/cpuRate > beta {
		beta = 1 / cpuRate
	}
	return Ring{Alpha: r.Alpha, Beta: beta}
}

// Sample is one measured allreduce: Ranks ranks reducing Bytes bytes took
// Seconds (a median over calls).
type Sample struct {
	Ranks   int     `json:"ranks"`
	Bytes   float64 `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// ErrFit is returned when the samples cannot determine the model.
var ErrFit = errors.New("scaling: cannot fit")

// Fit returns the Ring that minimises the squared relative error over the
// samples (relative, so that small messages, which fix Alpha, weigh as
// much as large ones). It needs at least two samples that differ in the
// ratio of bytes to hops; a negative coefficient (noise on a nearly
// bandwidth-bound set) is clamped to zero and the other refitted.
func Fit(samples []Sample) (Ring, error) {
	var a11, a12, a22, b1, b2 float64
	for i, s := range samples {
		if s.Ranks < 2 || s.Bytes <= 0 || s.Seconds <= 0 || math.IsInf(s.Seconds, 0) || math.IsNaN(s.Seconds) {
			return Ring{}, fmt.Errorf("%w: sample %d (%d ranks, %g bytes, %g s) is not a measurement", ErrFit, i, s.Ranks, s.Bytes, s.Seconds)
		}
		// Relative error: divide each equation by the measured time.
		x1, x2 := features(s)
		x1, x2 = x1/s.Seconds, x2/s.Seconds
		a11 += x1 * x1
		a12 += x1 * x2
		a22 += x2 * x2
		b1 += x1
		b2 += x2
	}
	det := a11*a22 - a12*a12
	if len(samples) < 2 || det <= 1e-12*a11*a22 {
		return Ring{}, fmt.Errorf("%w: %d samples do not separate latency from bandwidth (vary the bytes or the ranks)", ErrFit, len(samples))
	}
	r := Ring{Alpha: (b1*a22 - b2*a12) / det, Beta: (a11*b2 - a12*b1) / det}
	switch {
	case r.Beta <= 0:
		return Ring{}, fmt.Errorf("%w: the samples show no cost per byte", ErrFit)
	case r.Alpha < 0:
		r = Ring{Alpha: 0, Beta: b2 / a22}
	}
	return r, nil
}

// features are the coefficients of Alpha and Beta in a sample's time.
func features(s Sample) (hops, wire float64) {
	h := 2 * float64(s.Ranks-1)
	return h, h / float64(s.Ranks) * s.Bytes
}

// Step is one worker's training step without communication.
type Step struct {
	// ComputePerToken is the seconds of forward, backward and update per
	// token on one worker (its own cores, nothing shared).
	ComputePerToken float64 `json:"compute_s_per_token"`
	// BackwardShare is the part of the compute that is the backward pass
	// (during which gradient buckets can be reduced).
	BackwardShare float64 `json:"backward_share"`
	// Params is the number of gradient values reduced each step.
	Params float64 `json:"params"`
	// Hidden is the share of the backward pass that the allreduce can use
	// when overlapped (measured: below 1 because the last bucket is only
	// ready when backward ends, and because reducing competes with
	// backward for the CPU). 0 means no overlap.
	Hidden float64 `json:"hidden"`
}

// Validate reports a Step that cannot be used.
func (s Step) Validate() error {
	switch {
	case !(s.ComputePerToken > 0):
		return fmt.Errorf("scaling: compute_s_per_token %g must be > 0", s.ComputePerToken)
	case !(s.BackwardShare >= 0 && s.BackwardShare <= 1):
		return fmt.Errorf("scaling: backward_share %g must be in [0, 1]", s.BackwardShare)
	case !(s.Params > 0):
		return fmt.Errorf("scaling: params %g must be > 0", s.Params)
	case !(s.Hidden >= 0 && s.Hidden <= 1):
		return fmt.Errorf("scaling: hidden %g must be in [0, 1]", s.Hidden)
	}
	return nil
}

// Wire is how many bytes a gradient value takes on the wire.
type Wire struct {
	Name  string
	Bytes float64
}

// Wire precisions the ring supports.
var (
	FP32 = Wire{"fp32", 4}
	FP16 = Wire{"fp16", 2}
)

// Prediction is the model's step on N workers.
type Prediction struct {
	Workers        int
	TokensPerStep  float64 // per worker
	Wire           Wire
	Compute        float64 // seconds
	Allreduce      float64 // seconds, the whole reduction
	Exposed        float64 // seconds of allreduce not hidden behind backward
	StepSeconds    float64
	TokensPerSec   float64 // all workers
	Efficiency     float64 // Compute / StepSeconds: share of the compute-only ceiling
	RingLatencyPct float64 // share of the allreduce that is the 2(N-1)·Alpha term
}

// Predict is the step of n workers, each with tokens tokens per step,
// reducing over ring with wire precision w; compute, when positive,
// replaces the step's compute time (a measured ceiling under CPU sharing).
func Predict(st Step, ring Ring, n int, tokens float64, w Wire, compute float64) Prediction {
	if compute <= 0 {
		compute = st.ComputePerToken * tokens
	}
	ar := ring.Time(n, st.Params*w.Bytes)
	exposed := ar - st.Hidden*st.BackwardShare*compute
	if exposed < 0 {
		exposed = 0
	}
	p := Prediction{Workers: n, TokensPerStep: tokens, Wire: w, Compute: compute, Allreduce: ar, Exposed: exposed}
	p.StepSeconds = compute + exposed
	p.TokensPerSec = float64(n) * tokens / p.StepSeconds
	p.Efficiency = compute / p.StepSeconds
	if ar > 0 {
		p.RingLatencyPct = 100 * 2 * float64(n-1) * ring.Alpha / ar
	}
	return p
}
