package allreduce

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/recur-ml/recur/internal/admit"
	"github.com/recur-ml/recur/pkg/allreduce/ringpb"
)

// GRPCConfig configures a GRPCTransport.
type GRPCConfig struct {
	// Listener to serve on; if nil, ListenAddr is listened on.
	Listener net.Listener
	// ListenAddr is used when Listener is nil, e.g. ":7070" or "127.0.0.1:0".
	ListenAddr string
	// Secret is the cluster secret (at least 16 bytes) shared by every
	// worker; links whose token does not verify are refused with
	// codes.Unauthenticated. It authenticates, it does not encrypt.
	Secret []byte
	// Metrics counts refused streams (nil: not counted).
	Metrics *Metrics
	// WindowBytes is the HTTP/2 flow-control window per stream (default
	// 8 MiB): it must hold several segments, or links stall between acks.
	WindowBytes int32
	// ConnWindowBytes is the window per connection (default 2*WindowBytes).
	ConnWindowBytes int32
	// BufferBytes sizes gRPC's read and write buffers (default 1 MiB), so a
	// segment goes out in few syscalls; negative disables them (gRPC then
	// reads and writes the socket directly, one copy less per byte, one
	// syscall per 16 KiB HTTP/2 frame).
	BufferBytes int
	// ReadBufferBytes, if nonzero, overrides BufferBytes for reads.
	ReadBufferBytes int
	// ServerCredentials and ClientCredentials secure the links (e.g. mutual
	// TLS); nil: plaintext. Every member must use the same kind.
	ServerCredentials, ClientCredentials credentials.TransportCredentials
	// HelloTimeout bounds how long an incoming connection may go without
	// opening a Link stream whose token verifies (default
	// DefaultHelloTimeout); it is closed then.
	HelloTimeout time.Duration
	// MaxPendingHellos bounds incoming connections not yet authenticated
	// (default DefaultMaxPendingHellos). When full, the oldest is closed
	// to make room, unless it comes from an expected neighbour's address.
	MaxPendingHellos int
	// MaxPendingHellosPerSource bounds those from one IP address (default
	// DefaultMaxPendingHellosPerSource); beyond it, that address's oldest
	// is closed to make room.
	MaxPendingHellosPerSource int
}

// Defaults of GRPCConfig.
const (
	DefaultWindowBytes = 8 << 20
	DefaultBufferBytes = 1 << 20
)

