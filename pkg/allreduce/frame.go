package allreduce

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Kind says what a Frame carries (ringpb.Kind on the wire).
type Kind uint8

// Frame kinds.
const (
	KindData      Kind = 1 // one schedule slot, left to right
	KindHeartbeat Kind = 2 // liveness; Call = highest call entered
	KindAbort     Kind = 3 // the call failed; forwarded around the ring
	KindAck       Kind = 4 // data slot applied; right to left (credit)
	KindHello     Kind = 5 // link admitted by the accepting side
)

// Frame flag bits.
const (
	flagBad        = 1 << 0 // some contribution so far is bad (OR-reduced)
	flagCompShift  = 1      // bits 1-2: Compression of the payload
	flagCompMask   = 3 << flagCompShift
	maxReasonBytes = 512
	// MaxFrameBytes bounds one encoded frame: the largest segment plus
	// header room. Transports refuse bigger messages.
	MaxFrameBytes = maxSegmentBytes + 4096
)

// Frame is the unit a Transport carries, mirroring ringpb.Frame. Payload
// is raw little-endian elements; after Conn.Recv it aliases a buffer owned
// by the Frame and is valid until the next Recv into the same Frame.
type Frame struct {
	Kind       Kind
	Generation uint64
	Call       uint64
	Slot       uint32
	Flags      uint32
	Origin     int32
	Suspect    int32
	Code       uint32
	Reason     string
	Total      uint64
	Payload    []byte

	buf []byte // receive buffer reused by Recv
	// rx, when set, holds the payload instead of Payload: rxLen bytes at
	// rxOff of gRPC's received buffers, applied in place and then released.
	rx           mem.BufferSlice
	rxOff, rxLen int
	// tx, when set on a frame being sent, is Payload as a tracked buffer
	// (see sendHolds): a zeroCopyConn takes its own reference and releases
	// it once done reading. Other transports copy Payload and ignore it.
	tx mem.Buffer
}

// payloadLen is the received payload's length.
func (f *Frame) payloadLen() int {
	if f.rx != nil {
		return f.rxLen
	}
	return len(f.Payload)
}

// pieces calls fn on consecutive pieces of the payload.
func (f *Frame) pieces(fn func([]byte)) {
	if f.rx == nil {
		fn(f.Payload)
		return
	}
	off, left := f.rxOff, f.rxLen
	for _, buf := range f.rx {
		d := buf.ReadOnlyData()
		if off >= len(d) {
			off -= len(d)
			continue
		}
		d = d[off:min(len(d), off+left)]
		off, left = 0, left-len(d)
		fn(d)
		if left == 0 {
			return
		}
	}
}

// release returns received gRPC buffers to their pool.
func (f *Frame) release() {
	if f.rx != nil {
		f.rx.Free()
		f.rx = nil
	}
}

// compression is the payload encoding named by the flags.
func (f *Frame) compression() Compression {
	return Compression(f.Flags & flagCompMask >> flagCompShift)
}

// recvBuf returns the frame's reusable receive buffer with length n.
func (f *Frame) recvBuf(n int) []byte {
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	return f.buf[:n]
}

// Protobuf field numbers of ringpb.Frame.
const (
	fieldKind       = 1
	fieldGeneration = 2
	fieldCall       = 3
	fieldSlot       = 4
	fieldFlags      = 5
	fieldOrigin     = 6
	fieldSuspect    = 7
	fieldCode       = 8
	fieldReason     = 9
	fieldTotal      = 10
	fieldPayload    = 15
)

// appendHeader appends every field of f except the payload bytes, ending
// with the payload's tag and length so that header+payload is exactly the
// protobuf encoding of ringpb.Frame (proto3: zero fields omitted).
func appendHeader(b []byte, f *Frame) []byte {
	varint := func(num protowire.Number, v uint64) {
		if v != 0 {
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, v)
		}
	}
	varint(fieldKind, uint64(f.Kind))
	varint(fieldGeneration, f.Generation)
	varint(fieldCall, f.Call)
	varint(fieldSlot, uint64(f.Slot))
	varint(fieldFlags, uint64(f.Flags))
	varint(fieldOrigin, uint64(int64(f.Origin)))
	varint(fieldSuspect, uint64(int64(f.Suspect)))
	varint(fieldCode, uint64(f.Code))
	if f.Reason != "" {
		b = protowire.AppendTag(b, fieldReason, protowire.BytesType)
		b = protowire.AppendString(b, f.Reason)
	}
	varint(fieldTotal, f.Total)
	if len(f.Payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(len(f.Payload)))
	}
	return b
}

