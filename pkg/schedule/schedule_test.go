package schedule

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
)

func TestValidate(t *testing.T) {
	mod := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"default", DefaultConfig(), ""},
		{"zero lr", mod(func(c *Config) { c.BaseLR = 0 }), "base_lr"},
		{"nan lr", mod(func(c *Config) { c.BaseLR = math.NaN() }), "base_lr"},
		{"unknown kind", mod(func(c *Config) { c.Kind = "linear" }), `unknown kind "linear"`},
		{"negative warmup", mod(func(c *Config) { c.Warmup = -1 }), "warmup -1"},
		{"warmup start > 1", mod(func(c *Config) { c.Warmup, c.WarmupStart = 5, 1.5 }), "warmup_start"},
		{"warmup start 0", mod(func(c *Config) { c.Warmup, c.WarmupStart = 5, 0 }), ""},
		{"warmup start unused", mod(func(c *Config) { c.WarmupStart = -3 }), ""},
		{"base world 0", mod(func(c *Config) { c.ScaleByWorld, c.BaseWorld = true, 0 }), "base_world"},
		{"step size 0", mod(func(c *Config) { c.Kind, c.StepSize = KindStep, 0 }), "step_size"},
		{"step gamma 0", mod(func(c *Config) { c.Kind, c.Gamma = KindStep, 0 }), "gamma"},
		{"exp gamma inf", mod(func(c *Config) { c.Kind, c.Gamma = KindExponential, math.Inf(1) }), "gamma"},
		{"cosine no tmax", mod(func(c *Config) { c.Kind = KindCosine }), "t_max"},
		{"cosine eta > lr", mod(func(c *Config) { c.Kind, c.TMax, c.EtaMin = KindCosine, 10, 1 }), "eta_min"},
		{"plateau factor 1", mod(func(c *Config) { c.Kind, c.Plateau.Factor = KindPlateau, 1 }), "plateau.factor"},
		{"plateau patience", mod(func(c *Config) { c.Kind, c.Plateau.Patience = KindPlateau, -1 }), "plateau.patience"},
		{"plateau threshold", mod(func(c *Config) { c.Kind, c.Plateau.Threshold = KindPlateau, 1 }), "plateau.threshold"},
		{"plateau cooldown", mod(func(c *Config) { c.Kind, c.Plateau.Cooldown = KindPlateau, -2 }), "plateau.cooldown"},
		{"plateau min_lr", mod(func(c *Config) { c.Kind, c.Plateau.MinLR = KindPlateau, -1 }), "plateau.min_lr"},
		{"plateau eps", mod(func(c *Config) { c.Kind, c.Plateau.Eps = KindPlateau, math.NaN() }), "plateau.eps"},
		{"plateau fields unused", mod(func(c *Config) { c.Plateau.Factor = 7 }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrConfig mentioning %q", err, tt.want)
			}
			if _, err := New(tt.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c := DefaultConfig()
	c.BaseLR, c.Warmup = -1, -1
	err := c.Validate()
	for _, want := range []string{"base_lr", "warmup -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want mention of %q", err, want)
		}
	}
}

func mustNew(t *testing.T, cfg Config) *Schedule {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLR(t *testing.T) {
	cfg := func(f func(*Config)) Config {
		c := DefaultConfig()
		c.BaseLR = 0.1
		f(&c)
		return c
	}
	tests := []struct {
		name        string
		cfg         Config
		step, world int
		want        float64
	}{
		{"constant", cfg(func(c *Config) {}), 1000, 4, 0.1},
		{"negative step is step 0", cfg(func(c *Config) { c.Warmup, c.WarmupStart = 10, 0 }), -5, 1, 0},
		{"warmup from zero", cfg(func(c *Config) { c.Warmup, c.WarmupStart = 4, 0 }), 2, 1, 0.05},
		{"warmup end", cfg(func(c *Config) { c.Warmup, c.WarmupStart = 4, 0 }), 4, 1, 0.1},
		{"scaled", cfg(func(c *Config) { c.ScaleByWorld, c.BaseWorld = true, 2 }), 0, 6, 0.3},
		{"scaled world 0 is 1", cfg(func(c *Config) { c.ScaleByWorld, c.BaseWorld = true, 2 }), 0, 0, 0.05},
		{"unscaled ignores world", cfg(func(c *Config) {}), 0, 64, 0.1},
		{"scaled warmup", cfg(func(c *Config) { c.ScaleByWorld, c.Warmup, c.WarmupStart = true, 2, 0.5 }), 1, 4, 0.3},
		{"step", cfg(func(c *Config) { c.Kind, c.StepSize, c.Gamma = KindStep, 10, 0.5 }), 25, 1, 0.025},
		{"exponential", cfg(func(c *Config) { c.Kind, c.Gamma = KindExponential, 0.5 }), 3, 1, 0.0125},
		{"cosine half", cfg(func(c *Config) { c.Kind, c.TMax = KindCosine, 10 }), 5, 1, 0.05},
		{"cosine end", cfg(func(c *Config) { c.Kind, c.TMax, c.EtaMin = KindCosine, 10, 0.01 }), 10, 1, 0.01},
		{"cosine eta unscaled", cfg(func(c *Config) {
			c.Kind, c.TMax, c.EtaMin, c.ScaleByWorld = KindCosine, 10, 0.01, true
		}), 10, 8, 0.01},
		{"cosine after warmup", cfg(func(c *Config) { c.Kind, c.TMax, c.Warmup = KindCosine, 10, 3 }), 8, 1, 0.05},
		{"plateau fresh", cfg(func(c *Config) { c.Kind = KindPlateau }), 99, 1, 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.cfg)
			if got := s.LR(tt.step, tt.world); !near(got, tt.want) {
				t.Fatalf("LR(%d, %d) = %.17g, want %.17g", tt.step, tt.world, got, tt.want)
			}
		})
	}
}

