package allreduce

import (
	"bytes"
	"reflect"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/recur-ml/recur/pkg/allreduce/ringpb"
)

func sampleFrame() *Frame {
	return &Frame{
		Kind: KindAbort, Generation: 7, Call: 1 << 40, Slot: 3, Flags: flagBad | uint32(BF16)<<flagCompShift,
		Origin: 2, Suspect: -1, Code: uint32(codeTimeout), Reason: "rank 3 silent", Total: 12345,
		Payload: []byte{1, 2, 3, 4, 5},
	}
}

func encodeFrame(f *Frame) []byte { return append(appendHeader(nil, f), f.Payload...) }

// The hand-written codec must speak exactly ringpb.Frame's wire format.
func TestFrameWireCompatibleWithProto(t *testing.T) {
	f := sampleFrame()
	var pb ringpb.Frame
	if err := proto.Unmarshal(encodeFrame(f), &pb); err != nil {
		t.Fatal(err)
	}
	if pb.GetKind() != ringpb.Kind_KIND_ABORT || pb.GetGeneration() != 7 || pb.GetCall() != 1<<40 ||
		pb.GetSlot() != 3 || pb.GetFlags() != f.Flags || pb.GetOrigin() != 2 || pb.GetSuspect() != -1 ||
		pb.GetCode() != f.Code || pb.GetReason() != f.Reason || pb.GetTotal() != 12345 || !bytes.Equal(pb.GetPayload(), f.Payload) {
		t.Fatalf("proto decoded %v", &pb)
	}
	raw, err := proto.Marshal(&pb)
	if err != nil {
		t.Fatal(err)
	}
	var g Frame
	if err := decodeFrame(raw, &g); err != nil {
		t.Fatal(err)
	}
	g.buf = nil
	if g.Reason != f.Reason || !bytes.Equal(g.Payload, f.Payload) {
		t.Fatalf("decoded %+v", g)
	}
	g.Payload, f.Payload = nil, nil
	if !reflect.DeepEqual(g, *f) {
		t.Fatalf("decoded %+v, want %+v", g, *f)
	}
}

func TestDecodeFrameRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{{0xff}, {0x08}, {0x7a, 0x05, 1}, {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0x20, 0x80, 0x80, 0x80, 0x80, 0x10}} {
		var f Frame
		if err := decodeFrame(b, &f); err == nil {
			t.Errorf("decodeFrame(%x) accepted %+v", b, f)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(encodeFrame(sampleFrame()))
	f.Add(encodeFrame(&Frame{Kind: KindData, Payload: make([]byte, 16)}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		if err := decodeFrame(b, &fr); err != nil {
			return
		}
		// Anything accepted must re-encode to something that decodes equal.
		var again Frame
		if err := decodeFrame(encodeFrame(&fr), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.Reason != fr.Reason || !bytes.Equal(again.Payload, fr.Payload) {
			t.Fatalf("round trip changed the frame")
		}
		// The protobuf runtime must agree with our parser on valid input.
		var pb ringpb.Frame
		if err := proto.Unmarshal(b, &pb); err == nil && (pb.GetGeneration() != fr.Generation || pb.GetCall() != fr.Call || !bytes.Equal(pb.GetPayload(), fr.Payload)) {
			t.Fatalf("proto and decodeFrame disagree: %v vs %+v", &pb, fr)
		}
	})
}

// A payload left in gRPC's buffers, split at every possible point, must
// apply exactly like a contiguous one.
func TestDecodePrefixAndPieces(t *testing.T) {
	src := []float32{1.5, -2, 3.25, 4, 5, -6.5, 7}
	for _, comp := range []Compression{None, FP16} {
		pay := make([]byte, len(src)*comp.elemSize())
		encode(comp, pay, src)
		msg := encodeFrame(&Frame{Kind: KindData, Generation: 3, Call: 1, Slot: 2, Total: 7, Payload: pay})
		for cut1 := 1; cut1 < len(msg); cut1++ {
			for cut2 := cut1; cut2 < len(msg); cut2 += 3 {
				data := mem.BufferSlice{mem.SliceBuffer(msg[:cut1]), mem.SliceBuffer(msg[cut1:cut2]), mem.SliceBuffer(msg[cut2:])}
				var f Frame
				prefix := make([]byte, min(len(msg), cut1))
				data.CopyTo(prefix)
				off, n, err := decodePrefix(prefix, len(msg), &f)
				if err != nil {
					continue // prefix ends inside the header: the codec copies instead
				}
				if off >= 0 {
					f.rx, f.rxOff, f.rxLen = data, off, n
				}
				if f.Generation != 3 || f.Slot != 2 || f.payloadLen() != len(pay) {
					t.Fatalf("cut %d/%d: %+v", cut1, cut2, f)
				}
				got := make([]float32, len(src))
				applyPayload(comp, got, &f, true)
				for i := range src {
					if got[i] != src[i] {
						t.Fatalf("%v cut %d/%d: elem %d = %g, want %g", comp, cut1, cut2, i, got[i], src[i])
					}
				}
				f.rx = nil
			}
		}
	}
}

// decodePrefix on any prefix must agree with decodeFrame on the whole.
func FuzzDecodePrefix(f *testing.F) {
	f.Add(encodeFrame(sampleFrame()), 3)
	f.Add(encodeFrame(&Frame{Kind: KindData, Generation: 1, Payload: make([]byte, 300)}), 20)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			return
		}
		var whole, part Frame
		errWhole := decodeFrame(b, &whole)
		off, n, err := decodePrefix(b[:cut], len(b), &part)
		if err != nil || off < 0 {
			return // the codec falls back to copying the whole message
		}
		if errWhole != nil {
			t.Fatalf("prefix parsed (payload at %d+%d) but the whole frame fails: %v", off, n, errWhole)
		}
		if !bytes.Equal(b[off:off+n], whole.Payload) || part.Generation != whole.Generation || part.Slot != whole.Slot {
			t.Fatalf("prefix parse disagrees with whole parse")
		}
	})
}
