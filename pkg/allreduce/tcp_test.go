package allreduce

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpNodes starts n loopback TCP transports, closed at cleanup.
func tcpNodes(t testing.TB, n int, m *Metrics) ([]*TCPTransport, []Member) {
	t.Helper()
	trs := make([]*TCPTransport, n)
	ms := make([]Member, n)
	for i := range trs {
		tr, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		trs[i] = tr
		ms[i] = Member{ID: members(n, "")[i].ID, Addr: tr.Addr()}
	}
	return trs, ms
}

func TestTCPConfigValidate(t *testing.T) {
	for _, c := range []TCPConfig{
		{Secret: testSecret},
		{ListenAddr: ":0", Secret: []byte("short")},
		{ListenAddr: ":0", Secret: testSecret, HelloTimeout: -1},
		{ListenAddr: ":0", Secret: testSecret, MaxPendingHellos: -1},
		{ListenAddr: ":0", Secret: testSecret, MaxPendingHellosPerSource: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
	}
}

// Random sizes, 1 to 8 ranks, plain and compressed: every rank ends with
// the sum, the same bytes on every rank.
func TestTCPAllReduce(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for n := 1; n <= 8; n++ {
		trs, ms := tcpNodes(t, n, nil)
		rings := formRing(t, ms, 1, func(c *Config) { c.SegmentBytes = 4096 }, func(i int) Transport { return trs[i] })
		for _, l := range []int{0, 1, n + 1, 999, 20000 + rng.IntN(5000)} {
			for _, comp := range []Compression{None, FP16} {
				bufs, sum := randomInputs(rng, n, l)
				_, errs := runAll(testCtx(t, 20*time.Second), rings, bufs, func(int) Options { return Options{Compression: comp} })
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("N=%d len=%d: %v", n, l, err)
				}
				tol := 1e-5
				if comp == FP16 {
					tol = float64(n+1) * math.Ldexp(1, -11) * 4
				}
				checkResult(t, bufs, sum, func(i int) float64 { return tol * float64(n) * (1 + math.Abs(sum[i])) })
			}
		}
	}
}

// After a rank's process dies, the others name it quickly and form a new
// generation over the same transports.
func TestTCPNewGenerationAfterPeerDeath(t *testing.T) {
	trs, ms := tcpNodes(t, 4, nil)
	checkNewGenerationAfterPeerDeath(t, asTransports(trs), ms, 20000)
	// A link of the superseded generation is refused now.
	_, err := trs[0].Dial(testCtx(t, 5*time.Second), LinkHello{Generation: 1, From: ms[0], To: ms[1]})
	if !errors.Is(err, errStaleGeneration) {
		t.Fatalf("stale dial: %v, want a stale-generation refusal", err)
	}
}

// rawHello is a hand-made hello, for dialers that are not a TCPTransport.
func rawHello(gen uint64, from, to, token string) []byte {
	b := append([]byte{}, tcpMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, gen)
	b = append(append(b, byte(len(from))), from...)
	b = append(append(b, byte(len(to))), to...)
	tok, _ := hex.DecodeString(token)
	return append(b, tok...)
}

// readAnswer reads a hello's answer from a raw connection.
func readAnswer(t *testing.T, c net.Conn) (byte, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var a [7]byte
	if _, err := io.ReadFull(br, a[:]); err != nil {
		t.Fatal(err)
	}
	if [4]byte(a[:4]) != tcpMagic {
		t.Fatalf("answer starts %q", a[:4])
	}
	r := make([]byte, binary.BigEndian.Uint16(a[5:]))
	if _, err := io.ReadFull(br, r); err != nil {
		t.Fatal(err)
	}
	return a[4], string(r)
}

