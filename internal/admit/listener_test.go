package admit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpAddr names a remote address as a TCP listener would report it.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// addrConn is one end of a net.Pipe with a chosen remote address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// pipeListener accepts the connections a test pushes into it.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn, 16), done: make(chan struct{})}
}

func (p *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.ch:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeListener) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeListener) Addr() net.Addr { return tcpAddr("127.0.0.1:1") }

// harness is a Listener over a pipeListener.
type harness struct {
	t      *testing.T
	pl     *pipeListener
	l      *Listener
	closes map[Reason]*atomic.Int64
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, pl: newPipeListener(), closes: map[Reason]*atomic.Int64{Evicted: {}, Refused: {}, TimedOut: {}}}
	cfg.OnClose = func(r Reason) { h.closes[r].Add(1) }
	l, err := NewListener(h.pl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.l = l
	t.Cleanup(func() { l.Close() })
	return h
}

// push offers a connection from remote without accepting it; the client
// end is returned and closed at cleanup.
func (h *harness) push(remote string) net.Conn {
	server, client := net.Pipe()
	h.t.Cleanup(func() { client.Close(); server.Close() })
	h.pl.ch <- addrConn{Conn: server, remote: tcpAddr(remote)}
	return client
}

// accept connects from remote and returns the accepted (pending) server
// end and the client end.
func (h *harness) accept(remote string) (*Conn, net.Conn) {
	h.t.Helper()
	client := h.push(remote)
	c, err := h.l.Accept()
	if err != nil {
		h.t.Fatal(err)
	}
	return c.(*Conn), client
}

// closedByServer reports whether the server closed the client's
// connection (the client reads EOF), waiting up to wait for it.
func closedByServer(client net.Conn, wait time.Duration) bool {
	client.SetReadDeadline(time.Now().Add(wait))
	_, err := client.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

// stillOpen reports whether the server end is open: a short read times
// out instead of seeing EOF.
func stillOpen(client net.Conn) bool {
	client.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	_, err := client.Read(make([]byte, 1))
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func TestConfigValidate(t *testing.T) {
	var zero Config
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	zero.EnsureDefaults()
	if zero.Timeout != DefaultTimeout || zero.MaxPending != DefaultMaxPending || zero.MaxPendingPerSource != DefaultMaxPendingPerSource ||
		zero.MaxConcurrentStreams != DefaultMaxConcurrentStreams || zero.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Fatalf("defaults: %+v", zero)
	}
	for _, c := range []Config{{Timeout: -1}, {MaxPending: -1}, {MaxPendingPerSource: -2}, {MaxHeaderBytes: 100}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", c, err)
		}
		if _, err := NewListener(newPipeListener(), c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewListener(%+v): %v, want ErrInvalidConfig", c, err)
		}
	}
}

// One source beyond its share evicts its own oldest connection, not
// another source's.
func TestEvictsOldestOfSource(t *testing.T) {
	h := newHarness(t, Config{MaxPending: 10, MaxPendingPerSource: 2, Timeout: time.Hour})
	_, other := h.accept("10.0.0.9:1")
	_, c1 := h.accept("10.0.0.1:1")
	_, c2 := h.accept("10.0.0.1:2")
	_, c3 := h.accept("10.0.0.1:3")
	if !closedByServer(c1, time.Second) {
		t.Fatal("oldest connection of the source still open")
	}
	for i, c := range []net.Conn{other, c2, c3} {
		if !stillOpen(c) {
			t.Fatalf("connection %d closed", i)
		}
	}
	if s := h.l.Stats(); s.Pending != 3 || s.Evicted != 1 || s.Accepted != 4 || h.closes[Evicted].Load() != 1 {
		t.Fatalf("stats %+v, OnClose(Evicted) %d", s, h.closes[Evicted].Load())
	}
}

