package optim

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"unsafe"
)

// Encoded state layout (all integers little-endian):
//
//	magic    [4]byte "ROPT"
//	version  uint16 (formatVersion)
//	elemSize uint8  (4: float32 buffers, 8: float64)
//	nbuf     uint8  (buffers per parameter)
//	length   uint64 (total length of the encoding, checksum included)
//	steps    uint64
//	kind     uint8 length + bytes
//	nhyper   uint8, then per hyperparameter: uint8 length + name, float64
//	nparam   uint32, then per parameter (sorted by name):
//	         uint16 length + name, uint64 n, nbuf*n elements
//	crc      uint32 CRC-32C (Castagnoli) of all the bytes before it
//
// A float32 state loads into a float64 optimizer and vice versa.
const (
	formatMagic   = "ROPT"
	formatVersion = 1
	fixedHeader   = 4 + 2 + 1 + 1 + 8 + 8
	crcSize       = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hyper is one named hyperparameter; booleans are stored as 0 or 1.
type hyper struct {
	name  string
	value float64
}

func boolHyper(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// hyperSet is the decoded hyperparameters. Lookups record missing names and
// bad booleans; done reports them and any names nobody asked for.
type hyperSet struct {
	kind string
	vals map[string]float64
	used int
	bad  error
}

func (h *hyperSet) float(name string) float64 {
	v, ok := h.vals[name]
	if !ok {
		if h.bad == nil {
			h.bad = fmt.Errorf("%w: %s state lacks hyperparameter %q", ErrCorrupt, h.kind, name)
		}
		return 0
	}
	h.used++
	return v
}

func (h *hyperSet) bool(name string) bool {
	v := h.float(name)
	if v != 0 && v != 1 && h.bad == nil {
		h.bad = fmt.Errorf("%w: %s hyperparameter %q = %v, want 0 or 1", ErrCorrupt, h.kind, name, v)
	}
	return v == 1
}

func (h *hyperSet) done() error {
	if h.bad != nil {
		return h.bad
	}
	if h.used != len(h.vals) {
		return fmt.Errorf("%w: %s state has %d hyperparameters, want %d", ErrCorrupt, h.kind, len(h.vals), h.used)
	}
	return nil
}

// hyperSetter decodes hyperparameters into a validated config. It returns the
// number of buffers per parameter that config needs and a function that
// installs it, called only once the whole state has decoded.
type hyperSetter func(*hyperSet) (nbuf int, apply func(), err error)

func elemSize[F Float]() int { return int(unsafe.Sizeof(*new(F))) }

func marshalState[F Float](s *state[F], hypers []hyper) ([]byte, error) {
	names := make([]string, 0, len(s.slots))
	size := fixedHeader + 1 + len(s.kind) + 1 + 4 + crcSize
	for _, h := range hypers {
		size += 1 + len(h.name) + 8
	}
	es := elemSize[F]()
	for name, sl := range s.slots {
		if len(name) > math.MaxUint16 {
			return nil, fmt.Errorf("optim: parameter name of %d bytes is too long to encode", len(name))
		}
		names = append(names, name)
		size += 2 + len(name) + 8 + len(sl.bufs)*es
	}
	slices.Sort(names)

	b := make([]byte, 0, size)
	b = append(b, formatMagic...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = append(b, byte(es), byte(s.nbuf))
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = binary.LittleEndian.AppendUint64(b, s.steps)
	b = append(b, byte(len(s.kind)))
	b = append(b, s.kind...)
	b = append(b, byte(len(hypers)))
	for _, h := range hypers {
		b = append(b, byte(len(h.name)))
		b = append(b, h.name...)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.value))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(names)))
	for _, name := range names {
		sl := s.slots[name]
		b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint64(b, uint64(sl.n))
		b = appendFloats(b, sl.bufs)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

func appendFloats[F Float](b []byte, xs []F) []byte {
	if elemSize[F]() == 4 {
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x)))
		}
		return b
	}
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(x)))
	}
	return b
}