// Dialers without the secret, and connections that are not ring links at
// all, are refused with a reason and counted; none reaches a ring.
func TestTCPRejectsStrangers(t *testing.T) {
	m := NewMetrics()
	_, ms := tcpNodes(t, 1, m)
	bad, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: []byte("not-the-cluster-secret")})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_, err = bad.Dial(testCtx(t, 5*time.Second), LinkHello{Generation: 1, From: Member{ID: "intruder"}, To: ms[0]})
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("dial with wrong secret: %v, want ErrUnauthenticated", err)
	}
	// A token for another edge does not open this one.
	c, err := net.Dial("tcp", ms[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(rawHello(1, "x", "w0", linkToken(testSecret, 1, "y", "w0")))
	if code, why := readAnswer(t, c); code != helloUnauthenticated || !strings.Contains(why, `"x"`) {
		t.Fatalf("replayed token: answer %d %q", code, why)
	}
	// Something that is not a ring link at all.
	c2, err := net.Dial("tcp", ms[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if code, why := readAnswer(t, c2); code != helloBad || !strings.Contains(why, "not a ring link") {
		t.Fatalf("http request: answer %d %q", code, why)
	}
	if s := m.Snapshot(); s.RejectedUnauthenticated != 2 {
		t.Fatalf("rejected unauthenticated = %d, want 2", s.RejectedUnauthenticated)
	}
}

// A hostile left neighbour with a valid hello sends what no Ring would:
// undecodable frames and a length above the limit. The victim's call
// fails with ErrProtocol naming that neighbour; nothing hangs.
func TestTCPGarbageAndOversizedFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"garbage", []byte{0, 0, 0, 5, 0xff, 0xff, 0xff, 0x01, 0x02}},
		{"oversized", binary.BigEndian.AppendUint32(nil, MaxFrameBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trs, ms := tcpNodes(t, 2, nil)
			ctx := testCtx(t, 30*time.Second)
			const gen = 1
			accepted := make(chan Conn, 1)
			go func() {
				c, err := trs[0].Accept(ctx, LinkHello{Generation: gen, From: ms[1], To: ms[0]})
				if err != nil {
					t.Error(err)
				}
				accepted <- c
			}()
			raw, err := net.Dial("tcp", ms[1].Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.Write(rawHello(gen, ms[0].ID, ms[1].ID, linkToken(testSecret, gen, ms[0].ID, ms[1].ID)))
			// A Timeout far above the time the bytes take to arrive: the
			// failure must come from them, not from the peer's silence.
			// (The bytes could arrive before the call started; the ring
			// then recorded the failure for that call but let it wait.)
			victim, err := New(ctx, Config{Rank: 1, Members: ms, Generation: gen, Timeout: 20 * time.Second}, trs[1])
			if err != nil {
				t.Fatal(err)
			}
			defer victim.Close()
			if c := <-accepted; c != nil {
				defer c.Close()
			}
			if code, why := readAnswer(t, raw); code != helloOK {
				t.Fatalf("hello refused: %d %q", code, why)
			}
			done := make(chan error, 1)
			go func() {
				_, err := victim.AllReduce(ctx, make([]float32, 1000), Options{})
				done <- err
			}()
			raw.Write(tc.msg)
			err = <-done
			var pe *PeerError
			if !errors.Is(err, ErrProtocol) || !errors.As(err, &pe) || pe.Rank != 0 || pe.Addr != ms[0].Addr {
				t.Fatalf("victim: %v, want ErrProtocol naming rank 0", err)
			}
		})
	}
}

// A link dialed before its peer listens is made once the peer is up.
func TestTCPDialWaitsForListener(t *testing.T) {
	trs, ms := tcpNodes(t, 1, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there for now
	late := Member{ID: "late", Addr: addr}
	got := make(chan error, 1)
	go func() {
		c, err := trs[0].Dial(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: late})
		if c != nil {
			c.Close()
		}
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	tr, err := NewTCPTransport(TCPConfig{ListenAddr: addr, Secret: testSecret})
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	defer tr.Close()
	go func() {
		if c, err := tr.Accept(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: late}); err == nil {
			c.Close()
		}
	}()
	if err := <-got; err != nil {
		t.Fatalf("dial before listen: %v", err)
	}
}

// A TCP dialer that reaches a gRPC ring transport is told so, not hung.
func TestTCPDialGRPCPeer(t *testing.T) {
	grpcs, ms := grpcNodes(t, 1, nil)
	_ = grpcs
	trs, _ := tcpNodes(t, 1, nil)
	_, err := trs[0].Dial(testCtx(t, 5*time.Second), LinkHello{Generation: 1, From: Member{ID: "w9"}, To: ms[0]})
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "not a TCP ring transport") {
		t.Fatalf("dial: %v", err)
	}
}