// TestWorldChange checks the linear scaling rule follows the world size from
// one step to the next, plateau reductions included.
func TestWorldChange(t *testing.T) {
	c := DefaultConfig()
	c.Kind, c.BaseLR, c.ScaleByWorld, c.BaseWorld = KindPlateau, 0.1, true, 4
	c.Plateau.Patience = 0
	s := mustNew(t, c)
	if got := s.LR(0, 8); !near(got, 0.2) {
		t.Fatalf("world 8: %v", got)
	}
	mustObserve(t, s, 0, 1)
	if reduced := mustObserve(t, s, 1, 1); !reduced {
		t.Fatal("no reduction")
	}
	if got := s.LR(2, 2); !near(got, 0.1*0.1*2/4) {
		t.Fatalf("world 2 after reduction: %v", got)
	}
	if got := s.LR(2, 8); !near(got, 0.1*0.1*8/4) {
		t.Fatalf("world 8 after reduction: %v", got)
	}
}

func mustObserve(t *testing.T, s *Schedule, step int, loss float64) bool {
	t.Helper()
	r, err := s.Observe(step, loss)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestObserveErrors(t *testing.T) {
	c := DefaultConfig()
	c.Kind, c.Plateau.Patience, c.Warmup = KindPlateau, 0, 5
	s := mustNew(t, c)
	for _, loss := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := s.Observe(10, loss); !errors.Is(err, ErrLoss) || !strings.Contains(err.Error(), "step 10") {
			t.Errorf("Observe(10, %v) = %v, want ErrLoss naming the step", loss, err)
		}
	}
	// Observations during warmup do not count.
	for step := range 5 {
		if mustObserve(t, s, step, 1) {
			t.Fatalf("reduction during warmup at step %d", step)
		}
	}
	mustObserve(t, s, 10, 1)
	for _, step := range []int{10, 9, -1} {
		if _, err := s.Observe(step, 1); !errors.Is(err, ErrStep) {
			t.Errorf("Observe(%d) after step 10 = %v, want ErrStep", step, err)
		}
	}
	if f := s.Factor(); f != 1 {
		t.Fatalf("factor %v after rejected observations, want 1", f)
	}
	if !mustObserve(t, s, 11, 1) {
		t.Fatal("second bad observation with patience 0 did not reduce")
	}
}

func TestObserveOtherKinds(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	for step := range 50 {
		if mustObserve(t, s, step, 1) {
			t.Fatal("constant schedule reduced")
		}
	}
	if s.LR(50, 1) != DefaultConfig().BaseLR {
		t.Fatal("constant schedule changed")
	}
}

func TestMinLRFloor(t *testing.T) {
	c := DefaultConfig()
	c.Kind, c.BaseLR = KindPlateau, 1
	c.Plateau = PlateauConfig{Factor: 0.5, MinLR: 0.3, Eps: 1e-8}
	s := mustNew(t, c)
	want := []float64{1, 0.5, 0.3, 0.3, 0.3}
	mustObserve(t, s, 0, 1)
	for i, w := range want[1:] {
		reduced := mustObserve(t, s, i+1, 1)
		if got := s.LR(i+2, 1); !near(got, w) {
			t.Fatalf("observation %d: LR %v, want %v", i+1, got, w)
		}
		if reduced != (i < 2) {
			t.Fatalf("observation %d: reduced = %v", i+1, reduced)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c := DefaultConfig()
	c.Kind, c.Plateau.Patience = KindPlateau, 0
	s := mustNew(t, c)
	var wg sync.WaitGroup
	wg.Go(func() {
		for step := range 200 {
			if _, err := s.Observe(step, 1); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for step := range 200 {
				if lr := s.LR(step, 1); !(lr >= 0 && lr <= c.BaseLR) {
					t.Errorf("LR %v", lr)
				}
				if _, err := s.MarshalBinary(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func TestString(t *testing.T) {
	c := DefaultConfig()
	c.Warmup, c.ScaleByWorld, c.BaseWorld = 5, true, 8
	if got, want := mustNew(t, c).String(), "constant lr=0.001 warmup=5 from 0.333 x world/8"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

// TestFactorUnderflow checks that with MinLR and Eps zero the factor stops
// at the smallest float64 instead of reaching 0, a state UnmarshalBinary
// would reject.
func TestFactorUnderflow(t *testing.T) {
	c := DefaultConfig()
	c.Kind, c.Plateau = KindPlateau, PlateauConfig{Factor: 0.01, Eps: 0}
	s := mustNew(t, c)
	for step := range 400 {
		mustObserve(t, s, step, 1)
	}
	if f := s.Factor(); !(f > 0) {
		t.Fatalf("factor %v", f)
	}
	restart(t, s)
}
