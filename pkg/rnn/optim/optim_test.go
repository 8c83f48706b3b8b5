package optim

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// allKinds has one config per code path that changes the state layout.
func allKinds() map[string]Config {
	sgdMom := DefaultConfig(KindSGD)
	sgdMom.SGD.Momentum = 0.9
	ams := DefaultConfig(KindAdam)
	ams.Adam.AMSGrad = true
	rms := DefaultConfig(KindRMSprop)
	rms.RMSprop.Momentum, rms.RMSprop.Centered = 0.5, true
	return map[string]Config{
		"sgd": DefaultConfig(KindSGD), "sgd_momentum": sgdMom,
		"adam": DefaultConfig(KindAdam), "adam_amsgrad": ams, "adamw": DefaultConfig(KindAdamW),
		"rmsprop": DefaultConfig(KindRMSprop), "rmsprop_centered_momentum": rms,
	}
}

// randParams returns params with the given sizes, named p0, p1, ...
func randParams[F Float](rng *rand.Rand, sizes ...int) []Param[F] {
	ps := make([]Param[F], len(sizes))
	for i, n := range sizes {
		ps[i] = Param[F]{Name: "p" + string(rune('0'+i)), Shape: []int{n}, Value: make([]F, n), Grad: make([]F, n)}
		for j := range n {
			ps[i].Value[j], ps[i].Grad[j] = F(rng.NormFloat64()), F(rng.NormFloat64())
		}
	}
	return ps
}

func values[F Float](ps []Param[F]) [][]F {
	out := make([][]F, len(ps))
	for i := range ps {
		out[i] = slices.Clone(ps[i].Value)
	}
	return out
}

func TestStepRejectsMismatchedParams(t *testing.T) {
	for kind, cfg := range allKinds() {
		for _, tc := range []struct {
			name   string
			mutate func([]Param[float64]) []Param[float64]
			want   string
		}{
			{"missing", func(ps []Param[float64]) []Param[float64] { return ps[:2] }, "got 2 parameters, state has 3"},
			{"extra", func(ps []Param[float64]) []Param[float64] {
				return append(ps, Param[float64]{Name: "p9", Value: []float64{1}, Grad: []float64{1}})
			}, "got 4 parameters"},
			{"renamed", func(ps []Param[float64]) []Param[float64] { ps[1].Name = "other"; return ps }, `"other" has no state`},
			{"duplicate", func(ps []Param[float64]) []Param[float64] { ps[2] = ps[0]; return ps }, `"p0" given twice`},
			{"resized", func(ps []Param[float64]) []Param[float64] {
				ps[1].Value, ps[1].Grad = ps[1].Value[:2], ps[1].Grad[:2]
				return ps
			}, `"p1" has 2 elements, state has 4`},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				opt, err := New[float64](cfg)
				if err != nil {
					t.Fatal(err)
				}
				ps := randParams[float64](rand.New(rand.NewPCG(1, 2)), 3, 4, 5)
				if err := opt.Step(ps, 0.1); err != nil {
					t.Fatal(err)
				}
				bad := tc.mutate(slices.Clone(ps))
				before := values(bad)
				err = opt.Step(bad, 0.1)
				if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Step: %v, want ErrParams containing %q", err, tc.want)
				}
				for i := range bad {
					if !slices.Equal(bad[i].Value, before[i]) {
						t.Errorf("failed Step modified %s", bad[i].Name)
					}
				}
				if err := opt.Step(ps, 0.1); err != nil {
					t.Errorf("Step with the original params after a failure: %v", err)
				}
			})
		}
	}
}

func TestFirstStepRejectsDuplicates(t *testing.T) {
	opt, _ := NewAdam[float32](DefaultAdamConfig())
	ps := randParams[float32](rand.New(rand.NewPCG(1, 2)), 3, 3)
	ps[1].Name = ps[0].Name
	if err := opt.Step(ps, 0.1); !errors.Is(err, ErrParams) {
		t.Fatalf("Step: %v, want ErrParams", err)
	}
	ps[1].Name = "fixed"
	if err := opt.Step(ps, 0.1); err != nil {
		t.Fatalf("Step after fixing the names: %v", err)
	}
}

