package optim

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fixture is testdata/fixtures.json, written by testdata/gen_fixtures.py
// from torch.optim (see the script for how the trajectories are produced).
type fixture struct {
	TorchVersion string `json:"torch_version"`
	Params       []struct {
		Name    string    `json:"name"`
		Shape   []int     `json:"shape"`
		NoDecay bool      `json:"no_decay"`
		Init    []float64 `json:"init"`
	} `json:"params"`
	Grads []map[string][]float64 `json:"grads"`
	Cases []fixtureCase          `json:"cases"`
	Clip  []struct {
		MaxNorm    float64              `json:"max_norm"`
		Grads      map[string][]float64 `json:"grads"`
		NormF64    float64              `json:"norm_f64"`
		NormF32    float64              `json:"norm_f32"`
		ClippedF64 map[string][]float64 `json:"clipped_f64"`
		ClippedF32 map[string][]float64 `json:"clipped_f32"`
	} `json:"clip"`
}

type fixtureCase struct {
	Name    string                 `json:"name"`
	Kind    string                 `json:"kind"`
	Config  map[string]any         `json:"config"`
	LRs     []float64              `json:"lrs"`
	WantF64 []map[string][]float64 `json:"want_f64"`
	WantF32 []map[string][]float64 `json:"want_f32"`
}

func loadFixture(t testing.TB) *fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx fixture
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatalf("fixtures.json: %v", err)
	}
	return &fx
}

// config translates a torch.optim keyword set into a Config.
func (c fixtureCase) config(t testing.TB) Config {
	t.Helper()
	cfg := DefaultConfig(c.Kind)
	ad := &cfg.Adam
	if c.Kind == KindAdamW {
		ad = &cfg.AdamW
	}
	for k, v := range c.Config {
		f, _ := v.(float64)
		b, _ := v.(bool)
		switch c.Kind + "." + k {
		case "sgd.momentum":
			cfg.SGD.Momentum = f
		case "sgd.dampening":
			cfg.SGD.Dampening = f
		case "sgd.weight_decay":
			cfg.SGD.WeightDecay = f
		case "sgd.nesterov":
			cfg.SGD.Nesterov = b
		case "adam.betas", "adamw.betas":
			ad.Beta1, ad.Beta2 = v.([]any)[0].(float64), v.([]any)[1].(float64)
		case "adam.eps", "adamw.eps":
			ad.Eps = f
		case "adam.weight_decay", "adamw.weight_decay":
			ad.WeightDecay = f
		case "adam.amsgrad", "adamw.amsgrad":
			ad.AMSGrad = b
		case "rmsprop.alpha":
			cfg.RMSprop.Alpha = f
		case "rmsprop.eps":
			cfg.RMSprop.Eps = f
		case "rmsprop.weight_decay":
			cfg.RMSprop.WeightDecay = f
		case "rmsprop.momentum":
			cfg.RMSprop.Momentum = f
		case "rmsprop.centered":
			cfg.RMSprop.Centered = b
		default:
			t.Fatalf("case %s: unknown torch option %q", c.Name, k)
		}
	}
	return cfg
}

func convert[F Float](xs []float64) []F {
	out := make([]F, len(xs))
	for i, x := range xs {
		out[i] = F(x)
	}
	return out
}

// initParams returns the fixture's initial parameters with zero gradients.
func initParams[F Float](fx *fixture) []Param[F] {
	ps := make([]Param[F], len(fx.Params))
	for i, p := range fx.Params {
		ps[i] = Param[F]{Name: p.Name, Shape: p.Shape, Value: convert[F](p.Init), Grad: make([]F, len(p.Init)), NoDecay: p.NoDecay}
	}
	return ps
}

// setGrads loads the gradients of step k and returns a copy to detect writes.
func setGrads[F Float](fx *fixture, ps []Param[F], k int) [][]F {
	saved := make([][]F, len(ps))
	for i := range ps {
		copy(ps[i].Grad, convert[F](fx.Grads[k][ps[i].Name]))
		saved[i] = slices.Clone(ps[i].Grad)
	}
	return saved
}

// closeTo reports whether got is within rtol of want, relative to
// max(|want|, 1e-3) so values near zero are not held to an impossible bound.
func closeTo(got, want, rtol float64) bool {
	return math.Abs(got-want) <= rtol*math.Max(math.Abs(want), 1e-3)
}

