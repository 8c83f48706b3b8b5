package allreduce

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// LinkHello identifies a link being formed: the directed edge From -> To
// of ring generation Generation.
type LinkHello struct {
	Generation       uint64
	From, To         Member
	FromRank, ToRank int
}

// Conn is one end of a long-lived bidirectional link between ring
// neighbours. Data flows from the dialing (left) rank to the accepting
// (right) rank; acks flow back; heartbeats and aborts flow both ways. The
// Ring calls Send from one goroutine at a time and Recv from one goroutine
// at a time; Send and Recv may run concurrently, and Close may be called
// at any time from any goroutine and must unblock both.
type Conn interface {
	// Send transmits f. The payload may be retained until the peer
	// acknowledges it (the Ring does not reuse it before then).
	Send(f *Frame) error
	// Recv blocks for the next frame and fills f, reusing f's buffer.
	Recv(f *Frame) error
	// Close tears the link down.
	Close() error
}

// zeroCopyConn is implemented by Conns whose Send may return while the
// transport still reads the payload (gRPC's writer copies it to the
// socket later). The Ring then sends views of the caller's buffer instead
// of copies, tracked through Frame.tx: Send takes its own reference and
// the transport frees it once it has written or dropped the bytes.
// Closing such a Conn stops the transport from reading any payload.
type zeroCopyConn interface {
	Conn
	zeroCopy() bool
}

// Transport connects a rank to its ring neighbours. A worker creates one
// transport (one listener) for its lifetime; rings of successive
// generations dial and accept through it.
type Transport interface {
	// Dial opens the link h.From -> h.To and returns once h.To's transport
	// admitted it (authenticated, current generation).
	Dial(ctx context.Context, h LinkHello) (Conn, error)
	// Accept returns the link h.From -> h.To once it has been dialed.
	// Accepting generation g makes the transport refuse links of older
	// generations from then on.
	Accept(ctx context.Context, h LinkHello) (Conn, error)
}

// linkKey names a directed link of one generation.
type linkKey struct {
	gen      uint64
	from, to string
}

func keyOf(h LinkHello) linkKey { return linkKey{h.Generation, h.From.ID, h.To.ID} }

// errStaleGeneration refuses links of superseded generations.
var errStaleGeneration = fmt.Errorf("%w: stale generation", ErrProtocol)

// linkRegistry matches incoming links (offered by a transport's listener)
// with Accept calls. It is shared by the in-memory and gRPC transports.
type linkRegistry struct {
	mu      sync.Mutex
	minGen  uint64
	closed  bool
	offers  map[linkKey]Conn
	waiters map[linkKey]chan Conn
	done    chan struct{} // closed by close
}

func newLinkRegistry() *linkRegistry {
	return &linkRegistry{offers: map[linkKey]Conn{}, waiters: map[linkKey]chan Conn{}, done: make(chan struct{})}
}

// checkGen refuses generations older than the newest accepted one.
func (r *linkRegistry) checkGen(gen uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if gen < r.minGen {
		return fmt.Errorf("%w: link for generation %d, transport is at %d", errStaleGeneration, gen, r.minGen)
	}
	return nil
}

// offer hands an incoming link to Accept without blocking. The registry
// owns c from then on: it closes c when the link is superseded by a
// re-dial, becomes stale, or the registry closes.
func (r *linkRegistry) offer(k linkKey, c Conn) error {
	r.mu.Lock()
	if r.closed || k.gen < r.minGen {
		r.mu.Unlock()
		if r.closed {
			return ErrClosed
		}
		return fmt.Errorf("%w: link for generation %d, transport is at %d", errStaleGeneration, k.gen, r.minGen)
	}
	if w, ok := r.waiters[k]; ok {
		delete(r.waiters, k)
		r.mu.Unlock()
		w <- c
		return nil
	}
	old := r.offers[k]
	r.offers[k] = c
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// accept waits for the link k.
func (r *linkRegistry) accept(ctx context.Context, k linkKey) (Conn, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	var stale []Conn
	if k.gen > r.minGen {
		r.minGen = k.gen
		for ok, c := range r.offers {
			if ok.gen < k.gen {
				stale = append(stale, c)
				delete(r.offers, ok)
			}
		}
	}
	c, ok := r.offers[k]
	delete(r.offers, k)
	w := make(chan Conn, 1)
	if !ok {
		r.waiters[k] = w
	}
	r.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
	if ok {
		return c, nil
	}
	select {
	case c := <-w:
		return c, nil
	case <-r.done:
		return nil, ErrClosed
	case <-ctx.Done():
		r.mu.Lock()
		if r.waiters[k] == w {
			delete(r.waiters, k)
		}
		r.mu.Unlock()
		select {
		case c := <-w: // delivered while we gave up
			c.Close()
		default:
		}
		return nil, ctx.Err()
	}
}

// close refuses further links and closes the unclaimed ones.
func (r *linkRegistry) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.done)
	offers := r.offers
	r.offers = map[linkKey]Conn{}
	r.mu.Unlock()
	for _, c := range offers {
		c.Close()
	}
}

// listen returns lis, or a new TCP listener on addr when lis is nil: the
// transports' configs take either.
func listen(lis net.Listener, addr string) (net.Listener, error) {
	if lis != nil {
		return lis, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("allreduce: listen: %w", err)
	}
	return l, nil
}