// A dialer that never finishes its hello is dropped after HelloTimeout.
func TestTCPHelloTimeout(t *testing.T) {
	tr, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, HelloTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(tcpMagic[:])
	code, why := readAnswer(t, c)
	if code != helloBad || !strings.Contains(why, "timeout") {
		t.Fatalf("answer %d %q, want a timeout refusal", code, why)
	}
	// A port probe (connect, hang up) is neither answered nor counted.
	m := NewMetrics()
	tr2, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, Metrics: m, HelloTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	for range 3 {
		p, err := net.Dial("tcp", tr2.Addr())
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	silent, err := net.Dial("tcp", tr2.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(300 * time.Millisecond)
	if s := m.Snapshot(); s.RejectedUnauthenticated+s.RejectedOther != 0 {
		t.Errorf("probes counted as refused links: %+v", s)
	}
}

// flakyListener fails its first Accept as a process out of file
// descriptors would.
type flakyListener struct {
	net.Listener
	failed bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// hangUpFirst closes the first connection it accepts before anything is
// read, as an admission listener evicting it would.
type hangUpFirst struct {
	net.Listener
	done bool
}

func (l *hangUpFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.done {
			return c, err
		}
		l.done = true
		c.Close()
	}
}

// A hello the peer closes without an answer is sent again.
func TestTCPDialRetriesUnansweredHello(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTCPTransport(TCPConfig{Listener: &hangUpFirst{Listener: lis}, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	trs, ms := tcpNodes(t, 1, nil)
	to := Member{ID: "evicting", Addr: tr.Addr()}
	go func() {
		if c, err := tr.Accept(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: to}); err == nil {
			c.Close()
		}
	}()
	c, err := trs[0].Dial(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: to})
	if err != nil {
		t.Fatalf("dial after an unanswered hello: %v", err)
	}
	c.Close()
}

// A failed Accept does not stop the transport from accepting links.
func TestTCPAcceptErrorIsNotFatal(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTCPTransport(TCPConfig{Listener: &flakyListener{Listener: lis}, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	trs, ms := tcpNodes(t, 1, nil)
	to := Member{ID: "flaky", Addr: tr.Addr()}
	go func() {
		if c, err := tr.Accept(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: to}); err == nil {
			c.Close()
		}
	}()
	c, err := trs[0].Dial(testCtx(t, 5*time.Second), LinkHello{Generation: 1, From: ms[0], To: to})
	if err != nil {
		t.Fatalf("dial after a failed accept: %v", err)
	}
	c.Close()
}

// Connections that never finish a hello hold at most
// MaxPendingHellosPerSource slots per address: each one beyond evicts the
// address's oldest, which is closed and counted, and a member's dial from
// the same address still gets through.
func TestTCPPendingHellosEvicted(t *testing.T) {
	m := NewMetrics()
	tr, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret, Metrics: m,
		HelloTimeout: 20 * time.Second, MaxPendingHellosPerSource: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 4 + 8 {
		c, err := net.Dial("tcp", tr.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("R")) // started, never finished
		conns = append(conns, c)
	}
	for i, c := range conns[:8] {
		if !serverClosed(c, 10*time.Second) {
			t.Fatalf("stranger %d still open beyond the per-address limit", i)
		}
	}
	for i, c := range conns[8:] {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("stranger %d of the newest 4: %v, want still pending", 8+i, err)
		}
	}
	if s := m.Snapshot(); s.HellosEvicted != 8 || s.RejectedOther != 0 {
		t.Fatalf("%+v, want 8 evicted", s)
	}
	// A member's dial from the same address evicts a stranger, not itself.
	trs, ms := tcpNodes(t, 1, nil)
	to := Member{ID: "target", Addr: tr.Addr()}
	go func() {
		if c, err := tr.Accept(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: to}); err == nil {
			c.Close()
		}
	}()
	c, err := trs[0].Dial(testCtx(t, 10*time.Second), LinkHello{Generation: 1, From: ms[0], To: to})
	if err != nil {
		t.Fatalf("member dial with the address's slots full: %v", err)
	}
	c.Close()
	if s := m.Snapshot(); s.HellosEvicted != 9 {
		t.Fatalf("%+v, want 9 evicted", s)
	}
}

// serverClosed reads c until the server closes it (EOF or reset), for at
// most wait; false if it does not.
func serverClosed(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		}
	}
}

// A rank whose own transport closes mid-call blames itself, whichever of
// its goroutines (send, receive, ack) notices first, never a neighbour.
func TestTCPLocalCloseBlamesSelf(t *testing.T) {
	for i := range 4 {
		trs, ms := tcpNodes(t, 3, nil)
		rings := formRing(t, ms, 1, func(c *Config) { c.Timeout = 5 * time.Second }, func(i int) Transport { return trs[i] })
		done := make(chan error, 1)
		go func() { // rank 0 alone enters a big call; its sends back up
			_, err := rings[0].AllReduce(testCtx(t, 10*time.Second), make([]float32, 4<<20), Options{})
			done <- err
		}()
		time.Sleep(time.Duration(50+50*i) * time.Millisecond)
		trs[0].Close()
		err := <-done
		var pe *PeerError
		// Its own ErrClosed, or a neighbour's abort naming rank 0.
		if !errors.As(err, &pe) || pe.Rank != 0 {
			t.Fatalf("run %d: rank 0 after closing its own transport: %v, want rank 0 blamed", i, err)
		}
	}
}

// Close does not wait for a connection stuck before its hello.
func TestTCPCloseDuringHello(t *testing.T) {
	tr, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(tcpMagic[:2]) // half a hello, then silence
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	tr.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v with a hello pending (HelloTimeout is %v)", d, DefaultHelloTimeout)
	}
}

// FuzzTCPHello feeds arbitrary bytes to the hello parser: it never panics
// and what it accepts re-encodes to the input's prefix.
func FuzzTCPHello(f *testing.F) {
	f.Add(rawHello(3, "w0", "w1", linkToken(testSecret, 3, "w0", "w1")))
	f.Add([]byte("RCR\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, tok, err := readHello(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		// What was parsed is exactly a prefix of the input; the rest
		// belongs to the stream.
		if len(tok) != 32 || !bytes.HasPrefix(b, rawHello(k.gen, k.from, k.to, hex.EncodeToString(tok))) {
			t.Fatalf("accepted %q as gen=%d from=%q to=%q token=%x", b, k.gen, k.from, k.to, tok)
		}
	})
}
