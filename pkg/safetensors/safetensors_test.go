package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// expected is testdata/expected.json, written by testdata/gen.py with the
// tensors of canonical.safetensors and noncanonical.safetensors.
type expected struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  map[string]struct {
		DType  DType `json:"dtype"`
		Shape  []int `json:"shape"`
		Values []any `json:"values"` // json.Number, or "inf"/"-inf"
	} `json:"tensors"`
}

func loadExpected(t *testing.T) *expected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var e expected
	if err := dec.Decode(&e); err != nil {
		t.Fatal(err)
	}
	return &e
}

// ints decodes integer tensor data as int64s.
func ints(t *testing.T, tn Tensor) []int64 {
	t.Helper()
	size := tn.DType.Size()
	out := make([]int64, len(tn.Data)/size)
	for i := range out {
		b := tn.Data[i*size:]
		switch tn.DType {
		case I64:
			out[i] = int64(binary.LittleEndian.Uint64(b))
		case U8, BOOL:
			out[i] = int64(b[0])
		default:
			t.Fatalf("no integer decoding for %s", tn.DType)
		}
	}
	return out
}

func TestReadPythonFixtures(t *testing.T) {
	want := loadExpected(t)
	for _, file := range []string{"canonical.safetensors", "noncanonical.safetensors"} {
		t.Run(file, func(t *testing.T) {
			f, err := ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Metadata, want.Metadata) {
				t.Errorf("metadata %q, want %q", f.Metadata, want.Metadata)
			}
			if len(f.Tensors) != len(want.Tensors) {
				t.Errorf("%d tensors, want %d", len(f.Tensors), len(want.Tensors))
			}
			for name, w := range want.Tensors {
				got, ok := f.Tensors[name]
				if !ok {
					t.Errorf("tensor %q missing", name)
					continue
				}
				if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) {
					t.Errorf("%s: %s %v, want %s %v", name, got.DType, got.Shape, w.DType, w.Shape)
				}
				checkValues(t, name, got, w.Values)
			}
		})
	}
}

func checkValues(t *testing.T, name string, got Tensor, want []any) {
	t.Helper()
	if _, err := got.Float32s(); errors.Is(err, ErrDType) {
		for i, v := range ints(t, got) {
			if w, _ := want[i].(json.Number).Int64(); v != w {
				t.Errorf("%s[%d] = %d, want %d", name, i, v, w)
			}
		}
		return
	}
	vals, err := got.Float64s()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(vals) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(vals), len(want))
	}
	for i, v := range vals {
		w, err := strconv.ParseFloat(fmt.Sprint(want[i]), 64)
		if err != nil {
			t.Fatal(err)
		}
		if v != w || math.Signbit(v) != math.Signbit(w) {
			t.Errorf("%s[%d] = %v, want %v", name, i, v, w)
		}
	}
}

// TestWriteMatchesPython re-encodes both fixtures and expects the bytes gen.py
// wrote, following the reference serializer.
func TestWriteMatchesPython(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "canonical.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"canonical.safetensors", "noncanonical.safetensors"} {
		f, err := ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, f); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s re-encoded:\n%q\nwant\n%q", file, buf.Bytes(), want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	f := &File{
		Metadata: map[string]string{"step": "100", "quote\"d": "<&>"},
		Tensors: map[string]Tensor{
			"rnn.weight_ih_l0": FromFloat32([]int{3, 2}, []float32{1, -2, 3.5, float32(math.Inf(1)), 0, 1e-40}),
			"rnn.bias_ih_l0":   FromFloat32([]int{3}, []float32{0.1, 0.2, 0.3}),
			"scalar":           FromFloat64(nil, []float64{math.Pi}),
			"empty":            FromFloat64([]int{0}, nil),
			"bf16":             {DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},
			"ids":              {DType: I32, Shape: []int{1, 1}, Data: []byte{1, 2, 3, 4}},
			"":                 {DType: U8, Shape: []int{1}, Data: []byte{9}},
		},
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	normalize(f)
	normalize(got)
	if !reflect.DeepEqual(got, f) {
		t.Errorf("read back %+v\nwrote %+v", got, f)
	}
	// Read from a plain io.Reader, without the file size.
	data, _ := os.ReadFile(path)
	if len(data)%8 != 0 && binary.LittleEndian.Uint64(data)%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", binary.LittleEndian.Uint64(data))
	}
	viaReader, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	normalize(viaReader)
	if !reflect.DeepEqual(viaReader, f) {
		t.Error("Read and ReadFile disagree")
	}
	if fl, _ := got.Tensors["bf16"].Float32s(); !slices.Equal(fl, []float32{1, -2}) {
		t.Errorf("bf16 values %v, want [1 -2]", fl)
	}
}

// normalize makes empty shapes and data nil so DeepEqual compares content.
func normalize(f *File) {
	for name, t := range f.Tensors {
		if len(t.Shape) == 0 {
			t.Shape = nil
		}
		if len(t.Data) == 0 {
			t.Data = nil
		}
		f.Tensors[name] = t
	}
}

