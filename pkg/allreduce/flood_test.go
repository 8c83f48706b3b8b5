package allreduce

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/testenv"
)

// What each wave of a flood opens to every rank's ring port: idle
// connections (half of them silent, half stopping after the protocol's
// opening: part of a hello, or an HTTP/2 preface) and connections that
// send random bytes.
const (
	floodIdle    = 1000
	floodGarbage = 1000
	floodRanks   = 3
)

// floodTransport starts a transport of the kind under test with the
// given HelloTimeout and default admission limits.
type floodTransport func(t *testing.T, m *Metrics, helloTimeout time.Duration) (closingTransport, string)

func tcpFloodTransport(t *testing.T, m *Metrics, helloTimeout time.Duration) (closingTransport, string) {
	tr, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, Metrics: m, HelloTimeout: helloTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, tr.Addr()
}

func grpcFloodTransport(t *testing.T, m *Metrics, helloTimeout time.Duration) (closingTransport, string) {
	tr, err := NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, Metrics: m, HelloTimeout: helloTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, tr.Addr()
}

// The idle connections that speak a little: the start of a hello, and an
// HTTP/2 client preface with an empty SETTINGS frame (a gRPC server then
// holds a whole HTTP/2 transport for the connection).
var (
	tcpOpening   = append(tcpMagic[:], 0, 0, 0)
	http2Opening = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
)

// Strangers without the key hold 1,000 idle and 1,000 garbage connections
// to every rank's ring port, twice, and churn through new connections
// from many addresses meanwhile: the ring still forms, re-forms with every
// rank's left neighbour changed, and reduces correctly, and each port
// keeps at most MaxPendingHellos strangers' connections open. The hello
// deadline is an hour here: only the admission limits close connections.
func TestTCPFloodOfStrangers(t *testing.T) { testFlood(t, tcpFloodTransport, tcpOpening) }

// TestGRPCFloodOfStrangers is TestTCPFloodOfStrangers for the gRPC
// transport; a quarter of its connections are HTTP/2 connections without
// a stream.
func TestGRPCFloodOfStrangers(t *testing.T) { testFlood(t, grpcFloodTransport, http2Opening) }

func testFlood(t *testing.T, newTransport floodTransport, opening []byte) {
	testenv.RaiseFileLimit(t, floodRanks*(floodIdle+floodGarbage)*2+2000)
	const maxPending = DefaultMaxPendingHellos
	trs := make([]closingTransport, floodRanks)
	ms := make([]Member, floodRanks)
	metrics := make([]*Metrics, floodRanks)
	for i := range trs {
		metrics[i] = NewMetrics()
		tr, addr := newTransport(t, metrics[i], time.Hour)
		trs[i], ms[i] = tr, Member{ID: fmt.Sprintf("w%d", i), Addr: addr}
	}
	floods := make([]*flooder, floodRanks)
	for i := range floods {
		floods[i] = newFlooder(t, ms[i].Addr, opening, uint64(i))
	}
	defer func() {
		for _, f := range floods {
			f.stop()
		}
	}()
	wave := func() {
		var wg sync.WaitGroup
		for _, f := range floods {
			wg.Go(f.wave)
		}
		wg.Wait()
		for i, f := range floods { // the server closed all but its pending set
			eventually(t, 30*time.Second, func() bool { return f.open.Load() <= maxPending },
				func() string {
					return fmt.Sprintf("rank %d holds %d strangers' connections open, limit %d", i, f.open.Load(), maxPending)
				})
		}
	}
	rng := rand.New(rand.NewPCG(31, 32))

	wave()
	stopChurn := churn(floods, maxPending)
	rings := formFloodRing(t, ms, 1, trs)
	floodReduce(t, rings, rng)
	stopChurn()

	// Re-form with the ring reversed: every rank accepts a new neighbour.
	wave()
	stopChurn = churn(floods, maxPending)
	for _, r := range rings {
		r.Close()
	}
	rev := make([]Member, floodRanks)
	revTrs := make([]closingTransport, floodRanks)
	for i := range rev {
		rev[i], revTrs[i] = ms[floodRanks-1-i], trs[floodRanks-1-i]
	}
	rings = formFloodRing(t, rev, 2, revTrs)
	floodReduce(t, rings, rng)
	stopChurn()

	for i, f := range floods {
		eventually(t, 30*time.Second, func() bool { return f.open.Load() <= maxPending },
			func() string {
				return fmt.Sprintf("rank %d holds %d strangers' connections open, limit %d", i, f.open.Load(), maxPending)
			})
		s := metrics[i].Snapshot()
		if s.HellosEvicted == 0 || s.HellosTimedOut != 0 {
			t.Errorf("rank %d: %+v, want evictions and no timeouts", i, s)
		}
		t.Logf("rank %d: %d connections from strangers, %d open; %+v", i, f.dialed.Load(), f.open.Load(), s)
	}
}

// The strangers' connections that no newer one evicted are closed at the
// hello deadline: the client reads EOF (or a reset).
func TestTCPStrangersClosedAtHelloDeadline(t *testing.T) {
	testClosedAtDeadline(t, tcpFloodTransport, tcpOpening)
}

// TestGRPCStrangersClosedAtHelloDeadline is
// TestTCPStrangersClosedAtHelloDeadline for the gRPC transport.
func TestGRPCStrangersClosedAtHelloDeadline(t *testing.T) {
	testClosedAtDeadline(t, grpcFloodTransport, http2Opening)
}

