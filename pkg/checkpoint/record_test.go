package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func nan() float64 { return math.NaN() }

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    *Checkpoint
	}{
		{"full", sample(42, 0.25)},
		{"empty", &Checkpoint{WallTime: time.Unix(0, 0).UTC()}},
		{"max step", &Checkpoint{Step: math.MaxUint64, WallTime: maxWall.UTC()}},
		{"min wall", &Checkpoint{WallTime: minWall.UTC(), Metrics: map[string]float64{"ü": -1e300, "a": 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.c.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Checkpoint
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, tt.c) {
				t.Fatalf("got %+v\nwant %+v", got, tt.c)
			}
			b2, _ := got.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Fatal("re-encoding differs")
			}
			// Every proper prefix is rejected, never a panic.
			for n := range len(b) {
				if err := new(Checkpoint).UnmarshalBinary(b[:n]); !errors.Is(err, ErrFormat) {
					t.Fatalf("prefix %d: %v", n, err)
				}
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		c    Checkpoint
	}{
		{"nan metric", Checkpoint{Metrics: map[string]float64{"val_loss": nan()}}},
		{"inf metric", Checkpoint{Metrics: map[string]float64{"val_loss": math.Inf(1)}}},
		{"empty name", Checkpoint{Metrics: map[string]float64{"": 1}}},
		{"bad utf8", Checkpoint{Metrics: map[string]float64{"\xff": 1}}},
		{"wall before 1678", Checkpoint{WallTime: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.c.MarshalBinary(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("MarshalBinary = %v, want ErrInvalid", err)
			}
		})
	}
}

// metricsRecord builds a record by hand with the given metric entries.
func metricsRecord(names []string, vals []float64) []byte {
	b := []byte(magic)
	b = append(b, recordVersion)
	b = append(b, make([]byte, 24)...)
	b = appendBlob(b, nil)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for i, n := range names {
		b = appendBlob(b, []byte(n))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(vals[i]))
	}
	for range 5 {
		b = appendBlob(b, nil)
	}
	return b
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := sample(3, 1).MarshalBinary()
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), "magic"},
		{"version", edit(func(b []byte) []byte { b[4] = 9; return b }), "version: 9"},
		{"trailing", append(bytes.Clone(good), 0), "1 bytes after the last field"},
		{"huge blob", edit(func(b []byte) []byte {
			return binary.AppendUvarint(b[:fixedLen], math.MaxUint64)
		}), "config hash: length"},
		{"bad varint", edit(func(b []byte) []byte {
			return append(b[:fixedLen], bytes.Repeat([]byte{0xff}, 11)...)
		}), "config hash: bad length"},
		{"metric count", edit(func(b []byte) []byte {
			return binary.AppendUvarint(append(b[:fixedLen], 0), 1<<40)
		}), "count"},
		{"metrics out of order", metricsRecord([]string{"b", "a"}, []float64{1, 2}), "not in increasing order"},
		{"duplicate metric", metricsRecord([]string{"a", "a"}, []float64{1, 2}), "not in increasing order"},
		{"nan metric", metricsRecord([]string{"a"}, []float64{nan()}), "a is NaN"},
		{"empty metric name", metricsRecord([]string{""}, []float64{1}), `name 0 is ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sample(1, 1)
			before := *c
			err := c.UnmarshalBinary(tt.data)
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("UnmarshalBinary = %v, want ErrFormat with %q", err, tt.want)
			}
			if !reflect.DeepEqual(*c, before) {
				t.Fatal("failed decode changed the checkpoint")
			}
		})
	}
	if err := new(Checkpoint).UnmarshalBinary(metricsRecord([]string{"a", "b"}, []float64{1, 2})); err != nil {
		t.Fatalf("hand-built record: %v", err)
	}
}

// FuzzUnmarshalBinary checks that the decoder never panics, that what it
// accepts re-encodes to the same bytes, and that decodeHead agrees.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, c := range []*Checkpoint{sample(1, 0.5), {WallTime: time.Unix(0, 0)}, {Metrics: map[string]float64{"a": 1, "b": 2}, WallTime: time.Unix(1, 0)}} {
		b, err := c.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Checkpoint
		err := c.UnmarshalBinary(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		out, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("re-encode: %v\n got %x\nwant %x", err, out, data)
		}
		h, err := decodeHead(data)
		if err != nil || h.step != c.Step || !reflect.DeepEqual(h.metrics, c.Metrics) {
			t.Fatalf("decodeHead = %+v, %v", h, err)
		}
	})
}

func TestHashConfig(t *testing.T) {
	type inner struct {
		Hidden int     `json:"hidden"`
		LR     float64 `json:"lr"`
	}
	type cfg struct {
		Model inner  `json:"model"`
		Name  string `json:"name"`
	}
	a, err := HashConfig(cfg{inner{128, 0.001}, "lm"})
	if err != nil {
		t.Fatal(err)
	}
	same, _ := HashConfig(map[string]any{"name": "lm", "model": map[string]any{"lr": 0.001, "hidden": 128}})
	other, _ := HashConfig(cfg{inner{256, 0.001}, "lm"})
	if a != same || a == other || !strings.HasPrefix(a, "sha256:") || len(a) != 7+64 {
		t.Fatalf("hashes %s %s %s", a, same, other)
	}
	if _, err := HashConfig(map[string]float64{"x": nan()}); err == nil {
		t.Fatal("NaN config hashed")
	}
	c := sample(5, 1)
	c.ConfigHash = a
	if err := c.CheckConfig(a); err != nil {
		t.Fatal(err)
	}
	err = c.CheckConfig(other)
	var mm *ConfigMismatchError
	if !errors.Is(err, ErrConfigMismatch) || !errors.As(err, &mm) || mm.Step != 5 ||
		!strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), other) {
		t.Fatalf("CheckConfig = %v", err)
	}
}