// build assembles a file from a header string and a data buffer.
func build(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// readErrorCase is a malformed file and the error Read must give.
type readErrorCase struct {
	name  string
	data  []byte
	field string
	msg   string
}

func readErrorCases() []readErrorCase {
	f32 := func(name, shape string, begin, end int) string {
		return `"` + name + `":{"dtype":"F32","shape":` + shape + `,"data_offsets":[` + strconv.Itoa(begin) + `,` + strconv.Itoa(end) + `]}`
	}
	zeros := func(n int) []byte { return make([]byte, n) }
	return []readErrorCase{
		{"empty input", nil, "header", "file ends 0 bytes into the 8-byte header length"},
		{"short length", []byte{1, 2, 3}, "header", "file ends 3 bytes into"},
		{"header too large", binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1), "header", "exceeds the limit"},
		{"header truncated", build(`{}`, nil)[:9], "header", "file ends 1 bytes into a 2-byte header"},
		{"empty header", build(``, nil), "header", "does not start with '{'"},
		{"not an object", build(`[]`, nil), "header", "does not start with '{'"},
		{"invalid UTF-8", build("{\"\xff\":1}", nil), "header", "not valid UTF-8"},
		{"invalid JSON", build(`{"a":`, nil), "info", "invalid description"},
		{"unclosed object", build(`{`, nil), "header", "invalid JSON"},
		{"trailing JSON", build(`{} {}`, nil), "header", "trailing data"},
		{"duplicate tensor", build(`{`+f32("a", "[1]", 0, 4)+`,`+f32("a", "[1]", 4, 8)+`}`, zeros(8)), "name", `tensor "a": given twice`},
		{"duplicate metadata", build(`{"__metadata__":{},"__metadata__":{}}`, nil), "metadata", "given twice"},
		{"duplicate metadata key", build(`{"__metadata__":{"k":"1","k":"2"}}`, nil), "metadata", `key "k" given twice`},
		{"metadata value not a string", build(`{"__metadata__":{"k":1}}`, nil), "metadata", `value of "k" is not a string`},
		{"metadata not an object", build(`{"__metadata__":[]}`, nil), "metadata", "not a JSON object"},
		{"tensor not an object", build(`{"a":5}`, nil), "info", `tensor "a": invalid description`},
		{"unknown dtype", build(`{"a":{"dtype":"F128","shape":[],"data_offsets":[0,16]}}`, zeros(16)), "dtype", `unknown dtype "F128"`},
		{"dtype missing", build(`{"a":{"shape":[],"data_offsets":[0,4]}}`, zeros(4)), "dtype", "dtype missing"},
		{"shape missing", build(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, zeros(4)), "shape", "shape missing"},
		{"offsets missing", build(`{"a":{"dtype":"F32","shape":[]}}`, nil), "data_offsets", "data_offsets missing"},
		{"negative dimension", build(`{`+f32("a", "[-1]", 0, 4)+`}`, zeros(4)), "info", "invalid description"},
		{"fractional dimension", build(`{`+f32("a", "[1.5]", 0, 4)+`}`, zeros(4)), "info", "invalid description"},
		{"huge dimension", build(`{`+f32("a", "[9223372036854775807]", 0, 4)+`}`, zeros(4)), "shape", "too large"},
		{"size overflow", build(`{`+f32("a", "[4611686018427387904,4611686018427387904]", 0, 4)+`}`, zeros(4)), "shape", "overflows"},
		{"three offsets", build(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4,8]}}`, zeros(8)), "data_offsets", "want [begin, end]"},
		{"end before begin", build(`{`+f32("a", "[]", 8, 4)+`}`, zeros(8)), "data_offsets", "end before they begin"},
		{"size mismatch", build(`{`+f32("rnn.weight_ih_l0", "[512,128]", 0, 1000)+`}`, zeros(1000)), "data_offsets",
			`safetensors: tensor "rnn.weight_ih_l0": shape [512 128] needs 262144 bytes, data_offsets give 1000`},
		{"gap at start", build(`{`+f32("a", "[1]", 4, 8)+`}`, zeros(8)), "data_offsets", "leave bytes [0, 4) unused"},
		{"gap between", build(`{`+f32("a", "[1]", 0, 4)+`,`+f32("b", "[1]", 8, 12)+`}`, zeros(12)), "data_offsets", `tensor "b": data_offsets [8, 12] leave bytes [4, 8) unused`},
		{"overlap", build(`{`+f32("a", "[2]", 0, 8)+`,`+f32("b", "[1]", 4, 8)+`}`, zeros(8)), "data_offsets", `overlap tensor "a", which ends at 8`},
		{"same bytes twice", build(`{`+f32("a", "[1]", 0, 4)+`,`+f32("b", "[1]", 0, 4)+`}`, zeros(4)), "data_offsets", "overlap"},
		{"buffer truncated", build(`{`+f32("a", "[2]", 0, 8)+`}`, zeros(5)), "buffer", "file ends 5 bytes into the 8-byte data buffer"},
		{"buffer too long", build(`{`+f32("a", "[2]", 0, 8)+`}`, zeros(9)), "buffer", "data continues past the 8 bytes"},
		{"huge promise", build(`{"a":{"dtype":"U8","shape":[1099511627776],"data_offsets":[0,1099511627776]}}`, zeros(10)), "buffer", "file ends 10 bytes into"},
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range readErrorCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.data))
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("Read: %v, want a *FormatError", err)
			}
			if fe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Read: %v (field %q), want field %q and %q", err, fe.Field, tc.field, tc.msg)
			}
		})
	}
}

func TestReadFileChecksSize(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, msg string
		data      []byte
	}{
		{"header longer than file", "length 1000 exceeds the 2 bytes after it", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...)},
		{"buffer shorter than tensors", "buffer: 3 bytes follow the header, the tensors cover 4",
			build(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 3))},
	} {
		path := filepath.Join(dir, "x.safetensors")
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(path)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v, want ErrFormat naming the path and %q", tc.name, err, tc.msg)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tensor Tensor
		tname  string
		msg    string
	}{
		{"unknown dtype", Tensor{DType: "F128", Data: make([]byte, 16)}, "w", `tensor "w": unknown dtype "F128"`},
		{"data too short", Tensor{DType: F32, Shape: []int{2, 2}, Data: make([]byte, 15)}, "w", "shape [2 2] needs 16 bytes of F32, data has 15"},
		{"negative dimension", Tensor{DType: F32, Shape: []int{-1}}, "w", "negative dimension"},
		{"reserved name", FromFloat32(nil, []float32{1}), "__metadata__", "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &File{Tensors: map[string]Tensor{"ok": FromFloat32([]int{1}, []float32{1}), tc.tname: tc.tensor}}
			var buf bytes.Buffer
			err := Write(&buf, f)
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Write: %v, want ErrFormat containing %q", err, tc.msg)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	good := &File{Tensors: map[string]Tensor{"a": FromFloat32([]int{1}, []float32{1})}}
	if err := WriteFile(path, good); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := &File{Tensors: map[string]Tensor{"a": {DType: F32, Shape: []int{2}}}}
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("WriteFile accepted an invalid tensor")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a failed WriteFile changed the existing file")
	}
	good.Tensors["b"] = FromFloat64([]int{2}, []float64{1, 2})
	if err := WriteFile(path, good); err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFile(path); err != nil || len(f.Tensors) != 2 {
		t.Errorf("after replacing: %v, %d tensors", err, len(f.Tensors))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (temporary files left behind?)", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if err := WriteFile(filepath.Join(dir, "no", "such", "dir", "x"), good); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestFloat32s(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Tensor
		want []float32
		err  error
	}{
		{"F32", FromFloat32([]int{2}, []float32{1.5, -2}), []float32{1.5, -2}, nil},
		{"F64 rounds", FromFloat64([]int{1}, []float64{1.0 / 3}), []float32{1.0 / 3}, nil},
		{"F16", Tensor{DType: F16, Shape: []int{4}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b}}, []float32{1, -2, 0x1p-24, 65504}, nil},
		{"BF16", Tensor{DType: BF16, Shape: []int{1}, Data: []byte{0x49, 0x40}}, []float32{3.140625}, nil},
		{"I64", Tensor{DType: I64, Shape: []int{1}, Data: make([]byte, 8)}, nil, ErrDType},
		{"BOOL", Tensor{DType: BOOL, Shape: []int{1}, Data: []byte{1}}, nil, ErrDType},
		{"short data", Tensor{DType: F32, Shape: []int{2}, Data: make([]byte, 7)}, nil, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.t.Float32s()
			if !errors.Is(err, tc.err) || !slices.Equal(got, tc.want) {
				t.Errorf("Float32s() = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestHalfToFloat32 checks every half-precision bit pattern against the
// definition: (-1)^s × 2^(e-15) × (1 + m/1024), subnormals 2^-14 × m/1024.
func TestHalfToFloat32(t *testing.T) {
	for h := range 1 << 16 {
		s, e, m := h>>15, h>>10&0x1f, h&0x3ff
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(1)
		case e == 0x1f:
			want = math.NaN()
		case e == 0:
			want = math.Ldexp(float64(m)/1024, -14)
		default:
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		got := halfToFloat32(uint16(h))
		if math.IsNaN(want) != math.IsNaN(float64(got)) || !math.IsNaN(want) && (float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want)) {
			t.Fatalf("half %#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestFromFloat32PanicsOnShapeMismatch(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic")
		}
	}()
	FromFloat32([]int{2, 2}, make([]float32, 3))
}

func FuzzRead(f *testing.F) {
	for _, name := range []string{"canonical.safetensors", "noncanonical.safetensors"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range readErrorCases() {
		f.Add(tc.data)
	}
	f.Add(build(`{}`, nil))
	f.Add(build(`{"__metadata__":{"a":"b"},"x":{"dtype":"BF16","shape":[1,1],"data_offsets":[0,2]}}`, []byte{1, 2}))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not match ErrFormat: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, file); err != nil {
			t.Fatalf("a file Read accepted does not Write: %v", err)
		}
		again, err := Read(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("Write output does not Read: %v", err)
		}
		var buf2 bytes.Buffer
		if err := Write(&buf2, again); err != nil || !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatalf("Write is not stable: %v", err)
		}
	})
}