func testClosedAtDeadline(t *testing.T, newTransport floodTransport, opening []byte) {
	testenv.RaiseFileLimit(t, (floodIdle+floodGarbage)*2+1000)
	m := NewMetrics()
	_, addr := newTransport(t, m, 500*time.Millisecond)
	f := newFlooder(t, addr, opening, 7)
	defer f.stop()
	f.wave()
	eventually(t, 60*time.Second, func() bool { return f.open.Load() == 0 },
		func() string {
			return fmt.Sprintf("%d of %d strangers' connections still open", f.open.Load(), f.dialed.Load())
		})
	// The last connections of the wave are idle ones no newer connection
	// evicted: only the deadline closed them.
	if s := m.Snapshot(); s.HellosTimedOut == 0 {
		t.Fatalf("no connection closed at the deadline: %+v", s)
	}
}

// formFloodRing forms a ring over trs with generous timeouts: the flood
// competes for two CPUs with the ring, under the race detector.
func formFloodRing(t *testing.T, ms []Member, gen uint64, trs []closingTransport) []*Ring {
	t.Helper()
	rings := make([]*Ring, len(ms))
	errs := make([]error, len(ms))
	ctx := testCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() {
			rings[i], errs[i] = New(ctx, Config{Rank: i, Members: ms, Generation: gen, Timeout: 20 * time.Second, SegmentBytes: 4096}, trs[i])
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, r := range rings {
			if r != nil {
				r.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("generation %d: %v", gen, err)
	}
	return rings
}

// floodReduce runs two AllReduce calls and checks their results.
func floodReduce(t *testing.T, rings []*Ring, rng *rand.Rand) {
	t.Helper()
	for range 2 {
		bufs, sum := randomInputs(rng, len(rings), 30000)
		if _, errs := runAll(testCtx(t, 60*time.Second), rings, bufs, nil); errors.Join(errs...) != nil {
			t.Fatalf("generation %d: %v", rings[0].Generation(), errors.Join(errs...))
		}
		checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * float64(len(rings)) * (1 + math.Abs(sum[i])) })
	}
}

// churn keeps opening idle connections to every flooder's address from
// ever new source addresses until the returned stop is called: each one
// evicts the oldest pending stranger, so the pending set cycles while
// the ring forms. Members' connections come from 127.0.0.1, an expected
// neighbour's address, which this churn cannot evict. churn returns once
// it has opened n connections to each address.
func churn(floods []*flooder, n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var started sync.WaitGroup
	for _, f := range floods {
		started.Add(1)
		wg.Go(func() {
			for i := 0; ; i++ {
				if i == n {
					started.Done()
				}
				select {
				case <-done:
					return
				case <-time.After(2 * time.Millisecond):
				}
				f.open1(f.source(2*i+1), nil)
			}
		})
	}
	started.Wait()
	return func() {
		close(done)
		wg.Wait()
	}
}

// flooder opens strangers' connections to one address and holds each
// until the server closes it.
type flooder struct {
	t       *testing.T
	addr    string
	opening []byte
	rng     *rand.Rand
	many    bool // whether 127.0.0.2-201 can be used as source addresses

	dialed atomic.Int64
	open   atomic.Int64 // connections the server has not closed

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
	wg      sync.WaitGroup
}

func newFlooder(t *testing.T, addr string, opening []byte, seed uint64) *flooder {
	f := &flooder{t: t, addr: addr, opening: opening, rng: rand.New(rand.NewPCG(seed, 99)), conns: map[net.Conn]struct{}{}}
	// Loopback answers on all of 127/8 on Linux; elsewhere only
	// 127.0.0.1 may exist.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	if c, err := d.Dial("tcp", addr); err == nil {
		c.Close()
		f.many = true
	}
	return f
}

// source is the address connection i comes from: half from 127.0.0.1
// (the members' own), the rest spread over 200 other addresses, each
// below the per-address limit.
func (f *flooder) source(i int) net.Addr {
	if i%2 == 0 || !f.many {
		return nil
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+(i/2)%200))}
}

// wave opens floodGarbage garbage connections, then floodIdle idle ones.
func (f *flooder) wave() {
	for i := range floodIdle + floodGarbage {
		var send []byte
		switch {
		case i < floodGarbage:
			send = make([]byte, 1+f.rng.IntN(64))
			for j := range send {
				send[j] = byte(f.rng.Uint32())
			}
			send[0] |= 0x80 // never the start of a hello or a preface
		case i%4 == 1 || i%4 == 2: // half the idle ones, from both kinds of source
			send = f.opening
		}
		f.open1(f.source(i), send)
	}
}

// open1 dials from src, sends send and holds the connection until the
// server closes it.
func (f *flooder) open1(src net.Addr, send []byte) {
	d := net.Dialer{LocalAddr: src, Timeout: 30 * time.Second}
	c, err := d.Dial("tcp", f.addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return // closed by the server before connect returned
	}
	if err != nil {
		f.t.Errorf("flood: dial %s: %v", f.addr, err)
		return
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		c.Close()
		return
	}
	f.conns[c] = struct{}{}
	f.dialed.Add(1)
	f.open.Add(1)
	f.wg.Add(1)
	f.mu.Unlock()
	if len(send) > 0 {
		c.Write(send) // may fail: the server can close at once
	}
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 256)
		var err error
		for err == nil {
			_, err = c.Read(buf)
		}
		f.mu.Lock()
		byServer := !f.stopped
		delete(f.conns, c)
		f.mu.Unlock()
		if byServer {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				f.t.Errorf("flood connection ended with %v, want EOF or a reset from the server", err)
			}
			f.open.Add(-1)
		}
		c.Close()
	}()
}

// stop closes the connections still open and waits for their readers.
func (f *flooder) stop() {
	f.mu.Lock()
	f.stopped = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// eventually polls cond until it holds or wait passes, then fails with
// msg.
func eventually(t *testing.T, wait time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
