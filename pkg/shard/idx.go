package shard

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// IDX is a parsed IDX file (the MNIST format): a big-endian header of two
// zero bytes, a type byte, a dimension count, the dimensions as uint32, then
// the data. Only unsigned bytes (type 0x08), the type of MNIST and
// Fashion-MNIST images and labels, are supported.
type IDX struct {
	Dims []int
	Data []byte
}

const (
	idxUbyte = 0x08
	// maxIDXBytes bounds the data an IDX header may declare (4 GiB).
	maxIDXBytes = 1 << 32
)

// ReadIDX parses an IDX stream, gunzipping it first when it starts with the
// gzip magic. name labels errors. A wrong magic, an unsupported type, a
// declared size that overflows, and data shorter or longer than the header
// says are errors (ErrBadMagic, ErrSize).
func ReadIDX(r io.Reader, name string) (*IDX, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, inputErr(name, 0, ErrSyntax, "gzip: %v", err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	var head [4]byte
	if n, err := io.ReadFull(br, head[:]); err != nil {
		if n == 0 && err == io.EOF {
			return nil, inputErr(name, 0, ErrEmpty, "empty IDX file")
		}
		return nil, inputErr(name, 0, ErrSize, "IDX header truncated after %d bytes: %v", n, err)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, inputErr(name, 0, ErrBadMagic, "IDX magic %02x%02x%02x%02x: first two bytes must be zero", head[0], head[1], head[2], head[3])
	}
	if head[2] != idxUbyte {
		return nil, inputErr(name, 0, ErrBadMagic, "IDX type 0x%02x unsupported (only 0x08, unsigned byte)", head[2])
	}
	nd := int(head[3])
	if nd == 0 {
		return nil, inputErr(name, 0, ErrBadMagic, "IDX with zero dimensions")
	}
	dimBytes := make([]byte, 4*nd)
	if _, err := io.ReadFull(br, dimBytes); err != nil {
		return nil, inputErr(name, 0, ErrSize, "IDX header truncated in %d dimensions: %v", nd, err)
	}
	x := &IDX{Dims: make([]int, nd)}
	total := uint64(1)
	for i := range x.Dims {
		d := binary.BigEndian.Uint32(dimBytes[4*i:])
		x.Dims[i] = int(d)
		total *= uint64(d)
		if total > maxIDXBytes {
			return nil, inputErr(name, 0, ErrSize, "IDX dimensions %v exceed %d bytes", x.Dims[:i+1], uint64(maxIDXBytes))
		}
	}
	// Read what is there (at most one byte more than declared) rather than
	// trusting the header with an allocation.
	data, err := io.ReadAll(io.LimitReader(br, int64(total)+1))
	if err != nil {
		return nil, inputErr(name, 0, ErrSyntax, "read IDX data: %v", err)
	}
	if uint64(len(data)) != total {
		what := "short"
		if uint64(len(data)) > total {
			what = "long"
		}
		return nil, inputErr(name, 0, ErrSize, "IDX dimensions %v need %d data bytes; data is too %s (%d bytes read)", x.Dims, total, what, len(data))
	}
	x.Data = data
	return x, nil
}

// LoadIDX reads the IDX file at path (gzipped or not).
func LoadIDX(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shard: open IDX: %w", err)
	}
	defer f.Close()
	return ReadIDX(f, filepath.Base(path))
}

// ImageSet is an image classification set as a Dataset: image i is a
// sequence of its Rows rows, each a step of Cols features scaled to [0, 1],
// labelled with its class.
type ImageSet struct {
	N, Rows, Cols int
	Pixels        []byte // N*Rows*Cols, row-major per image
	Labels        []byte
	Classes       int
}

// DefaultClasses is the class count of MNIST and Fashion-MNIST.
const DefaultClasses = 10

// NewImageSet pairs an images IDX (3 dimensions: N, rows, cols) with a
// labels IDX (1 dimension: N). Labels must be below classes (0 means
// DefaultClasses).
func NewImageSet(images, labels *IDX, classes int) (*ImageSet, error) {
	if classes <= 0 {
		classes = DefaultClasses
	}
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("%w: images IDX has %d dimensions, want 3", ErrSize, len(images.Dims))
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("%w: labels IDX has %d dimensions, want 1", ErrSize, len(labels.Dims))
	}
	s := &ImageSet{N: images.Dims[0], Rows: images.Dims[1], Cols: images.Dims[2], Pixels: images.Data, Labels: labels.Data, Classes: classes}
	if labels.Dims[0] != s.N {
		return nil, fmt.Errorf("%w: %d images but %d labels", ErrSize, s.N, labels.Dims[0])
	}
	if s.N == 0 || s.Rows == 0 || s.Cols == 0 {
		return nil, fmt.Errorf("%w: images IDX of shape %v", ErrEmpty, images.Dims)
	}
	for i, l := range s.Labels {
		if int(l) >= classes {
			return nil, fmt.Errorf("%w: label %d of image %d not below %d classes", ErrLabelRange, l, i, classes)
		}
	}
	return s, nil
}

// LoadImageSet reads an images and a labels IDX file.
func LoadImageSet(imagesPath, labelsPath string, classes int) (*ImageSet, error) {
	im, err := LoadIDX(imagesPath)
	if err != nil {
		return nil, err
	}
	lb, err := LoadIDX(labelsPath)
	if err != nil {
		return nil, err
	}
	s, err := NewImageSet(im, lb, classes)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", filepath.Base(imagesPath), filepath.Base(labelsPath), err)
	}
	return s, nil
}

// Len returns the number of images.
func (s *ImageSet) Len() int { return s.N }

// SeqLen returns Rows, the length of every sequence.
func (s *ImageSet) SeqLen(int) int { return s.Rows }

// Example returns image i as Rows steps of Cols features in [0, 1].
func (s *ImageSet) Example(i int) Example {
	px := s.Pixels[i*s.Rows*s.Cols : (i+1)*s.Rows*s.Cols]
	v := make([]float32, len(px))
	for j, p := range px {
		v[j] = float32(p) / 255
	}
	return Example{Input: Seq{Values: v, Dim: s.Cols}, Label: int(s.Labels[i])}
}
