package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// State is what makes every worker identical after a step: the number of
// updates applied, the parameters, the optimizer state and the carried
// TBPTT state of every stream. Workers send it to joiners and to the
// coordinator (checkpoints); the coordinator sends it back after a restart.
type State struct {
	Step   int64
	Params []byte    // safetensors bytes (rnn.Model.MarshalBinary)
	Optim  []byte    // optimizer state (optim.Optimizer.MarshalBinary)
	Carry  []float32 // carried states of all streams: H then C, [Layers, Streams, Hidden] each
}

const stateMagic = "RSTA"

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// ErrBadState reports state bytes that do not decode.
	ErrBadState = errors.New("cluster: bad state bytes")
)

// MarshalBinary encodes the state: magic, version, step, three
// length-prefixed sections, CRC-32C.
func (s *State) MarshalBinary() ([]byte, error) {
	n := 4 + 2 + 8 + 3*8 + len(s.Params) + len(s.Optim) + 4*len(s.Carry) + 4
	b := make([]byte, 0, n)
	b = append(b, stateMagic...)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Step))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s.Params)))
	b = append(b, s.Params...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s.Optim)))
	b = append(b, s.Optim...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s.Carry)))
	for _, v := range s.Carry {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary decodes bytes written by MarshalBinary.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) < 4+2+8+8+8+8+4 || string(b[:4]) != stateMagic {
		return fmt.Errorf("%w: no state header", ErrBadState)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrBadState)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != 1 {
		return fmt.Errorf("%w: version %d", ErrBadState, v)
	}
	s.Step = int64(binary.LittleEndian.Uint64(b[6:]))
	rest := body[14:]
	section := func(what string, size uint64) ([]byte, error) {
		if len(rest) < 8 {
			return nil, fmt.Errorf("%w: truncated before %s", ErrBadState, what)
		}
		n := binary.LittleEndian.Uint64(rest)
		rest = rest[8:]
		if n > uint64(len(rest))/size {
			return nil, fmt.Errorf("%w: %s of %d elements overruns the data", ErrBadState, what, n)
		}
		out := rest[:n*size]
		rest = rest[n*size:]
		return out, nil
	}
	var err error
	if s.Params, err = section("params", 1); err != nil {
		return err
	}
	if s.Optim, err = section("optimizer", 1); err != nil {
		return err
	}
	carry, err := section("carry", 4)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadState, len(rest))
	}
	s.Carry = make([]float32, len(carry)/4)
	for i := range s.Carry {
		s.Carry[i] = math.Float32frombits(binary.LittleEndian.Uint32(carry[i*4:]))
	}
	return nil
}
