package allreduce

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recur-ml/recur/internal/admit"
)

// TCPConfig configures a TCPTransport.
type TCPConfig struct {
	// Listener to serve on; if nil, ListenAddr is listened on.
	Listener net.Listener
	// ListenAddr is used when Listener is nil, e.g. ":7070" or "127.0.0.1:0".
	ListenAddr string
	// Secret is the cluster secret (at least 16 bytes) shared by every
	// worker; a link whose hello does not verify is refused. It
	// authenticates, it does not encrypt.
	Secret []byte
	// Metrics counts refused and dropped links (nil: not counted).
	Metrics *Metrics
	// ServerHandshake and ClientHandshake, when set, secure every link
	// before its hello (e.g. mutual TLS): the server's runs on each
	// accepted connection within HelloTimeout, the client's on each dialed
	// one, and each returns the connection to use. nil: plaintext. Every
	// member must use the same kind.
	ServerHandshake, ClientHandshake func(ctx context.Context, c net.Conn) (net.Conn, error)
	// HelloTimeout bounds an incoming connection's hello (default
	// DefaultHelloTimeout): a connection that has not sent a complete
	// hello by then is closed (with a reason when it sent part of one).
	HelloTimeout time.Duration
	// MaxPendingHellos bounds incoming connections still in their hello
	// (default DefaultMaxPendingHellos). When full, the oldest is closed
	// to make room, unless it comes from an expected neighbour's address.
	MaxPendingHellos int
	// MaxPendingHellosPerSource bounds those from one IP address (default
	// DefaultMaxPendingHellosPerSource); beyond it, that address's oldest
	// is closed to make room.
	MaxPendingHellosPerSource int
}

// EnsureDefaults fills zero fields with their documented defaults.
func (c *TCPConfig) EnsureDefaults() {
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.MaxPendingHellos == 0 {
		c.MaxPendingHellos = DefaultMaxPendingHellos
	}
	if c.MaxPendingHellosPerSource == 0 {
		c.MaxPendingHellosPerSource = DefaultMaxPendingHellosPerSource
	}
}

// Validate reports a problem with c.
func (c *TCPConfig) Validate() error {
	switch {
	case c.Listener == nil && c.ListenAddr == "":
		return fmt.Errorf("%w: neither Listener nor ListenAddr", ErrInvalidConfig)
	case len(c.Secret) < minSecretBytes:
		return fmt.Errorf("%w: cluster secret of %d bytes, need at least %d", ErrInvalidConfig, len(c.Secret), minSecretBytes)
	}
	return validateAdmission(c.HelloTimeout, c.MaxPendingHellos, c.MaxPendingHellosPerSource)
}

// TCPTransport carries ring links over plain TCP connections, one per
// link: the same frames as the gRPC transport (the protobuf encoding of
// ringpb.Frame), each preceded by its 4-byte length instead of HTTP/2
// framing. Sends go to the socket straight from the caller's buffer in one
// writev; receives land in the frame's reusable buffer, one kernel copy.
// gRPC's transport costs two more memory passes per byte (its write and
// read buffers) because its HTTP/2 frames are fixed at 16 KiB; on a
// CPU-bound ring (loopback, many ranks per core) that is about a third of
// the call's CPU.
//
// A link opens with a hello (magic and version, generation, both member ids and an
// HMAC-SHA256 token under the cluster secret, bound to that generation and
// directed edge, as the gRPC transport's metadata); the accepting side
// answers with the magic, a status byte and a reason, so a refused dialer learns why.
//
// Incoming connections are admitted as internal/admit describes: until
// its hello verifies, a connection holds one of MaxPendingHellos slots
// (MaxPendingHellosPerSource per address) for at most HelloTimeout, and a
// new connection evicts the oldest pending one rather than being refused,
// so strangers can only cycle through the slots while a member's hello,
// complete within milliseconds, gets through; the dialer retries a hello
// that went unanswered.
type TCPTransport struct {
	cfg      TCPConfig
	lis      *admit.Listener
	expected *expectedPeers
	reg      *linkRegistry

	mu     sync.Mutex
	conns  map[*tcpConn]struct{} // every live link, closed by Close
	closed bool
	wg     sync.WaitGroup
}

// tcpMagic opens every hello: protocol name and version.
var tcpMagic = [4]byte{'R', 'C', 'R', 1}

// Hello answers.
const (
	helloOK byte = iota
	helloUnauthenticated
	helloStale
	helloBad
	helloClosed
)

// maxHelloID bounds member ids in a hello.
const maxHelloID = 255

// helloAnswerGrace is added to HelloTimeout for the admission listener's
// own deadline: the time given to answer a hello that timed out.
const helloAnswerGrace = 2 * time.Second