func TestStepRejectsBadLearningRate(t *testing.T) {
	for _, lr := range []float64{-1e-3, math.NaN(), math.Inf(1)} {
		opt, _ := NewSGD[float64](DefaultSGDConfig())
		if err := opt.Step(randParams[float64](rand.New(rand.NewPCG(1, 2)), 2), lr); !errors.Is(err, ErrConfig) {
			t.Errorf("lr %v: %v, want ErrConfig", lr, err)
		}
	}
}

func TestStepPanicsOnLengthMismatch(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"w"`) {
			t.Fatalf("recover() = %v, want a panic naming the parameter", r)
		}
	}()
	opt, _ := NewSGD[float32](DefaultSGDConfig())
	_ = opt.Step([]Param[float32]{{Name: "w", Value: make([]float32, 3), Grad: make([]float32, 2)}}, 0.1)
}

func TestStepDoesNotAllocate(t *testing.T) {
	for kind, cfg := range allKinds() {
		opt, _ := New[float32](cfg)
		ps := randParams[float32](rand.New(rand.NewPCG(1, 2)), 64, 8, 32)
		if err := opt.Step(ps, 1e-3); err != nil { // allocates the state
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if err := opt.Step(ps, 1e-3); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Step, want 0", kind, allocs)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	mod := func(kind string, f func(*Config)) Config {
		c := DefaultConfig(kind)
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"sgd default", DefaultConfig(KindSGD), ""},
		{"adam default", DefaultConfig(KindAdam), ""},
		{"adamw default", DefaultConfig(KindAdamW), ""},
		{"rmsprop default", DefaultConfig(KindRMSprop), ""},
		{"unknown kind", DefaultConfig("lbfgs"), `unknown kind "lbfgs"`},
		{"empty kind", Config{}, "unknown kind"},
		{"sgd negative momentum", mod(KindSGD, func(c *Config) { c.SGD.Momentum = -0.1 }), "momentum = -0.1"},
		{"sgd nesterov without momentum", mod(KindSGD, func(c *Config) { c.SGD.Nesterov = true }), "nesterov needs"},
		{"sgd nesterov with dampening", mod(KindSGD, func(c *Config) {
			c.SGD.Nesterov, c.SGD.Momentum, c.SGD.Dampening = true, 0.9, 0.1
		}), "nesterov needs"},
		{"sgd nesterov ok", mod(KindSGD, func(c *Config) { c.SGD.Nesterov, c.SGD.Momentum = true, 0.9 }), ""},
		{"sgd NaN weight decay", mod(KindSGD, func(c *Config) { c.SGD.WeightDecay = math.NaN() }), "weight_decay = NaN"},
		{"adam beta1 = 1", mod(KindAdam, func(c *Config) { c.Adam.Beta1 = 1 }), "beta1 = 1"},
		{"adam beta1 = 0", mod(KindAdam, func(c *Config) { c.Adam.Beta1 = 0 }), ""},
		{"adam negative eps", mod(KindAdam, func(c *Config) { c.Adam.Eps = -1 }), "eps = -1"},
		{"adam zero eps", mod(KindAdam, func(c *Config) { c.Adam.Eps = 0 }), "eps = 0, want > 0"},
		{"rmsprop zero eps", mod(KindRMSprop, func(c *Config) { c.RMSprop.Eps = 0 }), "eps = 0, want > 0"},
		{"adamw section is used", mod(KindAdamW, func(c *Config) { c.AdamW.Beta2 = 2 }), "beta2 = 2"},
		{"adamw ignores adam section", mod(KindAdamW, func(c *Config) { c.Adam.Beta2 = 2 }), ""},
		{"rmsprop alpha > 1", mod(KindRMSprop, func(c *Config) { c.RMSprop.Alpha = 1.5 }), "alpha = 1.5"},
		{"rmsprop infinite momentum", mod(KindRMSprop, func(c *Config) { c.RMSprop.Momentum = math.Inf(1) }), "momentum = +Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			_, newErr := New[float32](tc.cfg)
			switch {
			case tc.want == "" && (err != nil || newErr != nil):
				t.Fatalf("Validate: %v, New: %v, want nil", err, newErr)
			case tc.want != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want ErrConfig containing %q", err, tc.want)
			case tc.want != "" && newErr == nil:
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestConfigFromJSON(t *testing.T) {
	cfg := DefaultConfig("")
	if err := json.Unmarshal([]byte(`{"kind": "adamw", "adamw": {"weight_decay": 0.1}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	opt, err := New[float32](cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultAdamWConfig()
	want.WeightDecay = 0.1
	if got := opt.(*Adam[float32]).Config(); got != want {
		t.Errorf("config %+v, want %+v (omitted fields keep PyTorch defaults)", got, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for kind, cfg := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			opt, _ := New[float64](cfg)
			ps := randParams[float64](rand.New(rand.NewPCG(3, 4)), 5, 1, 0, 7)
			for range 3 {
				if err := opt.Step(ps, 0.01); err != nil {
					t.Fatal(err)
				}
			}
			blob, err := opt.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			// Into float64 and float32 optimizers; both re-encode to the same state.
			o64, _ := New[float64](DefaultConfig(cfg.Kind))
			if err := o64.UnmarshalBinary(blob); err != nil {
				t.Fatal(err)
			}
			again, _ := o64.MarshalBinary()
			if !slices.Equal(blob, again) {
				t.Error("float64 re-encoding differs")
			}
			o32, _ := New[float32](DefaultConfig(cfg.Kind))
			if err := o32.UnmarshalBinary(blob); err != nil {
				t.Fatal(err)
			}
			ps32 := make([]Param[float32], len(ps))
			for i, p := range ps {
				ps32[i] = Param[float32]{Name: p.Name, Value: make([]float32, len(p.Value)), Grad: make([]float32, len(p.Value))}
			}
			if err := o32.Step(ps32, 0.01); err != nil {
				t.Errorf("Step after loading float64 state into float32: %v", err)
			}
		})
	}
}

func TestMarshalBeforeFirstStep(t *testing.T) {
	opt, _ := NewRMSprop[float32](DefaultRMSpropConfig())
	blob, err := opt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := NewRMSprop[float32](DefaultRMSpropConfig())
	if err := fresh.UnmarshalBinary(blob); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Step(randParams[float32](rand.New(rand.NewPCG(1, 1)), 3), 0.1); err != nil {
		t.Errorf("first Step after loading empty state: %v", err)
	}
}

// reseal rewrites the length field and checksum of an edited encoding.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint64(b[8:], uint64(len(b)))
	body := b[:len(b)-crcSize]
	binary.LittleEndian.PutUint32(b[len(body):], crc32.Checksum(body, castagnoli))
	return b
}

