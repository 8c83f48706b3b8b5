package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header Read accepts, as in the reference
// implementation: it bounds the memory a hostile file can make us allocate
// before any tensor is checked.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// entry is one tensor as the header describes it.
type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end uint64
}

// Read decodes a safetensors file from r, which must hold nothing after the
// file. The tensors' Data share one backing array (each capped, so that an
// append copies). Not knowing the size, Read grows its buffer as data
// arrives; ReadFile allocates it once.
func Read(r io.Reader) (*File, error) { return read(r, -1) }

// ReadFile reads the safetensors file at path. Unlike Read it knows the file
// size, so it checks the header against it before allocating the buffer.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	file, err := read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file, nil
}

// read decodes a file of size bytes, or of unknown size when size < 0.
func read(r io.Reader, size int64) (*File, error) {
	var lenBuf [8]byte
	if n, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, shortRead(err, "header", "the 8-byte header length", n)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, headerErr("length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if size >= 0 && n > uint64(size-8) {
		return nil, headerErr("length %d exceeds the %d bytes after it", n, size-8)
	}
	hdr, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("safetensors: reading header: %w", err)
	}
	if uint64(len(hdr)) < n {
		return nil, headerErr("file ends %d bytes into a %d-byte header", len(hdr), n)
	}
	meta, entries, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	bufLen, err := layout(entries)
	if err != nil {
		return nil, err
	}
	if size >= 0 && uint64(size-8)-n != bufLen {
		return nil, &FormatError{Field: "buffer", Msg: fmt.Sprintf("%d bytes follow the header, the tensors cover %d", uint64(size-8)-n, bufLen)}
	}
	buf, err := readBuffer(r, bufLen, size >= 0)
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta, Tensors: make(map[string]Tensor, len(entries))}
	for _, e := range entries {
		f.Tensors[e.name] = Tensor{DType: e.dtype, Shape: e.shape, Data: buf[e.begin:e.end:e.end]}
	}
	return f, nil
}

// shortRead turns an io.ReadFull error into a FormatError for truncation.
func shortRead(err error, field, what string, got int) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{Field: field, Msg: fmt.Sprintf("file ends %d bytes into %s", got, what)}
	}
	return fmt.Errorf("safetensors: reading %s: %w", field, err)
}

// readBuffer reads the n-byte data buffer and, when the size was not known
// in advance, checks that nothing follows it. With an unknown size it grows
// the buffer as data arrives, so a header that promises terabytes costs only
// what the reader really holds.
func readBuffer(r io.Reader, n uint64, sized bool) ([]byte, error) {
	what := fmt.Sprintf("the %d-byte data buffer", n)
	if sized {
		buf := make([]byte, n)
		if got, err := io.ReadFull(r, buf); err != nil {
			return nil, shortRead(err, "buffer", what, got)
		}
		return buf, nil
	}
	var b bytes.Buffer
	b.Grow(int(min(n, 1<<20)))
	got, err := io.Copy(&b, io.LimitReader(r, int64(min(n, 1<<62))))
	if err != nil {
		return nil, fmt.Errorf("safetensors: reading buffer: %w", err)
	}
	if uint64(got) < n {
		return nil, &FormatError{Field: "buffer", Msg: fmt.Sprintf("file ends %d bytes into %s", got, what)}
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k != 0 {
		return nil, &FormatError{Field: "buffer", Msg: fmt.Sprintf("data continues past the %d bytes the tensors cover", n)}
	}
	return b.Bytes(), nil
}

// tensorInfo is the JSON of one tensor. Pointers tell absent from empty.
type tensorInfo struct {
	DType       *string   `json:"dtype"`
	Shape       *[]uint64 `json:"shape"`
	DataOffsets *[]uint64 `json:"data_offsets"`
}

// parseHeader decodes the JSON header, rejecting duplicate names, which
// encoding/json would silently collapse.
func parseHeader(hdr []byte) (map[string]string, []entry, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, headerErr("not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, headerErr("does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil {
		return nil, nil, headerErr("invalid JSON: %v", err)
	}
	var meta map[string]string
	var entries []entry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, headerErr("invalid JSON: %v", err)
		}
		name := tok.(string) // object keys are always strings
		if seen[name] {
			if name == metadataKey {
				return nil, nil, &FormatError{Field: "metadata", Msg: "given twice"}
			}
			return nil, nil, tensorErr(name, "name", "given twice")
		}
		seen[name] = true
		if name == metadataKey {
			if meta, err = parseMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := parseEntry(dec, name)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, headerErr("invalid JSON: %v", err)
	}
	if rest := hdr[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, nil, headerErr("%d bytes of trailing data after the JSON object", len(rest))
	}
	return meta, entries, nil
}

// parseMetadata decodes the string-to-string metadata map, rejecting
// duplicate keys.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, &FormatError{Field: "metadata", Msg: fmt.Sprintf("invalid JSON: %v", err)}
	}
	if string(raw) == "null" { // the reference implementation's Option::None
		return nil, nil
	}
	inner := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := inner.Token(); err != nil || tok != json.Delim('{') {
		return nil, &FormatError{Field: "metadata", Msg: "not a JSON object"}
	}
	meta := map[string]string{}
	for inner.More() {
		key, _ := inner.Token() // raw is a valid object: a string key
		k := key.(string)
		val, err := inner.Token()
		v, ok := val.(string)
		if err != nil || !ok {
			return nil, &FormatError{Field: "metadata", Msg: fmt.Sprintf("value of %q is not a string", k)}
		}
		if _, dup := meta[k]; dup {
			return nil, &FormatError{Field: "metadata", Msg: fmt.Sprintf("key %q given twice", k)}
		}
		meta[k] = v
	}
	return meta, nil
}

