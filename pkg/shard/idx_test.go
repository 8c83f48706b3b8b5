package shard

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// idxBytes builds an unsigned-byte IDX file with the given dimensions and
// data.
func idxBytes(dims []uint32, data []byte) []byte {
	b := []byte{0, 0, idxUbyte, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestImageSet(t *testing.T) {
	px := make([]byte, 3*2*4) // 3 images of 2 rows x 4 cols
	for i := range px {
		px[i] = byte(i * 10)
	}
	dir := t.TempDir()
	ip, lp := filepath.Join(dir, "img.gz"), filepath.Join(dir, "lbl")
	os.WriteFile(ip, gz(idxBytes([]uint32{3, 2, 4}, px)), 0o644)
	os.WriteFile(lp, idxBytes([]uint32{3}, []byte{2, 0, 9}), 0o644)
	s, err := LoadImageSet(ip, lp, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := s.Example(1)
	if e.Label != 0 || e.Input.Dim != 4 || e.Input.Len() != 2 || e.Input.Values[0] != 80.0/255 {
		t.Fatalf("example 1: %+v", e)
	}
	b, err := Collate([]Example{s.Example(0), s.Example(2)})
	if err != nil {
		t.Fatal(err)
	}
	// X[(t*B+b)*Dim+i]: step 1, row 1, feature 3 is image 2's pixel 7 = 230.
	if got := b.X[(1*2+1)*4+3]; got != 230.0/255 || b.Labels[1] != 9 {
		t.Fatalf("X = %v, labels %v", b.X, b.Labels)
	}
}

func TestIDXErrors(t *testing.T) {
	good := idxBytes([]uint32{2, 2}, []byte{1, 2, 3, 4})
	for _, tc := range []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrEmpty, "x.idx: empty IDX file"},
		{"short header", good[:3], ErrSize, ""},
		{"bad magic", append([]byte{1}, good[1:]...), ErrBadMagic, "x.idx: IDX magic 01000802: first two bytes must be zero"},
		{"float type", append([]byte{0, 0, 0x0d}, good[3:]...), ErrBadMagic, "x.idx: IDX type 0x0d unsupported (only 0x08, unsigned byte)"},
		{"truncated data", good[:len(good)-1], ErrSize, "x.idx: IDX dimensions [2 2] need 4 data bytes; data is too short (3 bytes read)"},
		{"trailing data", append(good, 0), ErrSize, ""},
		{"huge dims", idxBytes([]uint32{1 << 20, 1 << 20}, nil), ErrSize, ""},
		{"truncated gzip", gz(good)[:12], ErrSize, "x.idx: IDX header truncated after 1 bytes: unexpected EOF"},
		{"corrupt gzip", append([]byte{0x1f, 0x8b}, good...), ErrSyntax, ""},
	} {
		_, err := ReadIDX(bytes.NewReader(tc.data), "x.idx")
		if !errors.Is(err, tc.want) || (tc.msg != "" && err.Error() != tc.msg) {
			t.Errorf("%s: err %v, want %v %q", tc.name, err, tc.want, tc.msg)
		}
	}
	img := &IDX{Dims: []int{2, 1, 1}, Data: []byte{0, 0}}
	for _, tc := range []struct {
		name   string
		labels *IDX
		want   error
	}{
		{"count", &IDX{Dims: []int{3}, Data: []byte{0, 0, 0}}, ErrSize},
		{"range", &IDX{Dims: []int{2}, Data: []byte{0, 10}}, ErrLabelRange},
		{"dims", &IDX{Dims: []int{2, 1}, Data: []byte{0, 0}}, ErrSize},
	} {
		if _, err := NewImageSet(img, tc.labels, 10); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzReadIDX(f *testing.F) {
	f.Add(idxBytes([]uint32{2, 2}, []byte{1, 2, 3, 4}))
	f.Add(gz(idxBytes([]uint32{1}, []byte{7})))
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := ReadIDX(bytes.NewReader(data), "f.idx")
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InputError", err)
			}
			return
		}
		n := 1
		for _, d := range x.Dims {
			n *= d
		}
		if n != len(x.Data) {
			t.Fatalf("dims %v but %d bytes", x.Dims, len(x.Data))
		}
	})
}

// The real Fashion-MNIST from Debian's dataset-fashion-mnist package.
func TestFashionMNIST(t *testing.T) {
	dir := "/usr/share/datasets/fashion-mnist"
	ip, lp := filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), filepath.Join(dir, "t10k-labels-idx1-ubyte.gz")
	if _, err := os.Stat(ip); err != nil {
		t.Skipf("Fashion-MNIST not installed (%v); apt-get install dataset-fashion-mnist", err)
	}
	s, err := LoadImageSet(ip, lp, 10)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 10000 || s.Rows != 28 || s.Cols != 28 {
		t.Fatalf("test set %d x %d x %d", s.N, s.Rows, s.Cols)
	}
	l, err := NewLoader(s, LoaderConfig{Sampler: SamplerConfig{BatchSize: 64, Seed: 1}, Rank: 1, World: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b.T != 28 || b.B != 32 || b.Dim != 28 || len(b.X) != 28*32*28 {
		t.Fatalf("batch T %d B %d Dim %d", b.T, b.B, b.Dim)
	}
	for _, v := range b.X {
		if v < 0 || v > 1 {
			t.Fatalf("pixel %v outside [0, 1]", v)
		}
	}
}