// EnsureDefaults fills zero fields with their documented defaults.
func (c *GRPCConfig) EnsureDefaults() {
	if c.WindowBytes == 0 {
		c.WindowBytes = DefaultWindowBytes
	}
	if c.ConnWindowBytes == 0 {
		c.ConnWindowBytes = 2 * c.WindowBytes
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = DefaultBufferBytes
	}
	if c.ReadBufferBytes == 0 {
		c.ReadBufferBytes = c.BufferBytes
	}
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

// Validate reports a problem with c, after defaults are applied to a copy.
func (c *GRPCConfig) Validate() error {
	d := *c
	d.EnsureDefaults()
	switch {
	case d.Listener == nil && d.ListenAddr == "":
		return fmt.Errorf("%w: neither Listener nor ListenAddr", ErrInvalidConfig)
	case len(d.Secret) < minSecretBytes:
		return fmt.Errorf("%w: cluster secret of %d bytes, need at least %d", ErrInvalidConfig, len(d.Secret), minSecretBytes)
	case d.WindowBytes < 64<<10 || d.ConnWindowBytes < d.WindowBytes:
		return fmt.Errorf("%w: flow-control windows %d/%d too small", ErrInvalidConfig, d.WindowBytes, d.ConnWindowBytes)
	}
	return validateAdmission(c.HelloTimeout, c.MaxPendingHellos, c.MaxPendingHellosPerSource)
}

// GRPCTransport is the production Transport: one gRPC server (one
// listener) per worker process, serving the Ring service for every ring
// generation the worker joins, plus one client connection per dialed link.
//
// Incoming connections are admitted as internal/admit describes: until it
// opens a Link stream whose token verifies, a connection holds one of
// MaxPendingHellos slots (MaxPendingHellosPerSource per address) for at
// most HelloTimeout, a new connection evicts the oldest pending one, and
// the dialer retries a stream cut before the peer's hello.
type GRPCTransport struct {
	cfg      GRPCConfig
	lis      *admit.Listener
	expected *expectedPeers
	srv      *grpc.Server
	reg      *linkRegistry
	// closed makes accepted links report ErrClosed rather than a broken
	// peer once this side shut down.
	closed atomic.Bool
	ringpb.UnimplementedRingServer
}

// NewGRPCTransport listens and starts serving in the background.
func NewGRPCTransport(cfg GRPCConfig) (*GRPCTransport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	raw, err := listen(cfg.Listener, cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	lis, err := admission{timeout: cfg.HelloTimeout, maxPending: cfg.MaxPendingHellos,
		perSource: cfg.MaxPendingHellosPerSource, metrics: cfg.Metrics, creds: cfg.ServerCredentials}.listener(raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	t := &GRPCTransport{cfg: cfg, lis: lis, expected: newExpectedPeers(lis), reg: newLinkRegistry()}
	t.srv = grpc.NewServer(append(lis.ServerOptions(),
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.MaxRecvMsgSize(MaxFrameBytes),
		grpc.MaxSendMsgSize(MaxFrameBytes),
		grpc.InitialWindowSize(cfg.WindowBytes),
		grpc.InitialConnWindowSize(cfg.ConnWindowBytes),
		grpc.WriteBufferSize(cfg.BufferBytes),
		// The accepting side only writes acks and heartbeats: a write
		// buffer borrowed per flush, not one held by every connection
		// (a stranger's included).
		grpc.SharedWriteBuffer(true),
		grpc.ReadBufferSize(cfg.ReadBufferBytes),
		experimental.BufferPool(ringBufferPool),
	)...)
	ringpb.RegisterRingServer(t.srv, t)
	go t.srv.Serve(lis) //nolint:errcheck // returns when Close stops the server
	return t, nil
}

// Addr is the address the transport listens on.
func (t *GRPCTransport) Addr() string { return t.lis.Addr().String() }

// Close stops the server, breaking every accepted link.
func (t *GRPCTransport) Close() error {
	t.closed.Store(true)
	t.reg.close()
	t.srv.Stop()
	return nil
}

// Link serves one incoming link (the generated service method).
func (t *GRPCTransport) Link(stream ringpb.Ring_LinkServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	k, ok, err := parseHello(t.cfg.Secret, md)
	switch {
	case err != nil:
		t.cfg.Metrics.rejectedStream(false)
		return status.Error(codes.InvalidArgument, err.Error())
	case !ok:
		t.cfg.Metrics.rejectedStream(true)
		return status.Errorf(codes.Unauthenticated, "%v: cluster token of %q for generation %d does not verify", ErrUnauthenticated, k.from, k.gen)
	}
	// The dialer holds the secret: its connection leaves the pending set.
	t.lis.AdmitContext(stream.Context())
	if err := t.reg.checkGen(k.gen); err != nil {
		t.cfg.Metrics.rejectedStream(false)
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if err := stream.SendMsg(&Frame{Kind: KindHello, Generation: k.gen}); err != nil {
		return err
	}
	c := &serverConn{stream: stream, done: make(chan struct{}), closed: &t.closed}
	if err := t.reg.offer(k, c); err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	select {
	case <-c.done:
		return status.Error(codes.Unavailable, "allreduce: link closed")
	case <-stream.Context().Done():
		return nil
	}
}

// ringBufferPool is shared by every ring transport of the process.
var ringBufferPool = &dirtyPool{}

// Dial implements Transport.
func (t *GRPCTransport) Dial(ctx context.Context, h LinkHello) (Conn, error) {
	creds := t.cfg.ClientCredentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient("passthrough:///"+h.To.Addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}),
			grpc.MaxCallRecvMsgSize(MaxFrameBytes), grpc.MaxCallSendMsgSize(MaxFrameBytes)),
		grpc.WithInitialWindowSize(t.cfg.WindowBytes),
		grpc.WithInitialConnWindowSize(t.cfg.ConnWindowBytes),
		grpc.WithWriteBufferSize(t.cfg.BufferBytes),
		grpc.WithReadBufferSize(t.cfg.ReadBufferBytes),
		experimental.WithBufferPool(ringBufferPool),
	)
	if err != nil {
		return nil, fmt.Errorf("allreduce: dial %s: %w", h.To.Addr, err)
	}
	// The stream outlives ctx (which only bounds the dial), so it gets
	// its own context, cancelled by Close.
	sctx, cancel := context.WithCancel(metadata.NewOutgoingContext(context.Background(), helloMetadata(t.cfg.Secret, h)))
	c := &clientConn{cc: cc, cancel: cancel}
	done := make(chan error, 1)
	go func() { done <- mapStreamErr(c.open(sctx)) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		cancel()
		<-done
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", h.To.Addr, err)
	}
	return c, nil
}

// open opens the link's stream and waits for the peer's hello. A stream
// cut before the hello (codes.Unavailable: the peer's admission may have
// evicted the connection in a flood of strangers) is retried, 50 ms
// doubling to 1 s apart, until ctx ends. Errors are gRPC's, unmapped.
func (c *clientConn) open(ctx context.Context) error {
	wait := 50 * time.Millisecond
	for {
		s, err := ringpb.NewRingClient(c.cc).Link(ctx, grpc.WaitForReady(true))
		if err == nil {
			var f Frame
			if err = s.RecvMsg(&f); err == nil {
				if f.Kind != KindHello {
					return fmt.Errorf("%w: first frame of kind %d, want hello", ErrProtocol, f.Kind)
				}
				c.stream = s
				return nil
			}
		}
		if status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Accept implements Transport. The link's dialer becomes an expected
// neighbour: its address's pending connections are kept over strangers'.
func (t *GRPCTransport) Accept(ctx context.Context, h LinkHello) (Conn, error) {
	t.expected.expect(h)
	return t.reg.accept(ctx, keyOf(h))
}

// clientConn is the dialing end of a link.
type clientConn struct {
	cc     *grpc.ClientConn
	cancel context.CancelFunc
	stream grpc.BidiStreamingClient[ringpb.Frame, ringpb.Frame]
	once   sync.Once
}

func (c *clientConn) Send(f *Frame) error { return mapStreamErr(c.stream.SendMsg(f)) }
func (c *clientConn) Recv(f *Frame) error { return mapStreamErr(c.stream.RecvMsg(f)) }

// zeroCopy implements zeroCopyConn: the codec hands gRPC the tracked
// payload, and Close tears down the connection, gRPC's writer included.
func (c *clientConn) zeroCopy() bool { return true }

func (c *clientConn) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.cc.Close()
	})
	return nil
}

// serverConn is the accepting end of a link; Close ends the handler.
type serverConn struct {
	stream ringpb.Ring_LinkServer
	done   chan struct{}
	once   sync.Once
	closed *atomic.Bool // the transport's
}

func (c *serverConn) Send(f *Frame) error { return c.mapErr(c.stream.SendMsg(f)) }
func (c *serverConn) Recv(f *Frame) error { return c.mapErr(c.stream.RecvMsg(f)) }

func (c *serverConn) mapErr(err error) error {
	if err != nil && c.closed.Load() {
		return fmt.Errorf("%w: local transport shut down (%v)", ErrClosed, err)
	}
	return mapStreamErr(err)
}
func (c *serverConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// mapStreamErr turns gRPC statuses into this package's sentinels.
func mapStreamErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("%w: %s", ErrUnauthenticated, st.Message())
	case codes.ResourceExhausted, codes.Internal, codes.InvalidArgument:
		return fmt.Errorf("%w: %s (%s)", ErrProtocol, st.Message(), st.Code())
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", errStaleGeneration, st.Message())
	}
	return fmt.Errorf("%w: %w", ErrLinkBroken, err)
}
