package rnn

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/recur-ml/recur/pkg/safetensors"
)

// Fixtures in testdata/ come from PyTorch (testdata/gen_fixtures.py) in
// float64. Recur must match them to 1e-9 in float64 and 1e-5 in float32.

func loadFixture(t *testing.T, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func fixF64(t *testing.T, f *safetensors.File, name string) []float64 {
	t.Helper()
	ten, ok := f.Tensors[name]
	if !ok {
		t.Fatalf("fixture lacks %q", name)
	}
	v, err := ten.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fixInts(t *testing.T, f *safetensors.File, name string) []int64 {
	t.Helper()
	ten := f.Tensors[name]
	if ten.DType != "I64" {
		t.Fatalf("%s: dtype %s, want I64", name, ten.DType)
	}
	out := make([]int64, len(ten.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(ten.Data[i*8:]))
	}
	return out
}

func toF[F Float](v []float64) []F {
	if v == nil {
		return nil
	}
	out := make([]F, len(v))
	for i, x := range v {
		out[i] = F(x)
	}
	return out
}

func compare[F Float](t *testing.T, what string, got []F, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol*(1+math.Abs(want[i])) || math.IsNaN(d) {
			t.Fatalf("%s[%d] = %.10g, PyTorch %.10g (diff %.3g > %.1g)", what, i, got[i], want[i], d, tol)
		}
	}
}

func atoi(t *testing.T, f *safetensors.File, key string) int {
	n, err := strconv.Atoi(f.Metadata[key])
	if err != nil {
		t.Fatalf("metadata %s: %v", key, err)
	}
	return n
}

func checkStackFixture[F Float](t *testing.T, f *safetensors.File, tol float64) {
	cell, err := ParseCell(f.Metadata["cell"])
	if err != nil {
		t.Fatal(err)
	}
	cfg := StackConfig{Cell: cell, Input: atoi(t, f, "input"), Hidden: atoi(t, f, "hidden"),
		Layers: atoi(t, f, "layers"), Bidirectional: f.Metadata["bidirectional"] == "true"}
	T, B := atoi(t, f, "T"), atoi(t, f, "B")
	b := &builder{}
	s, err := newStack[F](cfg, "rnn.", b)
	if err != nil {
		t.Fatal(err)
	}
	p := newParams[F](b)
	s.vals = p.Value
	for _, spec := range p.Specs() {
		copy(p.Value[spec.Offset:], toF[F](fixF64(t, f, spec.Name)))
	}
	var lengths []int
	for _, L := range fixInts(t, f, "lengths") {
		lengths = append(lengths, int(L))
	}
	init := State[F]{H: toF[F](fixF64(t, f, "h0"))}
	var dFinal State[F]
	dFinal.H = toF[F](fixF64(t, f, "Rh"))
	if cell == LSTM {
		init.C = toF[F](fixF64(t, f, "c0"))
		dFinal.C = toF[F](fixF64(t, f, "Rc"))
	}
	tp := s.NewTape()
	out, fin, err := s.Forward(tp, toF[F](fixF64(t, f, "x")), T, B, lengths, init, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "out", out, fixF64(t, f, "out"), tol)
	compare(t, "h_n", fin.H, fixF64(t, f, "h_n"), tol)
	if cell == LSTM {
		compare(t, "c_n", fin.C, fixF64(t, f, "c_n"), tol)
	}
	dx, dInit := s.Backward(tp, p.Grad, toF[F](fixF64(t, f, "R")), dFinal, true)
	compare(t, "grad.x", dx, fixF64(t, f, "grad.x"), tol)
	compare(t, "grad.h0", dInit.H, fixF64(t, f, "grad.h0"), tol)
	if cell == LSTM {
		compare(t, "grad.c0", dInit.C, fixF64(t, f, "grad.c0"), tol)
	}
	for _, spec := range p.Specs() {
		compare(t, "grad."+spec.Name, p.Grad[spec.Offset:spec.Offset+spec.Size], fixF64(t, f, "grad."+spec.Name), tol)
	}
}

func TestMatchesPyTorchStacks(t *testing.T) {
	files, _ := filepath.Glob("testdata/torch_*.safetensors")
	if len(files) < 8 {
		t.Fatalf("found %d fixtures in testdata, want 9 (run testdata/gen_fixtures.py)", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		if name == "torch_lm.safetensors" {
			continue
		}
		f := loadFixture(t, name)
		t.Run(name+"/float64", func(t *testing.T) { checkStackFixture[float64](t, f, 1e-9) })
		t.Run(name+"/float32", func(t *testing.T) { checkStackFixture[float32](t, f, 1e-5) })
	}
}

func checkLMFixture[F Float](t *testing.T, f *safetensors.File, tol float64) {
	cfg := Config{Shape: SeqToSeq, Vocab: atoi(t, f, "vocab"), Embed: atoi(t, f, "embed"), Cell: LSTM,
		Hidden: atoi(t, f, "hidden"), Layers: atoi(t, f, "layers")}
	m, err := New[F](cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture holds extra tensors (inputs, gradients), so load loosely.
	if err := m.LoadStateDict(f, false); err != nil {
		t.Fatal(err)
	}
	T, B := atoi(t, f, "T"), atoi(t, f, "B")
	b := &Batch[F]{T: T, B: B}
	for _, v := range fixInts(t, f, "tokens") {
		b.Tokens = append(b.Tokens, int32(v))
	}
	for _, v := range fixInts(t, f, "targets") {
		b.Targets = append(b.Targets, int32(v))
	}
	tp := m.NewTape(1)
	res, err := tp.Forward(b, State[F]{}, false)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "loss", []float64{res.Loss}, fixF64(t, f, "loss"), tol)
	tp.Backward(m.Params.Grad)
	for _, spec := range m.Params.Specs() {
		compare(t, "grad."+spec.Name, m.Params.Grad[spec.Offset:spec.Offset+spec.Size], fixF64(t, f, "grad."+spec.Name), tol)
	}
}

func TestMatchesPyTorchLM(t *testing.T) {
	f := loadFixture(t, "torch_lm.safetensors")
	t.Run("float64", func(t *testing.T) { checkLMFixture[float64](t, f, 1e-9) })
	t.Run("float32", func(t *testing.T) { checkLMFixture[float32](t, f, 1e-5) })
}
