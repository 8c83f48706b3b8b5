package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The record format, version 1. Integers are little-endian; a "blob" is a
// uvarint length followed by that many bytes.
//
//	magic      "RCKP"
//	version    1 byte = 1
//	step       uint64
//	epoch      uint64, unused: 0 (the step determines the data position)
//	wall time  int64, Unix nanoseconds
//	config     blob (ConfigHash)
//	metrics    uvarint count, then per metric: name blob, float64 bits;
//	           names non-empty UTF-8 in strictly increasing order, values finite
//	cursor, params, optimizer, schedule, hidden: five blobs (cursor
//	           unused: empty, for the same reason)
//
// The small fields come first so that the head (through the metrics) is
// read without touching the large blobs. Nothing may follow the last blob.
const (
	magic         = "RCKP"
	recordVersion = 1
	fixedLen      = len(magic) + 1 + 8 + 8 + 8
)

// minWall and maxWall bound the wall times an int64 of Unix nanoseconds holds.
var (
	minWall = time.Unix(0, math.MinInt64)
	maxWall = time.Unix(0, math.MaxInt64)
)

// MarshalBinary encodes c as a version 1 record. It fails, wrapping
// ErrInvalid, for a metric that is NaN or infinite or has an empty or
// non-UTF-8 name, and for a wall time outside the years 1678 to 2262.
func (c *Checkpoint) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	names := sortedNames(c.Metrics)
	blobs := [][]byte{nil, c.Params, c.Optimizer, c.Schedule, c.Hidden}
	n := fixedLen + binary.MaxVarintLen64*(2+len(names)+len(blobs)) + len(c.ConfigHash)
	for _, name := range names {
		n += len(name) + 8
	}
	for _, b := range blobs {
		n += len(b)
	}
	out := make([]byte, 0, n)
	out = append(out, magic...)
	out = append(out, recordVersion)
	out = binary.LittleEndian.AppendUint64(out, c.Step)
	out = binary.LittleEndian.AppendUint64(out, 0) // epoch, unused
	out = binary.LittleEndian.AppendUint64(out, uint64(c.WallTime.UnixNano()))
	out = appendBlob(out, []byte(c.ConfigHash))
	out = binary.AppendUvarint(out, uint64(len(names)))
	for _, name := range names {
		out = appendBlob(out, []byte(name))
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(c.Metrics[name]))
	}
	for _, b := range blobs {
		out = appendBlob(out, b)
	}
	return out, nil
}

func (c *Checkpoint) validate() error {
	for name, v := range c.Metrics {
		if name == "" || !utf8.ValidString(name) {
			return fmt.Errorf("%w: step %d: metric name %q", ErrInvalid, c.Step, name)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: step %d: metric %s is %v", ErrInvalid, c.Step, name, v)
		}
	}
	if c.WallTime.Before(minWall) || c.WallTime.After(maxWall) {
		return fmt.Errorf("%w: step %d: wall time %v out of range", ErrInvalid, c.Step, c.WallTime)
	}
	return nil
}

func sortedNames(m map[string]float64) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func appendBlob(out, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// UnmarshalBinary decodes a record MarshalBinary produced into c, copying
// every byte so that data may be reused. Empty byte fields decode as nil,
// and the wall time in UTC. Bad input is an error wrapping ErrFormat that
// gives the offset and field; c is then unchanged.
func (c *Checkpoint) UnmarshalBinary(data []byte) error {
	h, blobs, err := decodeRecord(data)
	if err != nil {
		return err
	}
	for i, b := range blobs {
		if len(b) == 0 {
			blobs[i] = nil
		} else {
			blobs[i] = slices.Clone(b)
		}
	}
	*c = Checkpoint{
		Step: h.step, WallTime: h.wall, ConfigHash: h.config, Metrics: h.metrics,
		Params: blobs[1], Optimizer: blobs[2], Schedule: blobs[3], Hidden: blobs[4],
	}
	return nil
}

// decodeRecord decodes a whole record; the blobs alias data.
func decodeRecord(data []byte) (head, [][]byte, error) {
	d := decoder{b: data}
	h := d.head()
	blobs := make([][]byte, 5)
	for i, field := range []string{"cursor", "params", "optimizer", "schedule", "hidden"} {
		blobs[i] = d.blob(field)
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail("end", "%d bytes after the last field", len(d.b)-d.off)
	}
	return h, blobs, d.err
}

// head is the part of a record before the blobs.
type head struct {
	step, epoch uint64
	wall        time.Time
	config      string
	metrics     map[string]float64
}

// decodeHead decodes the head of a record without reading the blobs.
func decodeHead(data []byte) (head, error) {
	d := decoder{b: data}
	h := d.head()
	return h, d.err
}

// decoder reads a record; after the first error every read returns zero.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: record offset %d: %s: %s", ErrFormat, d.off, field, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail(field, "needs %d bytes, %d remain", n, len(d.b)-d.off)
		return nil
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b
}

func (d *decoder) u64(field string) uint64 {
	if b := d.take(field, 8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "bad length")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) blob(field string) []byte {
	n := d.uvarint(field)
	if d.err == nil && n > uint64(len(d.b)-d.off) {
		d.fail(field, "length %d exceeds the %d bytes that remain", n, len(d.b)-d.off)
	}
	return d.take(field, int(min(n, math.MaxInt32)))
}

func (d *decoder) head() head {
	var h head
	if m := d.take("magic", len(magic)); d.err == nil && string(m) != magic {
		d.fail("magic", "%q, want %q", m, magic)
	}
	if v := d.take("version", 1); d.err == nil && v[0] != recordVersion {
		d.fail("version", "%d, this build reads %d", v[0], recordVersion)
	}
	h.step = d.u64("step")
	h.epoch = d.u64("epoch")
	h.wall = time.Unix(0, int64(d.u64("wall time"))).UTC()
	h.config = string(d.blob("config hash"))
	h.metrics = d.metrics()
	return h
}

func (d *decoder) metrics() map[string]float64 {
	n := d.uvarint("metrics")
	// Each metric takes at least 10 bytes: a length, one name byte, a value.
	if d.err == nil && n > uint64(len(d.b)-d.off)/10 {
		d.fail("metrics", "count %d does not fit the %d bytes that remain", n, len(d.b)-d.off)
	}
	if d.err != nil || n == 0 {
		return nil
	}
	m := make(map[string]float64, n)
	prev := ""
	for i := range n {
		name := string(d.blob("metric name"))
		v := math.Float64frombits(d.u64("metric " + name))
		switch {
		case d.err != nil:
			return nil
		case name == "" || !utf8.ValidString(name):
			d.fail("metrics", "name %d is %q", i, name)
		case i > 0 && strings.Compare(name, prev) <= 0:
			d.fail("metrics", "name %q after %q: not in increasing order", name, prev)
		case math.IsNaN(v) || math.IsInf(v, 0):
			d.fail("metrics", "%s is %v", name, v)
		}
		m[name], prev = v, name
	}
	return m
}
