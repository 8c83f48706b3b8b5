package scaling

import (
	"fmt"
	"math"
)

// Target is the efficiency Recommend looks for: the step at most 1/0.9 of
// the compute-only ceiling.
const Target = 0.9

// Recommend picks, for n workers on ring, the smallest batch per worker
// (from batches, in tokens, ascending) and the widest wire precision that
// reach Target efficiency: a smaller batch keeps the optimisation closer to
// one worker's, and fp32 keeps the gradients exact. Where none reaches it,
// it returns the most efficient choice. ok says whether the target was
// reached.
func Recommend(st Step, ring Ring, n int, batches []float64) (best Prediction, ok bool) {
	first := true
	for _, b := range batches {
		for _, w := range []Wire{FP32, FP16} {
			p := Predict(st, ring, n, b, w, 0)
			if p.Efficiency >= Target {
				return p, true
			}
			if first || p.Efficiency > best.Efficiency {
				best, first = p, false
			}
		}
	}
	return best, false
}

// TwoLevel is the allreduce time of a two-level ring over n = rows·cols
// ranks (rows the ranks that share a fast level, or simply the square
// root): reduce-scatter along each row, allreduce of each 1/rows share down
// the columns, all-gather along the rows. Its latency term grows with
// rows+cols instead of n, which is what a flat ring needs past the point
// where 2(n-1)·Alpha dominates.
func TwoLevel(ring Ring, n int, bytes float64) (seconds float64, rows int) {
	rows = int(math.Round(math.Sqrt(float64(n))))
	for rows > 1 && n%rows != 0 {
		rows--
	}
	cols := n / rows
	if rows <= 1 || cols <= 1 {
		return ring.Time(n, bytes), 1
	}
	r := float64(rows)
	// Reduce-scatter and all-gather along a row: (rows-1) steps each.
	row := 2*(r-1)*ring.Alpha + 2*(r-1)/r*bytes*ring.Beta
	return row + ring.Time(cols, bytes/r), rows
}

// Point is a measured training step to validate the model against.
type Point struct {
	Workers  int     `json:"workers"`
	Tokens   float64 `json:"tokens_per_worker"`
	Wire     string  `json:"wire"`
	Overlap  bool    `json:"overlap"`
	Ceiling  float64 `json:"ceiling_s"`  // measured step with the allreduce skipped
	Measured float64 `json:"measured_s"` // measured step
}

// Check is a Point beside the model's prediction.
type Check struct {
	Point
	Predicted float64
	ErrorPct  float64 // 100·(Predicted-Measured)/Measured
}

// Validate predicts each point from its measured ceiling (the compute under
// the harness's CPU sharing) and the ring, and reports the relative error.
func Validate(st Step, ring Ring, pts []Point) ([]Check, error) {
	out := make([]Check, 0, len(pts))
	for i, p := range pts {
		w, err := wire(p.Wire)
		if err != nil {
			return nil, fmt.Errorf("point %d: %w", i, err)
		}
		if !(p.Ceiling > 0 && p.Measured > 0) || p.Workers < 1 {
			return nil, fmt.Errorf("point %d: workers %d, ceiling %g s, measured %g s: not a measurement", i, p.Workers, p.Ceiling, p.Measured)
		}
		s := st
		if !p.Overlap {
			s.Hidden = 0
		}
		pred := Predict(s, ring, p.Workers, p.Tokens, w, p.Ceiling)
		out = append(out, Check{Point: p, Predicted: pred.StepSeconds, ErrorPct: 100 * (pred.StepSeconds - p.Measured) / p.Measured})
	}
	return out, nil
}

func wire(name string) (Wire, error) {
	switch name {
	case "fp32", "", "none":
		return FP32, nil
	case "fp16", "bf16":
		return Wire{name, 2}, nil
	}
	return Wire{}, fmt.Errorf("scaling: wire %q: want fp32, fp16 or bf16", name)
}
