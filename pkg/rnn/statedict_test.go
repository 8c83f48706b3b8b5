package rnn

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/recur-ml/recur/pkg/safetensors"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	cfg := Config{Shape: SeqToSeq, Vocab: 9, Cell: GRU, Hidden: 5, Layers: 2, Bidirectional: true, Seed: 4}
	m, err := New[float32](cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := m.SaveSafetensors(path); err != nil {
		t.Fatal(err)
	}
	cfg.Seed = 99
	m2, _ := New[float32](cfg)
	if err := m2.LoadSafetensors(path); err != nil {
		t.Fatal(err)
	}
	for i := range m.Params.Value {
		if m.Params.Value[i] != m2.Params.Value[i] {
			t.Fatalf("value %d differs after round trip", i)
		}
	}
	f, _ := safetensors.ReadFile(path)
	for _, name := range []string{"embedding.weight", "rnn.weight_ih_l1_reverse", "rnn.bias_hh_l0", "head.weight"} {
		if _, ok := f.Tensors[name]; !ok {
			t.Errorf("state dict lacks %q", name)
		}
	}
}

func TestLoadStateDictRejects(t *testing.T) {
	m, _ := New[float32](Config{Shape: SeqToSeq, Vocab: 5, Cell: LSTM, Hidden: 3})
	good := m.StateDict()
	clone := func() *safetensors.File {
		f := &safetensors.File{Tensors: map[string]safetensors.Tensor{}}
		for k, v := range good.Tensors {
			f.Tensors[k] = v
		}
		return f
	}
	cases := map[string]struct {
		edit func(f *safetensors.File)
		want string
	}{
		"missing": {func(f *safetensors.File) { delete(f.Tensors, "rnn.weight_hh_l0") }, "lacks 1 parameter(s): rnn.weight_hh_l0"},
		"extra":   {func(f *safetensors.File) { f.Tensors["rnn.weight_ih_l1"] = f.Tensors["rnn.weight_ih_l0"] }, "unexpected tensor(s): rnn.weight_ih_l1"},
		"shape": {func(f *safetensors.File) {
			f.Tensors["head.bias"] = safetensors.FromFloat32([]int{4}, make([]float32, 4))
		}, `"head.bias" has shape [4], the model needs [5]`},
		"dtype": {func(f *safetensors.File) {
			f.Tensors["head.bias"] = safetensors.Tensor{DType: "I64", Shape: []int{5}, Data: make([]byte, 40)}
		}, `"head.bias"`},
	}
	before := append([]float32(nil), m.Params.Value...)
	for name, c := range cases {
		f := clone()
		c.edit(f)
		err := m.LoadStateDict(f, true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, c.want)
		}
	}
	for i := range before {
		if before[i] != m.Params.Value[i] {
			t.Fatal("a failed load modified the parameters")
		}
	}
}

func TestMarshalBinaryRoundTrip(t *testing.T) {
	m, _ := New[float32](Config{Shape: SeqToVec, Input: 3, Outputs: 2, Cell: LSTM, Hidden: 4, Seed: 1})
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := New[float32](Config{Shape: SeqToVec, Input: 3, Outputs: 2, Cell: LSTM, Hidden: 4, Seed: 2})
	if err := m2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := range m.Params.Value {
		if m.Params.Value[i] != m2.Params.Value[i] {
			t.Fatalf("value %d differs", i)
		}
	}
	if err := m2.UnmarshalBinary(b[:len(b)/2]); err == nil {
		t.Fatal("truncated bytes accepted")
	}
	other, _ := New[float32](Config{Shape: SeqToVec, Input: 3, Outputs: 2, Cell: GRU, Hidden: 4})
	if err := other.UnmarshalBinary(b); err == nil {
		t.Fatal("LSTM parameters loaded into a GRU model")
	}
}