// NewTCPTransport listens and accepts links in the background.
func NewTCPTransport(cfg TCPConfig) (*TCPTransport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	raw, err := listen(cfg.Listener, cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	lis, err := admission{timeout: cfg.HelloTimeout, grace: helloAnswerGrace, maxPending: cfg.MaxPendingHellos,
		perSource: cfg.MaxPendingHellosPerSource, metrics: cfg.Metrics}.listener(raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	t := &TCPTransport{cfg: cfg, lis: lis, expected: newExpectedPeers(lis), reg: newLinkRegistry(), conns: map[*tcpConn]struct{}{}}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the address the transport listens on.
func (t *TCPTransport) Addr() string { return t.lis.Addr().String() }

// Close stops listening and breaks every link.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	t.lis.Close() // and the connections still in their hello: admit gives up at once
	t.reg.close()
	for c := range conns {
		c.Close()
	}
	t.wg.Wait()
	return nil
}

// track registers a live link; it reports false once the transport closed.
func (t *TCPTransport) track(c *tcpConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	c.untrack = func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
	}
	return true
}

func (t *TCPTransport) acceptLoop() {
	defer t.wg.Done()
	var wait time.Duration
	for {
		nc, err := t.lis.Accept()
		if err != nil {
			t.mu.Lock()
			closed := t.closed
			t.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait, then go on accepting
			// (the dialers retry) rather than go deaf for good.
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			time.Sleep(wait)
			continue
		}
		wait = 0
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			nc.Close()
			return
		}
		// One goroutine per pending connection: the admission listener
		// bounds them, closing the oldest to make room.
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			t.admit(nc.(*admit.Conn))
		}()
	}
}

// admit reads and checks an incoming link's hello and hands the link to
// the registry. Until the token verifies, ac is pending in the admission
// listener, which may close it to make room.
func (t *TCPTransport) admit(ac *admit.Conn) {
	setNoDelay(ac.NetConn())
	deadline := time.Now().Add(t.cfg.HelloTimeout)
	ac.SetDeadline(deadline)
	// conn is the link: the admission's connection, or the secure channel
	// over it.
	var conn net.Conn = ac
	if t.cfg.ServerHandshake != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		sc, err := t.cfg.ServerHandshake(ctx, ac)
		cancel()
		if err != nil { // counted and named by the handshake
			t.cfg.Metrics.rejectedStream(true)
			ac.Close()
			return
		}
		conn = sc
	}
	// The hello is read straight from the connection (a dialer sends
	// nothing more before the answer): no read buffer for unauthenticated
	// peers.
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		// Closed or silent without a byte: a port probe (readiness
		// checks connect and hang up) or a stranger, not a peer to
		// answer. Silence is counted; a close by the admission listener
		// was counted by it.
		if isTimeout(err) {
			t.cfg.Metrics.droppedHello(true)
		}
		ac.Close()
		return
	}
	k, token, err := readHello(io.MultiReader(bytes.NewReader(first[:]), conn))
	answer := func(code byte, err error) {
		ac.SetDeadline(time.Now().Add(time.Second)) // the hello's may be spent
		writeAnswer(conn, code, err.Error())
		conn.Close()
	}
	refuse := func(code byte, unauth bool, err error) {
		t.cfg.Metrics.rejectedStream(unauth)
		answer(code, err)
	}
	switch {
	case errors.Is(err, net.ErrClosed): // evicted, counted by the listener
		ac.Close()
		return
	case isTimeout(err): // part of a hello: tell a slow peer why
		t.cfg.Metrics.droppedHello(true)
		answer(helloBad, err)
		return
	case err != nil:
		refuse(helloBad, false, err)
		return
	}
	want := linkToken(t.cfg.Secret, k.gen, k.from, k.to)
	if got := hex.EncodeToString(token); !hmac.Equal([]byte(got), []byte(want)) {
		refuse(helloUnauthenticated, true, fmt.Errorf("%w: cluster token of %q for generation %d does not verify", ErrUnauthenticated, k.from, k.gen))
		return
	}
	if !t.lis.Admit(ac) { // evicted or timed out meanwhile
		ac.Close()
		return
	}
	nc := ac.NetConn() // admitted: the ring's I/O goes to the socket itself...
	if conn != net.Conn(ac) {
		nc = conn // ...or to the secure channel
	}
	if err := t.reg.checkGen(k.gen); err != nil {
		code := helloStale
		if errors.Is(err, ErrClosed) {
			code = helloClosed
		}
		refuse(code, false, err)
		return
	}
	if err := writeAnswer(nc, helloOK, ""); err != nil {
		nc.Close()
		return
	}
	nc.SetDeadline(time.Time{})
	c := newTCPConn(nc, bufio.NewReaderSize(nc, tcpReadBuffer))
	if !t.track(c) {
		c.Close()
		return
	}
	if err := t.reg.offer(k, c); err != nil {
		c.Close()
	}
}