func TestUnmarshalErrors(t *testing.T) {
	adam, _ := NewAdam[float32](DefaultAdamConfig())
	ps := randParams[float32](rand.New(rand.NewPCG(5, 6)), 4, 2)
	if err := adam.Step(ps, 0.01); err != nil {
		t.Fatal(err)
	}
	good, _ := adam.MarshalBinary()
	edit := func(f func([]byte) []byte) []byte { return f(slices.Clone(good)) }
	kindAt := fixedHeader + 1 // first byte of the kind string
	for _, tc := range []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrCorrupt, "truncated: 0 bytes"},
		{"truncated", good[:len(good)-9], ErrCorrupt, "truncated"},
		{"trailing", append(slices.Clone(good), 0), ErrCorrupt, "1 trailing bytes"},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorrupt, "bad magic"},
		{"future version", edit(func(b []byte) []byte { b[4] = 9; return b }), ErrCorrupt, "version 9"},
		{"flipped bit", edit(func(b []byte) []byte { b[len(b)-10] ^= 1; return b }), ErrCorrupt, "checksum mismatch"},
		{"wrong kind", func() []byte {
			sgd, _ := NewSGD[float32](DefaultSGDConfig())
			_ = sgd.Step(ps, 0.1)
			b, _ := sgd.MarshalBinary()
			return b
		}(), ErrKind, `written by "sgd", this optimizer is "adam"`},
		{"adamw state", edit(func(b []byte) []byte {
			b[kindAt-1] = 5
			return reseal(slices.Insert(b, kindAt+4, 'w'))
		}), ErrKind, `written by "adamw"`},
		{"bad element size", edit(func(b []byte) []byte { b[6] = 3; return reseal(b) }), ErrCorrupt, "element size 3"},
		{"buffer count", edit(func(b []byte) []byte { b[7] = 3; return reseal(b) }), ErrCorrupt, "3 buffers per parameter"},
		{"invalid hyperparameter", edit(func(b []byte) []byte {
			i := strings.Index(string(b), "beta1") + 5
			binary.LittleEndian.PutUint64(b[i:], math.Float64bits(1.5))
			return reseal(b)
		}), ErrConfig, "beta1 = 1.5"},
		{"bad boolean", edit(func(b []byte) []byte {
			i := strings.Index(string(b), "amsgrad") + 7
			binary.LittleEndian.PutUint64(b[i:], math.Float64bits(0.5))
			return reseal(b)
		}), ErrCorrupt, `"amsgrad" = 0.5`},
		{"huge parameter", edit(func(b []byte) []byte {
			i := strings.Index(string(b), "p0") + 2
			binary.LittleEndian.PutUint64(b[i:], 1<<40)
			return reseal(b)
		}), ErrCorrupt, "do not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, _ := NewAdam[float32](DefaultAdamConfig())
			_ = opt.Step(ps, 0.01)
			before, _ := opt.MarshalBinary()
			err := opt.UnmarshalBinary(tc.data)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("UnmarshalBinary: %v, want %v containing %q", err, tc.want, tc.msg)
			}
			if after, _ := opt.MarshalBinary(); !slices.Equal(before, after) {
				t.Error("failed UnmarshalBinary changed the state")
			}
		})
	}
}