func parseEntry(dec *json.Decoder, name string) (entry, error) {
	var info tensorInfo
	if err := dec.Decode(&info); err != nil {
		// Syntax errors surface here too; name the tensor either way.
		return entry{}, tensorErr(name, "info", "invalid description: %v", err)
	}
	switch {
	case info.DType == nil:
		return entry{}, tensorErr(name, "dtype", "dtype missing")
	case info.Shape == nil:
		return entry{}, tensorErr(name, "shape", "shape missing")
	case info.DataOffsets == nil:
		return entry{}, tensorErr(name, "data_offsets", "data_offsets missing")
	}
	e := entry{name: name, dtype: DType(*info.DType)}
	if !e.dtype.Valid() {
		return entry{}, tensorErr(name, "dtype", "unknown dtype %q (known: %s)", *info.DType, knownDTypes())
	}
	e.shape = make([]int, len(*info.Shape))
	for i, d := range *info.Shape {
		if d > 1<<62 {
			return entry{}, tensorErr(name, "shape", "dimension %d of shape %v is too large", i, *info.Shape)
		}
		e.shape[i] = int(d)
	}
	offs := *info.DataOffsets
	if len(offs) != 2 {
		return entry{}, tensorErr(name, "data_offsets", "data_offsets %v, want [begin, end]", offs)
	}
	e.begin, e.end = offs[0], offs[1]
	if e.end < e.begin {
		return entry{}, tensorErr(name, "data_offsets", "data_offsets %v end before they begin", offs)
	}
	want, err := byteSize(e.dtype, e.shape)
	if err != nil {
		return entry{}, tensorErr(name, "shape", "%v", err)
	}
	if got := e.end - e.begin; got != want {
		return entry{}, tensorErr(name, "data_offsets", "shape %v needs %d bytes, data_offsets give %d", e.shape, want, got)
	}
	return e, nil
}

// layout checks that the tensors tile [0, end) without gaps or overlaps, as
// the format requires, and returns end: the size of the data buffer.
func layout(entries []entry) (uint64, error) {
	slices.SortFunc(entries, func(a, b entry) int {
		if c := compareU64(a.begin, b.begin); c != 0 {
			return c
		}
		if c := compareU64(a.end, b.end); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	var next uint64
	prev := ""
	for _, e := range entries {
		switch {
		case e.begin > next:
			return 0, tensorErr(e.name, "data_offsets", "data_offsets [%d, %d] leave bytes [%d, %d) unused", e.begin, e.end, next, e.begin)
		case e.begin < next:
			return 0, tensorErr(e.name, "data_offsets", "data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.begin, e.end, prev, next)
		}
		next, prev = e.end, e.name
	}
	return next, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func knownDTypes() string {
	names := make([]string, 0, len(dtypeSizes))
	for d := range dtypeSizes {
		names = append(names, string(d))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
