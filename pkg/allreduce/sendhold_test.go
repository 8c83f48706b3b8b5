package allreduce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lazyTransport wraps a MemTransport so that dialed links behave like
// gRPC's: Send queues the frame and returns, and a writer goroutine reads
// a tracked payload (Frame.tx) only later. After delivering a frame, the
// writer waits a little and reads the payload once more, as gRPC's writer
// may still be copying the tail of a message after the peer got its head:
// a payload the ring changed while the transport held it is reported.
type lazyTransport struct {
	*MemTransport
	held    atomic.Int64 // tracked payloads not yet released
	mu      sync.Mutex
	corrupt []string
}

func (l *lazyTransport) Dial(ctx context.Context, h LinkHello) (Conn, error) {
	c, err := l.MemTransport.Dial(ctx, h)
	if err != nil {
		return nil, err
	}
	lc := &lazyConn{Conn: c, tr: l, q: make(chan *Frame, 64), stop: make(chan struct{}), done: make(chan struct{})}
	go lc.writer()
	return lc, nil
}

// corrupted returns the reports so far.
func (l *lazyTransport) corrupted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.corrupt...)
}

func (l *lazyTransport) report(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.corrupt = append(l.corrupt, fmt.Sprintf(format, args...))
}

type lazyConn struct {
	Conn
	tr   *lazyTransport
	q    chan *Frame
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the writer exited
	once sync.Once
}

func (c *lazyConn) zeroCopy() bool { return true }

// Send queues f; a tracked payload is read later, others are copied now.
func (c *lazyConn) Send(f *Frame) error {
	g := *f
	if f.tx != nil {
		f.tx.Ref()
		c.tr.held.Add(1)
		g.Payload = f.tx.ReadOnlyData()
	} else {
		g.Payload = bytes.Clone(f.Payload)
	}
	select {
	case c.q <- &g:
		return nil
	case <-c.stop:
		c.release(&g)
		return errMemBroken
	}
}

// release drops the transport's reference to a tracked payload. The
// count goes down first: Free may be the release the ring waits for, and
// once it happened AllReduce may return and the test read the count.
func (c *lazyConn) release(f *Frame) {
	if f.tx != nil {
		c.tr.held.Add(-1)
		f.tx.Free()
	}
}

func (c *lazyConn) writer() {
	defer close(c.done)
	for {
		select {
		case f := <-c.q:
			sent := bytes.Clone(f.Payload)
			g := *f
			g.tx = nil
			err := c.Conn.Send(&g)
			if f.tx != nil {
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				if !bytes.Equal(f.Payload, sent) {
					c.tr.report("slot %d of call %d changed while the transport held it", f.Slot, f.Call)
				}
			}
			c.release(f)
			if err != nil {
				c.drain()
				return
			}
		case <-c.stop:
			c.drain()
			return
		}
	}
}

// drain drops queued frames, releasing their payloads (as gRPC does when
// a stream ends).
func (c *lazyConn) drain() {
	for {
		select {
		case f := <-c.q:
			c.release(f)
		default:
			return
		}
	}
}

// Close stops the writer and returns once it has exited, as closing a
// gRPC connection waits for its writer.
func (c *lazyConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	err := c.Conn.Close()
	<-c.done
	c.drain()
	return err
}

func lazyRing(t *testing.T, n int, tune func(*Config)) ([]*Ring, []*lazyTransport, *MemNetwork) {
	net := NewMemNetwork()
	t.Cleanup(func() { net.Close() })
	ms := members(n, "lazy")
	trs := make([]*lazyTransport, n)
	for i := range trs {
		trs[i] = &lazyTransport{MemTransport: net.Node(ms[i].Addr)}
	}
	return formRing(t, ms, 1, tune, func(i int) Transport { return trs[i] }), trs, net
}

// The ring sends views of the caller's buffer without copying: no
// element may change while the transport holds it, and AllReduce
// returns only once the transport released everything.
func TestZeroCopyPayloadsAreNotModifiedWhileHeld(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("ranks-%d", n), func(t *testing.T) {
			rings, trs, _ := lazyRing(t, n, func(c *Config) { c.SegmentBytes = 4096; c.Window = 3 })
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			for call := range 4 {
				l := []int{20000, 1025 * n, 300, 0}[call]
				bufs, sum := randomInputs(rng, n, l)
				_, errs := runAll(testCtx(t, 20*time.Second), rings, bufs, func(int) Options { return Options{Op: Mean} })
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				for i, tr := range trs {
					if h := tr.held.Load(); h != 0 {
						t.Fatalf("call %d: rank %d's transport still holds %d payloads after AllReduce returned", call, i, h)
					}
					if c := tr.corrupted(); len(c) > 0 {
						t.Fatalf("call %d: rank %d: %v", call, i, c)
					}
				}
				for i := range sum {
					sum[i] /= float64(n)
				}
				checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * (1 + math.Abs(sum[i])) })
			}
		})
	}
}

// A failed call returns only once its transport reads the caller's buffer
// no more, even when the link is stuck with payloads queued.
func TestZeroCopyFailedCallReleasesBuffer(t *testing.T) {
	const n = 3
	rings, trs, net := lazyRing(t, n, func(c *Config) { c.SegmentBytes = 4096; c.Timeout = time.Second })
	net.SetDelay("lazy-0", "lazy-1", time.Hour) // rank 0's writer stalls on its first frame
	bufs, _ := randomInputs(rand.New(rand.NewPCG(5, 6)), n, 30000)
	_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	for r, err := range errs {
		if err == nil {
			t.Fatalf("rank %d succeeded through a stalled link", r)
		}
	}
	if h := trs[0].held.Load(); h != 0 {
		t.Fatalf("rank 0's transport still holds %d payloads after the failed call returned", h)
	}
	for i := range bufs[0] {
		bufs[0][i] = -1 // the caller owns its buffer again
	}
}

func TestSendHoldsWaitsForRelease(t *testing.T) {
	h := newSendHolds()
	p := make([]byte, 4096)
	b := h.wrap(p, 3)
	if h.wait(3, nil, time.Millisecond) || h.wait(-1, nil, time.Millisecond) {
		t.Fatal("wait returned while slot 3 is held")
	}
	if !h.wait(2, nil, 0) {
		t.Fatal("slot 2 was never held")
	}
	b.Ref()
	b.Free()
	if held, _ := h.holding(3); !held {
		t.Fatal("released with a reference left")
	}
	go b.Free()
	if !h.wait(3, nil, 5*time.Second) || !h.wait(-1, nil, 0) {
		t.Fatal("release not seen")
	}
	stop := make(chan struct{})
	close(stop)
	h.wrap(p, 4)
	if h.wait(4, stop, 0) {
		t.Fatal("wait ignored stop")
	}
}
