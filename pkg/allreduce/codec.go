package allreduce

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// rawCodec is the gRPC codec of the Link stream. It produces and parses
// exactly the protobuf encoding of ringpb.Frame, but never copies the
// payload on the way out: Marshal returns the encoded header followed by
// the caller's payload slice, which gRPC writes to the connection
// directly; a tracked payload (Frame.tx) is referenced until gRPC
// releases it. On the way in the message is copied once, into the Frame's
// reusable buffer, and Payload aliases it.
type rawCodec struct{}

// codecName is also the content-subtype ("application/grpc+recur-ring").
const codecName = "recur-ring"

func (rawCodec) Name() string { return codecName }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*Frame)
	if !ok {
		return nil, fmt.Errorf("allreduce: codec cannot marshal %T", v)
	}
	hdr := mem.SliceBuffer(appendHeader(make([]byte, 0, 48+len(f.Reason)), f))
	if len(f.Payload) == 0 {
		return mem.BufferSlice{hdr}, nil
	}
	if f.tx != nil {
		f.tx.Ref() // gRPC's, freed once its writer is done with the bytes
		return mem.BufferSlice{hdr, f.tx}, nil
	}
	return mem.BufferSlice{hdr, mem.SliceBuffer(f.Payload)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("allreduce: codec cannot unmarshal into %T", v)
	}
	total := data.Len()
	if len(data) > 1 && total > maxHeaderBytes {
		// Parse the header from a copied prefix and leave the payload in
		// gRPC's buffers: the ring applies it from there and releases it.
		prefix := f.recvBuf(maxHeaderBytes)
		data.CopyTo(prefix)
		off, n, err := decodePrefix(prefix, total, f)
		if err == nil && off >= 0 {
			data.Ref()
			f.rx, f.rxOff, f.rxLen = data, off, n
			return nil
		}
	}
	b := f.recvBuf(total)
	data.CopyTo(b)
	return decodeFrame(b, f)
}

// maxHeaderBytes covers every field before the payload of a data frame.
const maxHeaderBytes = 128