// unmarshalState decodes data into s. On error s is unchanged.
func unmarshalState[F Float](s *state[F], data []byte, set hyperSetter) error {
	if len(data) < fixedHeader+crcSize {
		return fmt.Errorf("%w: truncated: %d bytes, the header alone needs %d", ErrCorrupt, len(data), fixedHeader+crcSize)
	}
	if string(data[:4]) != formatMagic {
		return fmt.Errorf("%w: bad magic %q, want %q", ErrCorrupt, data[:4], formatMagic)
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != formatVersion {
		return fmt.Errorf("%w: unsupported format version %d (this build reads %d)", ErrCorrupt, v, formatVersion)
	}
	es, nbuf := int(data[6]), int(data[7])
	if n := binary.LittleEndian.Uint64(data[8:]); n != uint64(len(data)) {
		if n > uint64(len(data)) {
			return fmt.Errorf("%w: truncated: %d bytes, header says %d", ErrCorrupt, len(data), n)
		}
		return fmt.Errorf("%w: %d trailing bytes after the %d the header declares", ErrCorrupt, uint64(len(data))-n, n)
	}
	body := data[:len(data)-crcSize]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return fmt.Errorf("%w: checksum mismatch: computed %08x, stored %08x", ErrCorrupt, got, want)
	}
	if es != 4 && es != 8 {
		return fmt.Errorf("%w: element size %d, want 4 or 8", ErrCorrupt, es)
	}
	d := decoder{b: body[fixedHeader:]}
	steps := binary.LittleEndian.Uint64(body[16:])
	if kind := d.str8(); d.err == nil && kind != s.kind {
		return fmt.Errorf("%w: state was written by %q, this optimizer is %q", ErrKind, kind, s.kind)
	}
	hs := &hyperSet{kind: s.kind, vals: map[string]float64{}}
	for range int(d.u8()) {
		name, v := d.str8(), math.Float64frombits(d.u64())
		if _, dup := hs.vals[name]; dup && d.err == nil {
			return fmt.Errorf("%w: hyperparameter %q given twice", ErrCorrupt, name)
		}
		hs.vals[name] = v
	}
	if d.err != nil {
		return d.err
	}
	want, apply, err := set(hs)
	if err != nil {
		return err
	}
	if nbuf != want {
		return fmt.Errorf("%w: %d buffers per parameter, the %s config needs %d", ErrCorrupt, nbuf, s.kind, want)
	}
	slots, err := decodeSlots[F](&d, es, nbuf)
	if err != nil {
		return err
	}
	if steps == 0 && len(slots) == 0 {
		slots = nil // never stepped: allocate on the next Step
	}
	apply()
	s.nbuf, s.steps, s.slots = nbuf, steps, slots
	return nil
}

func decodeSlots[F Float](d *decoder, es, nbuf int) (map[string]*slot[F], error) {
	nparam := d.u32()
	slots := make(map[string]*slot[F], min(nparam, 1024))
	for range nparam {
		name := d.str16()
		n := d.u64()
		if d.err != nil {
			return nil, d.err
		}
		if _, dup := slots[name]; dup {
			return nil, fmt.Errorf("%w: parameter %q given twice", ErrCorrupt, name)
		}
		// Bound n by the bytes left before allocating.
		if n > math.MaxInt32*64 || nbuf > 0 && n > uint64(len(d.b)/(nbuf*es)) {
			return nil, fmt.Errorf("%w: parameter %q: %d elements × %d buffers do not fit in the %d bytes left", ErrCorrupt, name, n, nbuf, len(d.b))
		}
		sl := &slot[F]{n: int(n), bufs: make([]F, int(n)*nbuf)}
		readFloats(d, sl.bufs, es)
		slots[name] = sl
	}
	if d.err == nil && len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d unread bytes after the last parameter", ErrCorrupt, len(d.b))
	}
	return slots, d.err
}

// decoder reads little-endian fields; the first short read sets err and
// makes every later read return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated: field of %d bytes, %d left", ErrCorrupt, n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) str8() string  { return string(d.take(int(d.u8()))) }
func (d *decoder) str16() string { return string(d.take(int(d.u16()))) }

// readFloats fills dst from elements of es bytes each.
func readFloats[F Float](d *decoder, dst []F, es int) {
	b := d.take(len(dst) * es)
	if b == nil {
		return
	}
	if es == 4 {
		for i := range dst {
			dst[i] = F(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return
	}
	for i := range dst {
		dst[i] = F(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
	}
}
