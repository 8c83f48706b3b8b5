package rnn

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/recur-ml/recur/pkg/safetensors"
)

// StateDict returns the parameters as safetensors tensors named as PyTorch's
// state_dict ("embedding.weight", "rnn.weight_ih_l0", "head.bias", ...), in
// float32 (F32), with the model configuration in the metadata.
func (m *Model[F]) StateDict() *safetensors.File {
	f := &safetensors.File{Metadata: m.metadata(), Tensors: map[string]safetensors.Tensor{}}
	for _, s := range m.Params.Specs() {
		v := m.Params.Value[s.Offset : s.Offset+s.Size]
		f32 := make([]float32, len(v))
		for i, x := range v {
			f32[i] = float32(x)
		}
		f.Tensors[s.Name] = safetensors.FromFloat32(s.Shape, f32)
	}
	return f
}

// metadata describes the model in the safetensors header.
func (m *Model[F]) metadata() map[string]string {
	c := m.cfg
	return map[string]string{
		"format": "recur", "shape": c.Shape.String(), "cell": c.Cell.String(),
		"hidden": fmt.Sprint(c.Hidden), "layers": fmt.Sprint(c.Layers), "vocab": fmt.Sprint(c.Vocab),
		"input": fmt.Sprint(c.Input), "embed": fmt.Sprint(c.Embed), "outputs": fmt.Sprint(c.Outputs),
		"bidirectional": fmt.Sprint(c.Bidirectional),
	}
}

// LoadStateDict copies tensors into the parameters. Every parameter must be
// present with its exact shape and a float dtype (F32, F64, F16, BF16); with
// strict set, a tensor that names no parameter is an error too (PyTorch's
// load_state_dict(strict=True)). Errors name the tensor. On error the
// parameters are unchanged.
func (m *Model[F]) LoadStateDict(f *safetensors.File, strict bool) error {
	var missing []string
	staged := make(map[string][]float64, len(m.Params.Specs()))
	for _, s := range m.Params.Specs() {
		t, ok := f.Tensors[s.Name]
		if !ok {
			missing = append(missing, s.Name)
			continue
		}
		if !slices.Equal(t.Shape, s.Shape) {
			return fmt.Errorf("rnn: tensor %q has shape %v, the model needs %v", s.Name, t.Shape, s.Shape)
		}
		v, err := t.Float64s()
		if err != nil {
			return fmt.Errorf("rnn: tensor %q: %w", s.Name, err)
		}
		staged[s.Name] = v
	}
	if len(missing) > 0 {
		return fmt.Errorf("rnn: state dict lacks %d parameter(s): %s", len(missing), strings.Join(missing, ", "))
	}
	if strict {
		var extra []string
		for name := range f.Tensors {
			if _, ok := m.Params.index[name]; !ok {
				extra = append(extra, name)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return fmt.Errorf("rnn: state dict has %d unexpected tensor(s): %s", len(extra), strings.Join(extra, ", "))
		}
	}
	for _, s := range m.Params.Specs() {
		dst := m.Params.Value[s.Offset : s.Offset+s.Size]
		for i, x := range staged[s.Name] {
			dst[i] = F(x)
		}
	}
	return nil
}

// SaveSafetensors writes the state dict to path atomically.
func (m *Model[F]) SaveSafetensors(path string) error {
	return safetensors.WriteFile(path, m.StateDict())
}

// LoadSafetensors reads path and loads it strictly.
func (m *Model[F]) LoadSafetensors(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	if err := m.LoadStateDict(f, true); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// MarshalBinary encodes the parameters as safetensors bytes (for
// checkpoints).
func (m *Model[F]) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, m.StateDict()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary loads parameters encoded by MarshalBinary, strictly.
func (m *Model[F]) UnmarshalBinary(b []byte) error {
	f, err := safetensors.Read(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return m.LoadStateDict(f, true)
}
