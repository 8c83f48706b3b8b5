package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Write encodes f to w. It checks every tensor first (known dtype,
// non-negative shape, Data of the size the shape calls for, no tensor named
// "__metadata__") and writes nothing if one fails. The output is
// deterministic; see the package documentation for the order.
func Write(w io.Writer, f *File) error {
	names, err := writeOrder(f)
	if err != nil {
		return err
	}
	hdr := header(f, names)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	for _, name := range names {
		if _, err := w.Write(f.Tensors[name].Data); err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", name, err)
		}
	}
	return nil
}

// writeOrder validates the tensors and returns their names in file order:
// decreasing element size, then name.
func writeOrder(f *File) ([]string, error) {
	names := slices.Collect(maps.Keys(f.Tensors))
	for _, name := range names {
		if name == metadataKey {
			return nil, tensorErr(name, "name", "the name is reserved for metadata")
		}
		if err := f.Tensors[name].check(name); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(f.Tensors[b].DType.Size(), f.Tensors[a].DType.Size()); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return names, nil
}

// header returns the JSON header, padded with spaces to a multiple of 8.
func header(f *File, names []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(f.Metadata) > 0 {
		writeString(&b, metadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(f.Metadata)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(&b, k)
			b.WriteByte(':')
			writeString(&b, f.Metadata[k])
		}
		b.WriteByte('}')
	}
	var offset uint64
	for i, name := range names {
		if i > 0 || len(f.Metadata) > 0 {
			b.WriteByte(',')
		}
		t := f.Tensors[name]
		writeString(&b, name)
		b.WriteString(`:{"dtype":`)
		writeString(&b, string(t.DType))
		b.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		end := offset + uint64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes()
}

// writeString writes s as a JSON string, leaving <, > and & unescaped.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes; bytes.Buffer never fails
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// WriteFile writes f to path atomically: to a temporary file in the same
// directory, synced, then renamed over path, so that a crash leaves either
// the old file or the new one, never a torn one.
func WriteFile(path string, f *File) (err error) {
	if _, err := writeOrder(f); err != nil {
		return err // fail before creating anything
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Write(bw, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable where the platform allows; failure only
// weakens durability, so it is ignored.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
