package allreduce

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// segmentLedger records a CRC-32C of every data segment a sender hands its
// transport, taken just before Send, and checks every segment that arrives
// against it: a buffer the ring (or its caller) wrote while the transport
// still held it arrives with other bytes than the sender meant.
type segmentLedger struct {
	mu      sync.Mutex
	sums    map[segmentKey]uint32
	checked atomic.Int64
	bad     []string
}

type segmentKey struct {
	gen, call uint64
	slot      uint32
	origin    int32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newSegmentLedger() *segmentLedger { return &segmentLedger{sums: map[segmentKey]uint32{}} }

func keyOfFrame(f *Frame) segmentKey {
	return segmentKey{f.Generation, f.Call, f.Slot, f.Origin}
}

func (l *segmentLedger) record(f *Frame) {
	sum := crc32.Checksum(f.Payload, castagnoli)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sums[keyOfFrame(f)] = sum
}

func (l *segmentLedger) check(f *Frame) {
	var sum uint32
	f.pieces(func(p []byte) { sum = crc32.Update(sum, castagnoli, p) })
	k := keyOfFrame(f)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checked.Add(1)
	want, ok := l.sums[k]
	switch {
	case !ok:
		l.bad = append(l.bad, fmt.Sprintf("%+v arrived but was never sent", k))
	case want != sum:
		l.bad = append(l.bad, fmt.Sprintf("%+v: sent crc %08x, received %08x (%d bytes)", k, want, sum, f.payloadLen()))
	}
}

func (l *segmentLedger) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bad...)
}

// checksumTransport wraps a real transport: its links record what is sent
// and check what is received in a shared ledger.
type checksumTransport struct {
	Transport
	l *segmentLedger
}

func (t checksumTransport) Dial(ctx context.Context, h LinkHello) (Conn, error) {
	c, err := t.Transport.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	return &checksumConn{Conn: c, l: t.l}, nil
}

func (t checksumTransport) Accept(ctx context.Context, h LinkHello) (Conn, error) {
	c, err := t.Transport.Accept(ctx, h)
	if err != nil {
		return nil, err
	}
	return &checksumConn{Conn: c, l: t.l}, nil
}

type checksumConn struct {
	Conn
	l *segmentLedger
}

// zeroCopy keeps the wrapped link's zero-copy sends, which are what the
// ledger checks.
func (c *checksumConn) zeroCopy() bool {
	zc, ok := c.Conn.(zeroCopyConn)
	return ok && zc.zeroCopy()
}

func (c *checksumConn) Send(f *Frame) error {
	if f.Kind == KindData {
		c.l.record(f)
	}
	return c.Conn.Send(f)
}

func (c *checksumConn) Recv(f *Frame) error {
	err := c.Conn.Recv(f)
	if err == nil && f.Kind == KindData {
		c.l.check(f)
	}
	return err
}

// Over the real gRPC transport, which sends views of the caller's buffer,
// every segment arrives with exactly the bytes its sender meant, across
// calls made back to back on the same buffers that the caller rewrites as
// soon as each call returns.
func TestGRPCSegmentsArriveAsSent(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("ranks-%d", n), func(t *testing.T) {
			trs, ms := grpcNodes(t, n, nil)
			ledger := newSegmentLedger()
			rings := formRing(t, ms, 1, func(c *Config) { c.SegmentBytes = 8192; c.Window = 4; c.Timeout = 10 * time.Second },
				func(i int) Transport { return checksumTransport{Transport: trs[i], l: ledger} })
			if _, ok := rings[0].out.(zeroCopyConn); !ok {
				t.Fatal("the wrapped gRPC link does not send zero-copy: the test would check nothing")
			}
			rng := rand.New(rand.NewPCG(uint64(n), 99))
			const maxLen = 60000
			bufs := make([][]float32, n)
			for i := range bufs {
				bufs[i] = make([]float32, maxLen)
			}
			for call := range 24 {
				l := []int{maxLen, 20000, 3*2048 + 7, 2048 * n, 513}[call%5]
				sum := make([]float64, l)
				in := make([][]float32, n)
				for r := range in {
					in[r] = bufs[r][:l] // the same memory every call
					for i := range in[r] {
						in[r][i] = float32(rng.NormFloat64())
						sum[i] += float64(in[r][i])
					}
				}
				_, errs := runAll(testCtx(t, 30*time.Second), rings, in, nil)
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("call %d: %v", call, err)
				}
				if bad := ledger.failures(); len(bad) > 0 {
					t.Fatalf("call %d: %d segments arrived with other bytes than sent, first: %s", call, len(bad), bad[0])
				}
				checkResult(t, in, sum, func(i int) float64 { return 1e-5 * float64(n) * (1 + math.Abs(sum[i])) })
				// The caller owns its buffer again: scribble on it at once,
				// as a trainer writing the next gradients would.
				for r := range in {
					for i := range in[r] {
						in[r][i] = float32(-call)
					}
				}
			}
			if ledger.checked.Load() == 0 {
				t.Fatal("no segment was checked")
			}
		})
	}
}
