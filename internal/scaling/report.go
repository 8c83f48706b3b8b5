package scaling

import (
	"fmt"
	"io"
	"math"
)

// Report is the fitted model and everything docs/SCALING.md shows.
type Report struct {
	Input  *Input
	Ring   Ring // fitted on Input.LinkRate
	Checks []Check
	Rows   []Row
}

// Row is one predicted configuration: n workers on a link.
type Row struct {
	LinkGbit float64
	Ring     Ring       // at this link
	Batch    Prediction // at the input's reference batch, fp32, overlapped
	Plain    Prediction // the same without overlap
	Best     Prediction // Recommend's choice
	BestOK   bool
	// TwoLevel is the allreduce time of a two-level ring of Rows rows,
	// where it would differ from the flat ring.
	TwoLevel float64
	Rows     int
}

// Build fits the ring, validates the points and predicts the grid.
func Build(in *Input) (*Report, error) {
	ring, err := Fit(in.RingSamples)
	if err != nil {
		return nil, err
	}
	checks, err := Validate(in.Step, ring, in.Points)
	if err != nil {
		return nil, err
	}
	r := &Report{Input: in, Ring: ring, Checks: checks}
	plain := in.Step
	plain.Hidden = 0
	for _, gbit := range in.Predict.LinksGbit {
		at := ring.At(in.LinkRate, gbit*0.125e9, in.TransportCPURate)
		for _, n := range in.Predict.Workers {
			row := Row{LinkGbit: gbit, Ring: at,
				Batch: Predict(in.Step, at, n, in.Predict.Batch, FP32, 0),
				Plain: Predict(plain, at, n, in.Predict.Batch, FP32, 0)}
			row.Best, row.BestOK = Recommend(in.Step, at, n, in.Predict.Batches)
			row.TwoLevel, row.Rows = TwoLevel(at, n, in.Step.Params*FP32.Bytes)
			r.Rows = append(r.Rows, row)
		}
	}
	return r, nil
}

// MaxErrorPct is the largest absolute validation error, in percent.
func (r *Report) MaxErrorPct() float64 {
	m := 0.0
	for _, c := range r.Checks {
		m = math.Max(m, math.Abs(c.ErrorPct))
	}
	return m
}

// WriteMarkdown writes the fit, the validation and the predictions as
// markdown tables.
func (r *Report) WriteMarkdown(w io.Writer) error {
	in := r.Input
	p := &printer{w: w}
	p.f("Fitted ring (%s): Alpha = %.0f µs per step of the ring, Beta = 1/(%.3f GB/s), on links of %.3f GB/s (%.0f%% of the link).\n\n",
		in.Source, r.Ring.Alpha*1e6, 1/r.Ring.Beta/1e9, in.LinkRate/1e9, 100/r.Ring.Beta/in.LinkRate)
	p.f("| ranks | bytes | measured ms | fitted ms | error |\n|---|---|---|---|---|\n")
	for _, s := range in.RingSamples {
		f := r.Ring.Time(s.Ranks, s.Bytes)
		p.f("| %d | %.1f MB | %.1f | %.1f | %+.1f%% |\n", s.Ranks, s.Bytes/1e6, s.Seconds*1e3, f*1e3, 100*(f-s.Seconds)/s.Seconds)
	}
	p.f("\nValidation against the harness (predicted from each point's measured compute-only ceiling):\n\n")
	p.f("| workers | tokens/worker | wire | overlap | ceiling s | measured s | predicted s | error |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Checks {
		p.f("| %d | %.0f | %s | %v | %.3f | %.3f | %.3f | %+.1f%% |\n", c.Workers, c.Tokens, c.Wire, c.Overlap, c.Ceiling, c.Measured, c.Predicted, c.ErrorPct)
	}
	p.f("\nPredictions: %.0f tokens per worker per step, fp32, overlapped (without overlap in brackets); the recommendation is the smallest batch and widest wire reaching %.0f%% efficiency.\n\n", in.Predict.Batch, 100*Target)
	p.f("| link | workers | tokens/s | efficiency | ring latency share | recommended tokens/worker | wire | its efficiency | two-level ring allreduce |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		b, best := row.Batch, row.Best
		mark := ""
		if !row.BestOK {
			mark = " (target missed)"
		}
		two := "same as flat"
		if row.Rows > 1 {
			two = fmt.Sprintf("%.0f ms vs flat %.0f ms (%dx%d)", row.TwoLevel*1e3, b.Allreduce*1e3, row.Rows, b.Workers/row.Rows)
		}
		p.f("| %g Gbit/s | %d | %s (%s) | %.0f%% (%.0f%%) | %.0f%% | %.0f | %s | %.0f%%%s | %s |\n",
			row.LinkGbit, b.Workers, si(b.TokensPerSec), si(row.Plain.TokensPerSec), 100*b.Efficiency, 100*row.Plain.Efficiency,
			b.RingLatencyPct, best.TokensPerStep, best.Wire.Name, 100*best.Efficiency, mark, two)
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, a ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, a...)
	}
}

// si formats a rate with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
