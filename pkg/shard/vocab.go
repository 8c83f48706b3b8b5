package shard

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"unicode/utf8"
)

// Level says how text becomes tokens.
type Level int

const (
	// CharLevel maps each rune to an id from a vocabulary built from the
	// training text: id 0 is <unk>, then the runes in ascending order.
	CharLevel Level = iota
	// ByteLevel maps each byte to its value: 256 ids, no <unk>, no
	// vocabulary pass, no UTF-8 requirement.
	ByteLevel
)

// String returns "char" or "byte".
func (l Level) String() string {
	switch l {
	case CharLevel:
		return "char"
	case ByteLevel:
		return "byte"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Unk is the id of unknown runes in a char vocabulary.
const Unk int32 = 0

// Vocab maps text to token ids. A char vocabulary assigns id 0 to <unk> and
// ids 1..n to its runes in ascending rune order, so the same training text
// always gives the same ids. Save it with the model (MarshalBinary or JSON)
// and reload it to encode new text the same way.
type Vocab struct {
	level Level
	runes []rune // sorted, char level only
	ascii [utf8.RuneSelf]int32
	dense []int32 // id of every rune below len(dense) (BMP vocabularies)
	index map[rune]int32
}

// maxDense bounds the dense lookup table (256 KiB of int32).
const maxDense = 1 << 16

// NewCharVocab returns the char vocabulary of the distinct runes given (any
// order, duplicates allowed). Invalid runes (utf8.RuneError from bad input,
// surrogates) are left out and so map to <unk>.
func NewCharVocab(runes []rune) *Vocab {
	rs := slices.Clone(runes)
	slices.Sort(rs)
	rs = slices.Compact(rs)
	rs = slices.DeleteFunc(rs, func(r rune) bool { return !utf8.ValidRune(r) || r == utf8.RuneError })
	return newCharVocab(rs)
}

func newCharVocab(sorted []rune) *Vocab {
	v := &Vocab{level: CharLevel, runes: sorted, index: make(map[rune]int32, len(sorted))}
	for i, r := range sorted {
		id := int32(i + 1)
		if r < utf8.RuneSelf {
			v.ascii[r] = id
		}
		v.index[r] = id
	}
	if n := len(sorted); n > 0 && sorted[n-1] >= utf8.RuneSelf && sorted[n-1] < maxDense {
		v.dense = make([]int32, sorted[n-1]+1)
		for i, r := range sorted {
			v.dense[r] = int32(i + 1)
		}
	}
	return v
}

// NewByteVocab returns the byte-level vocabulary (256 ids).
func NewByteVocab() *Vocab { return &Vocab{level: ByteLevel} }

// Level returns CharLevel or ByteLevel.
func (v *Vocab) Level() Level { return v.level }

// Size returns the number of ids, <unk> included.
func (v *Vocab) Size() int {
	if v.level == ByteLevel {
		return 256
	}
	return len(v.runes) + 1
}

// Runes returns the runes of a char vocabulary, rune i having id i+1.
func (v *Vocab) Runes() []rune { return slices.Clone(v.runes) }

// ID returns the id of r in a char vocabulary (Unk when absent). For a byte
// vocabulary it returns r if r < 256, else Unk (use Encode for bytes).
func (v *Vocab) ID(r rune) int32 {
	if v.level == ByteLevel {
		if r >= 0 && r < 256 {
			return r
		}
		return Unk
	}
	if r >= 0 && r < utf8.RuneSelf {
		return v.ascii[r]
	}
	if r >= 0 && int(r) < len(v.dense) {
		return v.dense[r]
	}
	return v.index[r] // zero value is Unk
}

// Encode returns the ids of s: one per rune (char) or per byte (byte).
func (v *Vocab) Encode(s string) []int32 {
	if v.level == ByteLevel {
		out := make([]int32, len(s))
		for i := 0; i < len(s); i++ {
			out[i] = int32(s[i])
		}
		return out
	}
	out := make([]int32, 0, len(s))
	for _, r := range s {
		out = append(out, v.ID(r))
	}
	return out
}

// Decode returns the text of ids. <unk> and ids out of range decode to
// U+FFFD in a char vocabulary; a byte vocabulary writes the raw bytes.
func (v *Vocab) Decode(ids []int32) string {
	var sb strings.Builder
	for _, id := range ids {
		switch {
		case v.level == ByteLevel && id >= 0 && id < 256:
			sb.WriteByte(byte(id))
		case v.level == CharLevel && id >= 1 && int(id) <= len(v.runes):
			sb.WriteRune(v.runes[id-1])
		default:
			sb.WriteRune(utf8.RuneError)
		}
	}
	return sb.String()
}

// Binary vocabulary format (little-endian): "RVOC", version byte (1), level
// byte, rune count uint32, runes uint32 each, CRC-32C of all before.
const vocabMagic = "RVOC"

// MarshalBinary encodes the vocabulary with a version and checksum.
func (v *Vocab) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 14+4*len(v.runes))
	b = append(b, vocabMagic...)
	b = append(b, 1, byte(v.level))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v.runes)))
	for _, r := range v.runes {
		b = binary.LittleEndian.AppendUint32(b, uint32(r))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary decodes a vocabulary written by MarshalBinary, with an
// ErrCorrupt error on any damage.
func (v *Vocab) UnmarshalBinary(b []byte) error {
	if len(b) < 14 || string(b[:4]) != vocabMagic {
		return fmt.Errorf("%w: not a vocabulary (%d bytes, bad magic or too short)", ErrCorrupt, len(b))
	}
	if b[4] != 1 {
		return fmt.Errorf("%w: vocabulary version %d, this build reads 1", ErrCorrupt, b[4])
	}
	n := binary.LittleEndian.Uint32(b[6:])
	if uint64(len(b)) != 14+4*uint64(n) {
		return fmt.Errorf("%w: vocabulary declares %d runes but is %d bytes", ErrCorrupt, n, len(b))
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return fmt.Errorf("%w: vocabulary checksum %08x, stored %08x", ErrCorrupt, got, want)
	}
	runes := make([]rune, n)
	for i := range runes {
		runes[i] = rune(binary.LittleEndian.Uint32(b[10+4*i:]))
	}
	nv, err := vocabFrom(Level(b[5]), runes)
	if err != nil {
		return err
	}
	*v = *nv
	return nil
}

// vocabFrom rebuilds a vocabulary, checking runes are valid and ascending.
func vocabFrom(level Level, runes []rune) (*Vocab, error) {
	switch level {
	case ByteLevel:
		if len(runes) != 0 {
			return nil, fmt.Errorf("%w: byte vocabulary with %d runes", ErrCorrupt, len(runes))
		}
		return NewByteVocab(), nil
	case CharLevel:
		for i, r := range runes {
			if !utf8.ValidRune(r) || r == utf8.RuneError || (i > 0 && r <= runes[i-1]) {
				return nil, fmt.Errorf("%w: vocabulary rune %d (%U) invalid or out of order", ErrCorrupt, i, r)
			}
		}
		return newCharVocab(runes), nil
	}
	return nil, fmt.Errorf("%w: vocabulary level %d unknown", ErrCorrupt, level)
}

type vocabJSON struct {
	Level string `json:"level"`
	Runes []rune `json:"runes,omitempty"`
}

// MarshalJSON encodes the vocabulary as {"level":"char","runes":[...]}
// (rune code points, id i+1 for runes[i]).
func (v *Vocab) MarshalJSON() ([]byte, error) {
	return json.Marshal(vocabJSON{Level: v.level.String(), Runes: v.runes})
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (v *Vocab) UnmarshalJSON(b []byte) error {
	var j vocabJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: vocabulary JSON: %v", ErrCorrupt, err)
	}
	level := Level(-1)
	for _, l := range []Level{CharLevel, ByteLevel} {
		if j.Level == l.String() {
			level = l
		}
	}
	nv, err := vocabFrom(level, j.Runes)
	if err != nil {
		return err
	}
	*v = *nv
	return nil
}