func checkParams[F Float](t *testing.T, ps []Param[F], want map[string][]float64, rtol float64, where string) {
	t.Helper()
	for _, p := range ps {
		w := want[p.Name]
		if len(w) != len(p.Value) {
			t.Fatalf("%s: %s has %d values, fixture %d", where, p.Name, len(p.Value), len(w))
		}
		for j := range w {
			if !closeTo(float64(p.Value[j]), w[j], rtol) {
				t.Errorf("%s: %s[%d] = %.10g, PyTorch %.10g", where, p.Name, j, p.Value[j], w[j])
			}
		}
	}
}

// runCase steps a fresh optimizer through the case and compares every step.
func runCase[F Float](t *testing.T, fx *fixture, c fixtureCase, want []map[string][]float64, rtol float64) {
	opt, err := New[F](c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	ps := initParams[F](fx)
	for k, lr := range c.LRs {
		saved := setGrads(fx, ps, k)
		if err := opt.Step(ps, lr); err != nil {
			t.Fatalf("step %d: %v", k+1, err)
		}
		for i := range ps {
			if !slices.Equal(ps[i].Grad, saved[i]) {
				t.Fatalf("step %d: Step modified the gradient of %s", k+1, ps[i].Name)
			}
		}
		checkParams(t, ps, want[k], rtol, fmt.Sprintf("step %d", k+1))
	}
}

func TestAgainstPyTorch(t *testing.T) {
	fx := loadFixture(t)
	for _, c := range fx.Cases {
		t.Run(c.Name+"/float64", func(t *testing.T) { runCase[float64](t, fx, c, c.WantF64, 1e-6) })
		t.Run(c.Name+"/float32", func(t *testing.T) { runCase[float32](t, fx, c, c.WantF32, 1e-5) })
	}
}

func TestClipGlobalNormAgainstPyTorch(t *testing.T) {
	fx := loadFixture(t)
	for _, c := range fx.Clip {
		t.Run(fmt.Sprint("max_norm=", c.MaxNorm), func(t *testing.T) {
			clipCase[float64](t, fx, c.MaxNorm, c.Grads, c.NormF64, c.ClippedF64, 1e-6)
			clipCase[float32](t, fx, c.MaxNorm, c.Grads, c.NormF32, c.ClippedF32, 1e-5)
		})
	}
}

func clipCase[F Float](t *testing.T, fx *fixture, maxNorm float64, grads map[string][]float64, wantNorm float64, want map[string][]float64, rtol float64) {
	t.Helper()
	ps := initParams[F](fx)
	for i := range ps {
		ps[i].Grad = convert[F](grads[ps[i].Name])
	}
	if norm := ClipGlobalNorm(ps, maxNorm); !closeTo(norm, wantNorm, rtol) {
		t.Errorf("%T: norm %.10g, PyTorch %.10g", F(0), norm, wantNorm)
	}
	for _, p := range ps {
		for j, g := range p.Grad {
			if !closeTo(float64(g), want[p.Name][j], rtol) {
				t.Errorf("%T: clipped %s[%d] = %.10g, PyTorch %.10g", F(0), p.Name, j, g, want[p.Name][j])
			}
		}
	}
}

// TestResumeFromCheckpoint stops every case after two steps, saves the state,
// restores it into a fresh optimizer built from a default config (the state's
// hyperparameters win), feeds the parameters in reverse order, and expects
// bit-identical results to an uninterrupted run.
func TestResumeFromCheckpoint(t *testing.T) {
	fx := loadFixture(t)
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			ref, _ := New[float32](c.config(t))
			refPs := initParams[float32](fx)
			opt, _ := New[float32](c.config(t))
			ps := initParams[float32](fx)
			for k, lr := range c.LRs {
				if k == 2 {
					blob, err := opt.MarshalBinary()
					if err != nil {
						t.Fatal(err)
					}
					if opt, err = New[float32](DefaultConfig(c.Kind)); err != nil {
						t.Fatal(err)
					}
					if err := opt.UnmarshalBinary(blob); err != nil {
						t.Fatal(err)
					}
					slices.Reverse(ps)
				}
				setGrads(fx, refPs, k)
				setGrads(fx, ps, k)
				if err := ref.Step(refPs, lr); err != nil {
					t.Fatal(err)
				}
				if err := opt.Step(ps, lr); err != nil {
					t.Fatalf("step %d: %v", k+1, err)
				}
			}
			for _, p := range ps {
				i := slices.IndexFunc(refPs, func(q Param[float32]) bool { return q.Name == p.Name })
				if !slices.Equal(p.Value, refPs[i].Value) {
					t.Errorf("%s after resume: %v, uninterrupted %v", p.Name, p.Value, refPs[i].Value)
				}
			}
		})
	}
}
