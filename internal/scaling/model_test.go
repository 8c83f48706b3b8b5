package scaling

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestFitRecoversRing(t *testing.T) {
	want := Ring{Alpha: 150e-6, Beta: 1 / 0.118e9}
	rng := rand.New(rand.NewPCG(1, 2))
	var ss []Sample
	for _, n := range []int{2, 4, 8} {
		for _, b := range []float64{1e6, 4e6, 13.2e6} {
			noise := 1 + 0.01*(rng.Float64()-0.5) // ±0.5%
			ss = append(ss, Sample{Ranks: n, Bytes: b, Seconds: want.Time(n, b) * noise})
		}
	}
	got, err := Fit(ss)
	if err != nil {
		t.Fatal(err)
	}
	if rel(got.Beta, want.Beta) > 0.01 {
		t.Errorf("beta %g, want %g", got.Beta, want.Beta)
	}
	if rel(got.Alpha, want.Alpha) > 0.5 {
		t.Errorf("alpha %g, want %g", got.Alpha, want.Alpha)
	}
	for _, s := range ss {
		if e := rel(got.Time(s.Ranks, s.Bytes), s.Seconds); e > 0.02 {
			t.Errorf("%d ranks %g bytes: fitted %g s, sample %g s", s.Ranks, s.Bytes, got.Time(s.Ranks, s.Bytes), s.Seconds)
		}
	}
}

func TestFitRefusesWhatItCannotSeparate(t *testing.T) {
	r := Ring{Alpha: 1e-4, Beta: 1e-8}
	for name, ss := range map[string][]Sample{
		"one sample":  {{Ranks: 4, Bytes: 1e6, Seconds: r.Time(4, 1e6)}},
		"same ratio":  {{Ranks: 4, Bytes: 1e6, Seconds: r.Time(4, 1e6)}, {Ranks: 4, Bytes: 1e6, Seconds: 1.1 * r.Time(4, 1e6)}},
		"one rank":    {{Ranks: 1, Bytes: 1e6, Seconds: 1}, {Ranks: 4, Bytes: 1e6, Seconds: 1}},
		"zero time":   {{Ranks: 2, Bytes: 1e6, Seconds: 0}, {Ranks: 4, Bytes: 1e7, Seconds: 1}},
		"NaN time":    {{Ranks: 2, Bytes: 1e6, Seconds: math.NaN()}, {Ranks: 4, Bytes: 1e7, Seconds: 1}},
		"no per-byte": {{Ranks: 2, Bytes: 1e6, Seconds: 2}, {Ranks: 2, Bytes: 1e8, Seconds: 1}},
	} {
		if _, err := Fit(ss); !errors.Is(err, ErrFit) {
			t.Errorf("%s: err %v, want ErrFit", name, err)
		}
	}
}

func TestFitClampsNegativeLatency(t *testing.T) {
	// A bandwidth-bound set whose noise makes the small message a little
	// faster than the bytes alone explain.
	beta := 1e-8
	ss := []Sample{{Ranks: 2, Bytes: 1e6, Seconds: 0.9e6 * beta}, {Ranks: 4, Bytes: 1e7, Seconds: 1.5e7 * beta}}
	r, err := Fit(ss)
	if err != nil {
		t.Fatal(err)
	}
	if r.Alpha != 0 || r.Beta <= 0 {
		t.Errorf("fit %+v, want alpha clamped to 0 and a positive beta", r)
	}
}

func TestPredictOverlap(t *testing.T) {
	st := Step{ComputePerToken: 1e-4, BackwardShare: 0.6, Params: 3.3e6, Hidden: 0.8}
	ring := Ring{Alpha: 1e-4, Beta: 1 / 0.118e9}
	plain := st
	plain.Hidden = 0
	a := Predict(plain, ring, 4, 6400, FP32, 0)
	b := Predict(st, ring, 4, 6400, FP32, 0)
	if a.Compute != 0.64 || a.Exposed != a.Allreduce || a.StepSeconds != a.Compute+a.Allreduce {
		t.Errorf("no overlap: %+v", a)
	}
	// The allreduce (about 0.17 s) fits in 0.8 of a 0.384 s backward.
	if b.Exposed != 0 || b.Efficiency != 1 {
		t.Errorf("overlap: %+v, want the allreduce hidden", b)
	}
	if h := Predict(st, ring, 4, 640, FP32, 0); h.Exposed <= 0 || h.Efficiency >= 1 {
		t.Errorf("a small batch cannot hide the allreduce: %+v", h)
	}
	if one := Predict(st, ring, 1, 6400, FP32, 0); one.Allreduce != 0 || one.Efficiency != 1 {
		t.Errorf("one worker: %+v", one)
	}
	if f16 := Predict(plain, ring, 4, 6400, FP16, 0); rel(f16.Allreduce-2*3*ring.Alpha, (a.Allreduce-2*3*ring.Alpha)/2) > 1e-9 {
		t.Errorf("fp16 moves half the bytes: %g vs %g", f16.Allreduce, a.Allreduce)
	}
}

