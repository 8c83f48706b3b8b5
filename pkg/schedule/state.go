package schedule

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// stateVersion is the first byte of the plateau state record.
//
// Version 1, 37 bytes, little-endian:
//
//	[0]      version = 1
//	[1:9]    best loss, float64 bits (+Inf before the first observation)
//	[9:13]   bad observations, uint32
//	[13:17]  cooldown left, uint32
//	[17:25]  factor, float64 bits, in (0, 1]
//	[25:33]  step of the last observation, int64 (-1 before the first)
//	[33:37]  CRC-32C (Castagnoli) of bytes [0:33]
const (
	stateVersion = 1
	stateLen     = 37
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes the plateau state (best loss, bad observations,
// cooldown, factor and last observed step) with a version byte and a
// CRC-32C. The configuration is not included: restore into a Schedule built
// from the same Config.
func (s *Schedule) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	b := make([]byte, stateLen)
	b[0] = stateVersion
	binary.LittleEndian.PutUint64(b[1:], math.Float64bits(st.best))
	binary.LittleEndian.PutUint32(b[9:], uint32(min(st.bad, math.MaxUint32)))
	binary.LittleEndian.PutUint32(b[13:], uint32(st.cooldown))
	binary.LittleEndian.PutUint64(b[17:], math.Float64bits(st.factor))
	binary.LittleEndian.PutUint64(b[25:], uint64(int64(st.last)))
	binary.LittleEndian.PutUint32(b[33:], crc32.Checksum(b[:33], castagnoli))
	return b, nil
}

// UnmarshalBinary replaces the plateau state with one MarshalBinary
// encoded. It checks the length, version and checksum and that every value
// is one a Schedule can reach; on error, wrapping ErrState, the state is
// unchanged.
func (s *Schedule) UnmarshalBinary(data []byte) error {
	st, err := decodeState(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	return nil
}

func decodeState(b []byte) (plateauState, error) {
	var st plateauState
	if len(b) != stateLen {
		return st, fmt.Errorf("%w: %d bytes, want %d", ErrState, len(b), stateLen)
	}
	if b[0] != stateVersion {
		return st, fmt.Errorf("%w: version %d, want %d", ErrState, b[0], stateVersion)
	}
	if got, want := binary.LittleEndian.Uint32(b[33:]), crc32.Checksum(b[:33], castagnoli); got != want {
		return st, fmt.Errorf("%w: checksum %#08x, computed %#08x", ErrState, got, want)
	}
	st.best = math.Float64frombits(binary.LittleEndian.Uint64(b[1:]))
	st.bad = int(binary.LittleEndian.Uint32(b[9:]))
	st.cooldown = int(binary.LittleEndian.Uint32(b[13:]))
	st.factor = math.Float64frombits(binary.LittleEndian.Uint64(b[17:]))
	last := int64(binary.LittleEndian.Uint64(b[25:]))
	switch {
	case math.IsNaN(st.best) || math.IsInf(st.best, -1):
		return st, fmt.Errorf("%w: best loss %v", ErrState, st.best)
	case !(st.factor > 0 && st.factor <= 1):
		return st, fmt.Errorf("%w: factor %v not in (0, 1]", ErrState, st.factor)
	case last < -1 || last > math.MaxInt:
		return st, fmt.Errorf("%w: last step %d", ErrState, last)
	case last == -1 && !math.IsInf(st.best, 1):
		return st, fmt.Errorf("%w: best loss %v before any observation", ErrState, st.best)
	}
	st.last = int(last)
	return st, nil
}