// A full set evicts its oldest connection; an IPv6 /64 is one source.
func TestEvictsOldestWhenFull(t *testing.T) {
	h := newHarness(t, Config{MaxPending: 3, MaxPendingPerSource: 2, Timeout: time.Hour})
	_, a := h.accept("10.0.0.1:1")
	_, b := h.accept("[2001:db8::1]:1")
	_, c := h.accept("[2001:db8::2]:1") // same /64 as b: its share is full
	_, d := h.accept("10.0.0.2:1")      // set full: a, the oldest, goes
	if !closedByServer(a, time.Second) {
		t.Fatal("oldest connection still open")
	}
	_, e := h.accept("[2001:db8::3]:1") // the /64's share is full: b goes
	if !closedByServer(b, time.Second) {
		t.Fatal("oldest connection of the /64 still open")
	}
	for _, x := range []net.Conn{c, d, e} {
		if !stillOpen(x) {
			t.Fatal("newer connection closed")
		}
	}
	if s := h.l.Stats(); s.Pending != 3 || s.Evicted != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A flood from many addresses cycles through the set without touching
// the connection from a preferred source, which is then admitted.
func TestPreferredSurvivesFloodFromManySources(t *testing.T) {
	h := newHarness(t, Config{MaxPending: 4, Timeout: time.Hour})
	h.l.SetPreferred(netip.MustParseAddr("10.0.0.1"))
	member, mc := h.accept("10.0.0.1:5000")
	const flood = 100
	clients := make([]net.Conn, flood)
	for i := range flood {
		_, clients[i] = h.accept(fmt.Sprintf("10.1.%d.%d:1", i/250, i%250))
	}
	if !stillOpen(mc) {
		t.Fatal("member's connection closed by the flood")
	}
	if !h.l.Admit(member) {
		t.Fatal("member not admitted")
	}
	for i, c := range clients[:flood-3] {
		if !closedByServer(c, time.Second) {
			t.Fatalf("flood connection %d still open", i)
		}
	}
	if s := h.l.Stats(); s.Pending != 3 || s.Evicted != flood-3 || s.Admitted != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// When every pending connection is from a preferred source, a stranger is
// refused and a preferred newcomer evicts the oldest.
func TestRefusedWhenFullOfPreferred(t *testing.T) {
	h := newHarness(t, Config{MaxPending: 2, Timeout: time.Hour})
	h.l.SetPreferred(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.2"))
	_, a := h.accept("10.0.0.1:1")
	_, b := h.accept("10.0.0.2:1")
	stranger := h.push("10.9.9.9:1")
	_, c := h.accept("10.0.0.2:2") // returned after the stranger is refused
	if !closedByServer(stranger, time.Second) || !closedByServer(a, time.Second) {
		t.Fatal("stranger or oldest preferred connection still open")
	}
	if !stillOpen(b) || !stillOpen(c) {
		t.Fatal("newer preferred connection closed")
	}
	if s := h.l.Stats(); s.Refused != 1 || s.Evicted != 1 || h.closes[Refused].Load() != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A connection not admitted within Timeout is closed; an admitted one is
// not, and a late Admit reports the loss.
func TestTimeout(t *testing.T) {
	h := newHarness(t, Config{Timeout: 50 * time.Millisecond})
	slow, sc := h.accept("10.0.0.1:1")
	fast, fc := h.accept("10.0.0.1:2")
	if !h.l.Admit(fast) || !h.l.Admit(fast) {
		t.Fatal("admit failed")
	}
	if !closedByServer(sc, 10*time.Second) {
		t.Fatal("unauthenticated connection not closed")
	}
	if h.l.Admit(slow) {
		t.Fatal("admitted a connection closed at its deadline")
	}
	time.Sleep(100 * time.Millisecond) // past fast's deadline too
	if !stillOpen(fc) {
		t.Fatal("admitted connection closed")
	}
	if s := h.l.Stats(); s.TimedOut != 1 || s.Admitted != 1 || s.Pending != 0 || h.closes[TimedOut].Load() != 1 {
		t.Fatalf("stats %+v", s)
	}
	fast.Close()
}

// Closing a pending connection frees its slot; closing the listener
// closes every pending connection and later Accepts fail.
func TestCloseReleases(t *testing.T) {
	h := newHarness(t, Config{MaxPending: 2, Timeout: time.Hour})
	a, _ := h.accept("10.0.0.1:1")
	_, bc := h.accept("10.0.0.2:1")
	a.Close()
	if s := h.l.Stats(); s.Pending != 1 {
		t.Fatalf("pending %d after a Close, want 1", s.Pending)
	}
	_, cc := h.accept("10.0.0.3:1")
	if !stillOpen(bc) {
		t.Fatal("evicted although a slot was free")
	}
	h.l.Close()
	if !closedByServer(bc, time.Second) || !closedByServer(cc, time.Second) {
		t.Fatal("pending connections survive the listener")
	}
	if _, err := h.l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	// A connection of another listener, or none, is not admitted.
	if h.l.Admit(addrConn{}) {
		t.Fatal("admitted a foreign connection")
	}
}

// Addresses that are not IPs (in-memory listeners) have no per-source
// limit, only the total one.
func TestNonIPSources(t *testing.T) {
	h := newHarness(t, Config{MaxPending: 3, MaxPendingPerSource: 1, Timeout: time.Hour})
	var clients []net.Conn
	for range 4 {
		_, c := h.accept("pipe")
		clients = append(clients, c)
	}
	if !closedByServer(clients[0], time.Second) {
		t.Fatal("oldest still open")
	}
	for _, c := range clients[1:] {
		if !stillOpen(c) {
			t.Fatal("per-source limit applied to a non-IP address")
		}
	}
}