func TestRecommendPrefersSmallBatchAndFP32(t *testing.T) {
	st := Step{ComputePerToken: 1e-4, BackwardShare: 0.6, Params: 3.3e6}
	ring := Ring{Alpha: 1e-4, Beta: 1 / 0.118e9}
	batches := []float64{800, 1600, 3200, 6400, 12800, 25600}
	p, ok := Recommend(st, ring, 8, batches)
	if !ok || p.Efficiency < Target {
		t.Fatalf("%+v ok=%v", p, ok)
	}
	// Every smaller batch misses the target in both precisions.
	for _, b := range batches {
		if b >= p.TokensPerStep {
			break
		}
		for _, w := range []Wire{FP32, FP16} {
			if e := Predict(st, ring, 8, b, w, 0).Efficiency; e >= Target {
				t.Errorf("batch %g %s reaches %.3f but %g %s was recommended", b, w.Name, e, p.TokensPerStep, p.Wire.Name)
			}
		}
	}
	if p.Wire == FP16 && Predict(st, ring, 8, p.TokensPerStep, FP32, 0).Efficiency >= Target {
		t.Errorf("fp16 recommended where fp32 reaches the target")
	}
	slow := Ring{Alpha: 1, Beta: 1e-6}
	if q, ok := Recommend(st, slow, 8, batches); ok || q.TokensPerStep != 25600 || q.Wire != FP16 {
		t.Errorf("unreachable target: %+v ok=%v, want the largest batch in fp16", q, ok)
	}
}

func TestTwoLevelCutsLatency(t *testing.T) {
	ring := Ring{Alpha: 1e-3, Beta: 1e-9}
	flat := ring.Time(256, 13e6)
	two, rows := TwoLevel(ring, 256, 13e6)
	if rows != 16 || two >= flat {
		t.Errorf("256 ranks: two-level %g s (rows %d), flat %g s", two, rows, flat)
	}
	// Without latency it moves what a flat ring moves, 2(N-1)/N of the
	// bytes per rank: both are bandwidth-optimal.
	bw := Ring{Beta: 1e-9}
	two, _ = TwoLevel(bw, 256, 13e6)
	if rel(two, bw.Time(256, 13e6)) > 1e-12 {
		t.Errorf("two-level %g s, flat %g s: want the same bytes", two, bw.Time(256, 13e6))
	}
	if p, rows := TwoLevel(ring, 7, 1e6); rows != 1 || p != ring.Time(7, 1e6) {
		t.Errorf("prime rank count: %g rows %d", p, rows)
	}
}

func TestValidate(t *testing.T) {
	st := Step{ComputePerToken: 1e-4, BackwardShare: 0.6, Params: 1e6, Hidden: 0.5}
	ring := Ring{Alpha: 1e-4, Beta: 1e-8}
	pts := []Point{
		{Workers: 4, Tokens: 3200, Wire: "fp32", Overlap: false, Ceiling: 1, Measured: 1 + ring.Time(4, 4e6)},
		{Workers: 4, Tokens: 3200, Wire: "fp16", Overlap: true, Ceiling: 0.01, Measured: 0.01 + ring.Time(4, 2e6) - 0.5*0.6*0.01},
	}
	cs, err := Validate(st, ring, pts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if math.Abs(c.ErrorPct) > 1e-9 {
			t.Errorf("%+v: error %g%%", c.Point, c.ErrorPct)
		}
	}
	if _, err := Validate(st, ring, []Point{{Workers: 2, Wire: "int8", Ceiling: 1, Measured: 1}}); err == nil {
		t.Error("unknown wire accepted")
	}
	if _, err := Validate(st, ring, []Point{{Workers: 2, Wire: "fp32", Ceiling: 0, Measured: 1}}); err == nil {
		t.Error("zero ceiling accepted")
	}
}

func TestStepValidate(t *testing.T) {
	good := Step{ComputePerToken: 1e-4, BackwardShare: 0.6, Params: 1e6, Hidden: 0.5}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Step{
		{ComputePerToken: 0, BackwardShare: 0.6, Params: 1},
		{ComputePerToken: math.NaN(), BackwardShare: 0.6, Params: 1},
		{ComputePerToken: 1, BackwardShare: 1.5, Params: 1},
		{ComputePerToken: 1, BackwardShare: 0.5, Params: 0},
		{ComputePerToken: 1, BackwardShare: 0.5, Params: 1, Hidden: -1},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func rel(a, b float64) float64 { return math.Abs(a-b) / math.Abs(b) }

func TestRingAtFasterLinks(t *testing.T) {
	fitted := Ring{Alpha: 1e-4, Beta: 1 / (0.95 * 0.125e9)} // 95% of 1 Gbit/s
	r := fitted.At(0.125e9, 1.25e9, 0)
	if rel(1/r.Beta, 0.95*1.25e9) > 1e-12 || r.Alpha != fitted.Alpha {
		t.Errorf("10 Gbit/s: %+v", r)
	}
	// A transport that moves 0.5 GB/s per rank caps a 25 Gbit/s link.
	if c := fitted.At(0.125e9, 3.125e9, 0.5e9); rel(1/c.Beta, 0.5e9) > 1e-12 {
		t.Errorf("CPU-bound: %g B/s, want 0.5e9", 1/c.Beta)
	}
	if c := fitted.At(0.125e9, 0.125e9, 0.5e9); c != fitted {
		t.Errorf("a slow link is not CPU-bound: %+v", c)
	}
}