// errMalformed wraps decoding failures.
var errMalformed = fmt.Errorf("%w: malformed frame", ErrProtocol)

// decodeFrame parses the protobuf encoding of a frame from b, which comes
// from the network and may be anything. f.Payload aliases b.
func decodeFrame(b []byte, f *Frame) error {
	_, _, err := decodePrefix(b, len(b), f)
	return err
}

// decodePrefix parses a frame of total bytes of which b is a prefix. If
// the payload is the last field and extends past b, parsing stops there
// and (off, n) locate it in the whole message; otherwise off is -1 and
// f.Payload aliases b. It fails if b ends anywhere else.
func decodePrefix(b []byte, total int, f *Frame) (off, n int, err error) {
	f.release()
	*f = Frame{buf: f.buf}
	pos := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return -1, 0, fmt.Errorf("%w: %v", errMalformed, protowire.ParseError(n))
		}
		b, pos = b[n:], pos+n
		if typ == protowire.BytesType && num == fieldPayload && total > pos+len(b) {
			l, m := protowire.ConsumeVarint(b)
			if m < 0 || uint64(pos+m)+l != uint64(total) {
				return -1, 0, fmt.Errorf("%w: payload does not end the frame", errMalformed)
			}
			return pos + m, int(l), nil
		}
		if err := f.decodeField(num, typ, &b, &pos); err != nil {
			return -1, 0, err
		}
	}
	if total != pos {
		return -1, 0, fmt.Errorf("%w: truncated", errMalformed)
	}
	return -1, 0, nil
}

// decodeField consumes the value of field num from *bp, advancing *pos.
func (f *Frame) decodeField(num protowire.Number, typ protowire.Type, bp *[]byte, pos *int) error {
	b := *bp
	var n int
	switch {
	case typ == protowire.BytesType && (num == fieldReason || num == fieldPayload):
		var v []byte
		if v, n = protowire.ConsumeBytes(b); n >= 0 {
			if num == fieldReason {
				f.Reason = string(v)
			} else {
				f.Payload = v
			}
		}
	case typ != protowire.VarintType || num < fieldKind || num > fieldTotal || num == fieldReason:
		n = protowire.ConsumeFieldValue(num, typ, b) // unknown field: skip
	default:
		var v uint64
		if v, n = protowire.ConsumeVarint(b); n >= 0 {
			if err := setVarint(f, num, v); err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("%w: field %d: %v", errMalformed, num, protowire.ParseError(n))
	}
	*bp, *pos = b[n:], *pos+n
	return nil
}

// errRange reports a varint that does not fit its field.
var errRange = errors.New("value out of range")

func setVarint(f *Frame, num protowire.Number, v uint64) error {
	fits32 := func() bool { return v <= 0xffffffff }
	fitsInt32 := func() bool { s := int64(v); return s >= -1<<31 && s < 1<<31 }
	ok := true
	switch num {
	case fieldKind:
		ok = v <= 0xff
		f.Kind = Kind(v)
	case fieldGeneration:
		f.Generation = v
	case fieldCall:
		f.Call = v
	case fieldSlot:
		ok = fits32()
		f.Slot = uint32(v)
	case fieldFlags:
		ok = fits32()
		f.Flags = uint32(v)
	case fieldOrigin:
		ok = fitsInt32()
		f.Origin = int32(v)
	case fieldSuspect:
		ok = fitsInt32()
		f.Suspect = int32(v)
	case fieldCode:
		ok = fits32()
		f.Code = uint32(v)
	case fieldTotal:
		f.Total = v
	}
	if !ok {
		return fmt.Errorf("%w: field %d: %w", errMalformed, num, errRange)
	}
	return nil
}
