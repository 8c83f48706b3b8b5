package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// A checkpoint file holds one checkpoint outside the store, for readers
// that cannot open the store: the store is locked while its writer runs,
// and a reader must not wait for a training run to end. The writer
// replaces the file atomically after each save. Layout, little-endian:
//
//	magic    "RCKF"
//	version  1 byte = 1
//	record   uint64 length, then the record (Checkpoint.MarshalBinary)
//	crc      uint32, CRC-32C of everything before it
const (
	fileMagic   = "RCKF"
	fileVersion = 1
	fileHead    = len(fileMagic) + 1 + 8
)

// EncodeFile returns c as the bytes of a checkpoint file; a zero
// c.WallTime is written as the current time, as Store.Save does.
func EncodeFile(c *Checkpoint) ([]byte, error) {
	if c.WallTime.IsZero() {
		cc := *c
		cc.WallTime = time.Now()
		c = &cc
	}
	rec, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, fileHead+len(rec)+4)
	b = append(b, fileMagic...)
	b = append(b, fileVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(rec)))
	b = append(b, rec...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// DecodeFile parses the bytes of a checkpoint file, verifying its
// checksum; damage is an error wrapping ErrDamaged or ErrFormat.
func DecodeFile(b []byte) (*Checkpoint, error) {
	if len(b) < fileHead+4 || string(b[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("%w: not a checkpoint file", ErrFormat)
	}
	if v := b[len(fileMagic)]; v != fileVersion {
		return nil, fmt.Errorf("%w: checkpoint file version %d, this build reads %d", ErrFormat, v, fileVersion)
	}
	n := binary.LittleEndian.Uint64(b[len(fileMagic)+1:])
	if n != uint64(len(b)-fileHead-4) {
		return nil, fmt.Errorf("%w: record of %d bytes in a file of %d", ErrDamaged, n, len(b))
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("%w: checksum mismatch: stored %#08x, computed %#08x", ErrDamaged, want, got)
	}
	c := new(Checkpoint)
	if err := c.UnmarshalBinary(b[fileHead : len(b)-4]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return c, nil
}

// WriteFile writes c to path atomically: a reader sees the old file or
// the new one, never a torn one.
func WriteFile(path string, c *Checkpoint) error {
	b, err := EncodeFile(c)
	if err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	return nil
}

// ReadFile reads a checkpoint file; errors name the file.
func ReadFile(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint: %s: %w", path, ErrNoCheckpoint)
		}
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := DecodeFile(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return c, nil
}
