package shard

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Cursor is the resumable position of a batch source: the next unseen global
// batch. It does not depend on the number of workers, so a run saved with W
// workers resumes with any other W.
//
// Binary format (version 1, little-endian):
//
//	offset  size  field
//	0       4     magic "RCUR"
//	4       2     version (1)
//	6       2     reserved, zero
//	8       8     Seed
//	16      8     Fingerprint
//	24      8     Epoch
//	32      8     Batch
//	40      4     n, number of stream offsets
//	44      8*n   Offsets (int64 each)
//	44+8n   4     CRC-32C (Castagnoli) of all preceding bytes
type Cursor struct {
	Seed        uint64  // seed of the source that wrote it
	Fingerprint uint64  // dataset shape and config of that source
	Epoch       uint64  // epoch of the next batch
	Batch       uint64  // index within Epoch of the next global batch
	Offsets     []int64 // streams only: token offset of each stream's next window
}

const (
	cursorMagic   = "RCUR"
	cursorVersion = 1
	cursorHeader  = 44
	// maxCursorStreams bounds the stream count a cursor may declare.
	maxCursorStreams = 1 << 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes the cursor in the versioned, checksummed format.
func (c Cursor) MarshalBinary() ([]byte, error) {
	if len(c.Offsets) > maxCursorStreams {
		return nil, configErr("cursor with %d streams exceeds %d", len(c.Offsets), maxCursorStreams)
	}
	b := make([]byte, 0, cursorHeader+8*len(c.Offsets)+4)
	b = append(b, cursorMagic...)
	b = binary.LittleEndian.AppendUint16(b, cursorVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	for _, v := range []uint64{c.Seed, c.Fingerprint, c.Epoch, c.Batch} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Offsets)))
	for _, o := range c.Offsets {
		b = binary.LittleEndian.AppendUint64(b, uint64(o))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary decodes a cursor, returning an ErrCorrupt error that says
// what is wrong when the bytes are truncated, altered or of another version.
func (c *Cursor) UnmarshalBinary(b []byte) error {
	if len(b) < cursorHeader+4 {
		return fmt.Errorf("%w: cursor is %d bytes, shorter than the %d-byte minimum", ErrCorrupt, len(b), cursorHeader+4)
	}
	if string(b[:4]) != cursorMagic {
		return fmt.Errorf("%w: cursor magic %q, want %q", ErrCorrupt, b[:4], cursorMagic)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != cursorVersion {
		return fmt.Errorf("%w: cursor version %d, this build reads %d", ErrCorrupt, v, cursorVersion)
	}
	n := binary.LittleEndian.Uint32(b[40:])
	if n > maxCursorStreams || len(b) != cursorHeader+8*int(n)+4 {
		return fmt.Errorf("%w: cursor declares %d streams but is %d bytes", ErrCorrupt, n, len(b))
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return fmt.Errorf("%w: cursor checksum %08x, stored %08x", ErrCorrupt, got, want)
	}
	if r := binary.LittleEndian.Uint16(b[6:]); r != 0 {
		return fmt.Errorf("%w: cursor reserved field %d not zero", ErrCorrupt, r)
	}
	out := Cursor{
		Seed:        binary.LittleEndian.Uint64(b[8:]),
		Fingerprint: binary.LittleEndian.Uint64(b[16:]),
		Epoch:       binary.LittleEndian.Uint64(b[24:]),
		Batch:       binary.LittleEndian.Uint64(b[32:]),
	}
	if n > 0 {
		out.Offsets = make([]int64, n)
		for i := range out.Offsets {
			out.Offsets[i] = int64(binary.LittleEndian.Uint64(b[cursorHeader+8*i:]))
		}
	}
	*c = out
	return nil
}

// checkSource reports ErrCursorMismatch if c was saved by a source with
// another seed or shape.
func (c Cursor) checkSource(seed, fp uint64) error {
	if c.Seed != seed {
		return fmt.Errorf("%w: cursor seed %d, source seed %d", ErrCursorMismatch, c.Seed, seed)
	}
	if c.Fingerprint != fp {
		return fmt.Errorf("%w: cursor fingerprint %016x, source %016x (different data, batch size or layout)", ErrCursorMismatch, c.Fingerprint, fp)
	}
	return nil
}

// Source is what a trainer pulls batches from: a Loader (examples) or
// Streams (TBPTT). Next returns this rank's share of the next global batch
// and advances; Cursor and Restore save and resume the position.
type Source interface {
	Next() (*Batch, error)
	Cursor() Cursor
	Restore(Cursor) error
}