func TestUnmarshalRejectsUnknownNamesOnStep(t *testing.T) {
	src, _ := NewSGD[float64](SGDConfig{Momentum: 0.9})
	_ = src.Step(randParams[float64](rand.New(rand.NewPCG(1, 2)), 3, 4), 0.1)
	blob, _ := src.MarshalBinary()
	dst, _ := NewSGD[float64](SGDConfig{Momentum: 0.9})
	if err := dst.UnmarshalBinary(blob); err != nil {
		t.Fatal(err)
	}
	if got := dst.Steps(); got != 1 {
		t.Errorf("Steps() = %d after loading, want 1", got)
	}
	err := dst.Step(randParams[float64](rand.New(rand.NewPCG(1, 2)), 3, 5), 0.1)
	if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), `"p1" has 5 elements, state has 4`) {
		t.Fatalf("Step with a resized parameter after loading: %v", err)
	}
}

func TestClipGlobalNorm(t *testing.T) {
	ps := []Param[float32]{
		{Name: "a", Grad: []float32{3, 0}},
		{Name: "b", Grad: []float32{4}},
	}
	if norm := ClipGlobalNorm(ps, 10); norm != 5 || ps[0].Grad[0] != 3 || ps[1].Grad[0] != 4 {
		t.Errorf("under the limit: norm %v, grads %v %v; want 5 and unchanged", norm, ps[0].Grad, ps[1].Grad)
	}
	if norm := ClipGlobalNorm(ps, 1); norm != 5 {
		t.Errorf("norm %v, want 5 (before clipping)", norm)
	}
	if after := math.Hypot(float64(ps[0].Grad[0]), float64(ps[1].Grad[0])); math.Abs(after-1) > 1e-6 {
		t.Errorf("norm after clipping %v, want 1", after)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		ps := []Param[float32]{{Name: "a", Grad: []float32{1, bad}}}
		if norm := ClipGlobalNorm(ps, 1); !math.IsNaN(norm) && !math.IsInf(norm, 0) {
			t.Errorf("grad %v: norm %v, want non-finite", bad, norm)
		}
		if ps[0].Grad[0] != 1 {
			t.Errorf("grad %v: finite element changed to %v", bad, ps[0].Grad[0])
		}
	}
	if norm := ClipGlobalNorm[float64](nil, 1); norm != 0 {
		t.Errorf("no params: norm %v", norm)
	}
}