// Dial implements Transport. A hello the peer closes without answering is
// retried (50 ms doubling to 1 s apart) until ctx ends: the peer's
// admission may have evicted it to make room in a flood of strangers.
func (t *TCPTransport) Dial(ctx context.Context, h LinkHello) (Conn, error) {
	if len(h.From.ID) > maxHelloID || len(h.To.ID) > maxHelloID {
		return nil, fmt.Errorf("%w: member id longer than %d bytes", ErrInvalidConfig, maxHelloID)
	}
	wait := 50 * time.Millisecond
	for {
		c, err := t.dialOnce(ctx, h)
		if err == nil || !errors.Is(err, errNoAnswer) || ctx.Err() != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// errNoAnswer marks a hello the peer closed without answering.
var errNoAnswer = errors.New("no answer to hello")

// dialOnce connects (retrying until the peer listens) and sends one hello.
func (t *TCPTransport) dialOnce(ctx context.Context, h LinkHello) (Conn, error) {
	nc, err := dialRetry(ctx, h.To.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", h.To.Addr, err)
	}
	setNoDelay(nc)
	if t.cfg.ClientHandshake != nil {
		sc, err := t.cfg.ClientHandshake(ctx, nc)
		if err != nil {
			nc.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				// Cut before it finished: the peer's admission may have
				// made room in a flood; worth another attempt.
				return nil, fmt.Errorf("dial %s: %w: %w", h.To.Addr, errNoAnswer, err)
			}
			return nil, fmt.Errorf("dial %s: %w: %w", h.To.Addr, ErrUnauthenticated, err)
		}
		nc = sc
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(nc, tcpReadBuffer)
	err = t.handshake(nc, br, h)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("dial %s: %w", h.To.Addr, err)
	}
	nc.SetDeadline(time.Time{})
	c := newTCPConn(nc, br)
	if !t.track(c) {
		c.Close()
		return nil, ErrClosed
	}
	return c, nil
}

// dialRetry connects to addr, retrying (50 ms doubling to 1 s apart) until
// ctx ends: a peer of the same generation may not be listening yet.
func dialRetry(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	wait := 50 * time.Millisecond
	for {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return nc, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// handshake sends the hello and reads the answer.
func (t *TCPTransport) handshake(nc net.Conn, br *bufio.Reader, h LinkHello) error {
	token, err := hex.DecodeString(linkToken(t.cfg.Secret, h.Generation, h.From.ID, h.To.ID))
	if err != nil {
		return err
	}
	b := append([]byte{}, tcpMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, h.Generation)
	b = append(b, byte(len(h.From.ID)))
	b = append(b, h.From.ID...)
	b = append(b, byte(len(h.To.ID)))
	b = append(b, h.To.ID...)
	b = append(b, token...)
	if _, err := nc.Write(b); err != nil {
		return fmt.Errorf("%w: %w: sending it: %w", ErrLinkBroken, errNoAnswer, err)
	}
	var ans [7]byte
	if n, err := io.ReadFull(br, ans[:]); err != nil {
		if n == 0 {
			err = fmt.Errorf("%w: %w", errNoAnswer, err)
		}
		return fmt.Errorf("%w: answer to hello: %w", ErrLinkBroken, err)
	}
	if [4]byte(ans[:4]) != tcpMagic {
		return fmt.Errorf("%w: %s is not a TCP ring transport (answer starts %q; a gRPC one?)", ErrProtocol, nc.RemoteAddr(), ans[:4])
	}
	reason := make([]byte, binary.BigEndian.Uint16(ans[5:]))
	if _, err := io.ReadFull(br, reason); err != nil {
		return fmt.Errorf("%w: answer to hello: %w", ErrLinkBroken, err)
	}
	switch ans[4] {
	case helloOK:
		return nil
	case helloUnauthenticated:
		return fmt.Errorf("%w: refused by peer: %s", ErrUnauthenticated, reason)
	case helloStale:
		return fmt.Errorf("%w: refused by peer: %s", errStaleGeneration, reason)
	case helloClosed:
		return fmt.Errorf("%w: peer transport closed: %s", ErrLinkBroken, reason)
	default:
		return fmt.Errorf("%w: refused by peer: %s", ErrProtocol, reason)
	}
}

// Accept implements Transport. The link's dialer becomes an expected
// neighbour: its address's pending connections are kept over strangers'.
func (t *TCPTransport) Accept(ctx context.Context, h LinkHello) (Conn, error) {
	t.expected.expect(h)
	return t.reg.accept(ctx, keyOf(h))
}

// readHello parses a dialer's hello: magic, generation, the two member
// ids (each after its length byte) and the 32-byte token.
func readHello(br io.Reader) (k linkKey, token []byte, err error) {
	var head [13]byte
	// The magic first: anything else is refused without waiting for more.
	if _, err = io.ReadFull(br, head[:4]); err != nil {
		return k, nil, fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	if [4]byte(head[:4]) != tcpMagic {
		return k, nil, fmt.Errorf("%w: not a ring link (hello starts %q)", ErrProtocol, head[:4])
	}
	if _, err = io.ReadFull(br, head[4:]); err != nil {
		return k, nil, fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	k.gen = binary.BigEndian.Uint64(head[4:12])
	from := make([]byte, int(head[12])+1) // the id, then the next id's length
	if _, err = io.ReadFull(br, from); err != nil {
		return k, nil, fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	rest := make([]byte, int(from[len(from)-1])+32)
	if _, err = io.ReadFull(br, rest); err != nil {
		return k, nil, fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	k.from, k.to = string(from[:len(from)-1]), string(rest[:len(rest)-32])
	return k, rest[len(rest)-32:], nil
}

// writeAnswer answers a hello: a status byte and a reason.
func writeAnswer(nc net.Conn, code byte, reason string) error {
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	b := append(tcpMagic[:], code, byte(len(reason)>>8), byte(len(reason)))
	_, err := nc.Write(append(b, reason...))
	return err
}

func setNoDelay(nc net.Conn) {
	if tc, ok := nc.(interface{ SetNoDelay(bool) error }); ok {
		tc.SetNoDelay(true)
	}
}

// isTimeout reports whether err is a connection deadline passing.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// tcpReadBuffer is the read buffer of a link: control frames and the
// start of each data frame are read through it; the rest of a large
// payload goes from the socket straight into the frame's buffer.
const tcpReadBuffer = 64 << 10

// tcpConn is one end of a TCP link.
type tcpConn struct {
	nc      net.Conn
	br      *bufio.Reader
	hdr     []byte      // Send's scratch: length prefix and frame header
	bufs    net.Buffers // Send's scratch
	once    sync.Once
	closed  atomic.Bool // Close was called here: failures are ours, not the peer's
	untrack func()
}

func newTCPConn(nc net.Conn, br *bufio.Reader) *tcpConn {
	return &tcpConn{nc: nc, br: br, hdr: make([]byte, 0, 64+maxReasonBytes)}
}

// zeroCopy implements zeroCopyConn: Send writes the payload before it
// returns and keeps no reference to it.
func (c *tcpConn) zeroCopy() bool { return true }

// Send implements Conn: the length, the header and the payload in one
// writev.
func (c *tcpConn) Send(f *Frame) error {
	h := appendHeader(append(c.hdr[:0], 0, 0, 0, 0), f)
	n := len(h) - 4 + len(f.Payload)
	if n > MaxFrameBytes {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, n, MaxFrameBytes)
	}
	binary.BigEndian.PutUint32(h, uint32(n))
	c.hdr = h
	var err error
	if len(f.Payload) == 0 {
		_, err = c.nc.Write(h)
	} else {
		c.bufs = append(c.bufs[:0], h, f.Payload)
		bufs := c.bufs // WriteTo consumes its receiver
		_, err = bufs.WriteTo(c.nc)
		clear(c.bufs)
	}
	if err != nil {
		return c.linkErr(err)
	}
	return nil
}

// linkErr classifies a failed read or write: ErrClosed when this end
// closed the link (the ring then blames itself, not its neighbour),
// ErrLinkBroken otherwise.
func (c *tcpConn) linkErr(err error) error {
	if c.closed.Load() {
		return fmt.Errorf("%w: link closed locally (%v)", ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", ErrLinkBroken, err)
}

// Recv implements Conn.
func (c *tcpConn) Recv(f *Frame) error {
	var lb [4]byte
	if _, err := io.ReadFull(c.br, lb[:]); err != nil {
		return c.linkErr(err)
	}
	n := int(binary.BigEndian.Uint32(lb[:]))
	if n > MaxFrameBytes {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, n, MaxFrameBytes)
	}
	b := f.recvBuf(n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		return c.linkErr(err)
	}
	return decodeFrame(b, f)
}

// Close implements Conn; it unblocks Send and Recv.
func (c *tcpConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.nc.Close()
		if c.untrack != nil {
			c.untrack()
		}
	})
	return nil
}