func TestCheckFinite(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    []float64
		want string
	}{
		{"finite", []float64{1, -1e300, 0}, ""},
		{"NaN", []float64{1, math.NaN()}, `"b", element 1 is NaN`},
		{"+Inf", []float64{math.Inf(1)}, `"b", element 0 is +Inf`},
		{"-Inf", []float64{0, 0, math.Inf(-1)}, `"b", element 2 is -Inf`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := []Param[float64]{{Name: "a", Grad: []float64{1, 2}}, {Name: "b", Grad: tc.g}}
			err := CheckFinite(ps)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckFinite: %v, want ErrNonFinite containing %q", err, tc.want)
			}
		})
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	for _, cfg := range allKinds() {
		opt, _ := New[float32](cfg)
		_ = opt.Step(randParams[float32](rand.New(rand.NewPCG(1, 2)), 3, 0, 2), 0.1)
		b, _ := opt.MarshalBinary()
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte("ROPT"), true)
	f.Fuzz(func(t *testing.T, data []byte, resealIt bool) {
		// Resealing lets the fuzzer past the checksum into the parser.
		if resealIt && len(data) >= fixedHeader+crcSize {
			data = reseal(slices.Clone(data))
		}
		for _, kind := range []string{KindSGD, KindAdam, KindAdamW, KindRMSprop} {
			opt, _ := New[float64](DefaultConfig(kind))
			if err := opt.UnmarshalBinary(data); err != nil {
				continue
			}
			again, err := opt.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			o2, _ := New[float64](DefaultConfig(kind))
			if err := o2.UnmarshalBinary(again); err != nil {
				t.Fatalf("re-encoded state does not decode: %v", err)
			}
			third, _ := o2.MarshalBinary()
			if !slices.Equal(again, third) {
				t.Fatal("encoding is not stable")
			}
		}
	})
}

func BenchmarkAdamStep(b *testing.B) {
	b.Run("float32/1M", func(b *testing.B) { benchAdam[float32](b, 1<<20) })
	b.Run("float64/1M", func(b *testing.B) { benchAdam[float64](b, 1<<20) })
}

func benchAdam[F Float](b *testing.B, n int) {
	ps := randParams[F](rand.New(rand.NewPCG(1, 2)), n)
	opt, _ := NewAdam[F](DefaultAdamConfig())
	if err := opt.Step(ps, 1e-3); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := opt.Step(ps, 1e-3); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
}

// Buffers agrees with the state each optimizer keeps: the buffer count
// byte of its encoding (byte 7) after a step.
func TestBuffers(t *testing.T) {
	want := map[string]int{"sgd": 0, "sgd_momentum": 1, "adam": 2, "adam_amsgrad": 3, "adamw": 2, "rmsprop": 1, "rmsprop_centered_momentum": 3}
	for name, cfg := range allKinds() {
		opt, err := New[float32](cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(randParams[float32](rand.New(rand.NewPCG(1, 2)), 3), 0.1); err != nil {
			t.Fatal(err)
		}
		b, err := opt.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Buffers(); got != int(b[7]) || got != want[name] {
			t.Errorf("%s: Buffers %d, encoded state has %d, want %d", name, got, b[7], want[name])
		}
	}
	if n := (Config{Kind: "lion"}).Buffers(); n != 0 {
		t.Errorf("unknown kind: %d buffers", n)
	}
}
