package allreduce

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MemNetwork is an in-process network of MemTransports for tests and
// simulations, with the faults a real network has: links can be cut,
// partitioned, slowed, filtered, and forged frames can be injected.
type MemNetwork struct {
	mu     sync.Mutex
	nodes  map[string]*MemTransport
	rules  map[[2]string]*memRule
	links  []*memConn // every live conn end, for Kill and Inject
	closed bool
}

// memRule is what happens to frames sent from one address to another.
type memRule struct {
	drop   bool
	delay  time.Duration
	rate   float64 // payload bytes per second; 0: unlimited
	filter func(*Frame) bool
}

// NewMemNetwork returns an empty network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: map[string]*MemTransport{}, rules: map[[2]string]*memRule{}}
}

// Node returns the transport listening at addr, creating it if needed (a
// killed address comes back as a fresh node, like a restarted process).
func (n *MemNetwork) Node(addr string) *MemTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t := n.nodes[addr]; t != nil {
		return t
	}
	t := &MemTransport{net: n, addr: addr, reg: newLinkRegistry()}
	n.nodes[addr] = t
	return t
}

func (n *MemNetwork) rule(from, to string) *memRule {
	k := [2]string{from, to}
	if n.rules[k] == nil {
		n.rules[k] = &memRule{}
	}
	return n.rules[k]
}

// Partition silently drops every frame between a and b, both ways, as a
// network partition does (no error, just silence). Heal undoes it.
func (n *MemNetwork) Partition(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rule(a, b).drop, n.rule(b, a).drop = true, true
}

// Heal ends a Partition between a and b.
func (n *MemNetwork) Heal(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rule(a, b).drop, n.rule(b, a).drop = false, false
}

// SetDelay makes every frame from one address to another take d (the
// sender blocks, as on a slow link).
func (n *MemNetwork) SetDelay(from, to string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rule(from, to).delay = d
}

// SetRate limits the link from one address to another to bytesPerSec of
// payload (0: unlimited), as a shaped network interface does: each frame
// takes len/rate to go out, one after another, and the sender blocks
// until its frame is through (a full socket buffer). Frames in flight
// when the rate changes keep their old schedule.
func (n *MemNetwork) SetRate(from, to string, bytesPerSec float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rule(from, to).rate = bytesPerSec
}

// SetFilter runs fn on every frame from one address to another before
// delivery; fn may modify the frame (its payload is a private copy) and
// returns false to drop it. A nil fn removes the filter.
func (n *MemNetwork) SetFilter(from, to string, fn func(*Frame) bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rule(from, to).filter = fn
}

// Inject delivers f (copied) on every live link from one address to
// another, as if the sender had sent it. It reports how many links got it.
func (n *MemNetwork) Inject(from, to string, f Frame) int {
	n.mu.Lock()
	var targets []*memConn
	for _, c := range n.links {
		if c.from == from && c.to == to {
			targets = append(targets, c)
		}
	}
	n.mu.Unlock()
	for _, c := range targets {
		c.deliver(copyFrame(&f))
	}
	return len(targets)
}

// Kill simulates the death of the process at addr: its links break at
// both ends (as a TCP reset would) and new dials to it fail until Node
// creates a fresh transport there.
func (n *MemNetwork) Kill(addr string) {
	n.mu.Lock()
	t := n.nodes[addr]
	delete(n.nodes, addr)
	var dead []*memConn
	live := n.links[:0]
	for _, c := range n.links {
		if c.from == addr || c.to == addr {
			dead = append(dead, c)
		} else {
			live = append(live, c)
		}
	}
	n.links = live
	n.mu.Unlock()
	for _, c := range dead {
		c.Close()
	}
	if t != nil {
		t.reg.close()
	}
}

// Close kills every node.
func (n *MemNetwork) Close() {
	n.mu.Lock()
	addrs := make([]string, 0, len(n.nodes))
	for a := range n.nodes {
		addrs = append(addrs, a)
	}
	n.mu.Unlock()
	for _, a := range addrs {
		n.Kill(a)
	}
}

// MemTransport is one node of a MemNetwork; it implements Transport.
type MemTransport struct {
	net  *MemNetwork
	addr string
	reg  *linkRegistry
}

// Addr is the node's address.
func (t *MemTransport) Addr() string { return t.addr }

// Dial implements Transport; it retries until the target node exists.
func (t *MemTransport) Dial(ctx context.Context, h LinkHello) (Conn, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		t.net.mu.Lock()
		dst := t.net.nodes[h.To.Addr]
		alive := t.net.nodes[t.addr] == t
		t.net.mu.Unlock()
		if !alive {
			return nil, ErrClosed
		}
		if dst != nil {
			return t.connect(dst, h)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s: %w", h.To.Addr, ctx.Err())
		case <-tick.C:
		}
	}
}

func (t *MemTransport) connect(dst *MemTransport, h LinkHello) (Conn, error) {
	if err := dst.reg.checkGen(h.Generation); err != nil {
		return nil, err
	}
	ab, ba := newMemPipe(), newMemPipe()
	client := &memConn{net: t.net, from: t.addr, to: dst.addr, out: ab, in: ba}
	server := &memConn{net: t.net, from: dst.addr, to: t.addr, out: ba, in: ab}
	t.net.mu.Lock()
	live := t.net.links[:0]
	for _, c := range t.net.links { // forget closed links
		select {
		case <-c.out.broken:
		default:
			live = append(live, c)
		}
	}
	t.net.links = append(live, client, server)
	t.net.mu.Unlock()
	if err := dst.reg.offer(keyOf(h), server); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// Accept implements Transport.
func (t *MemTransport) Accept(ctx context.Context, h LinkHello) (Conn, error) {
	return t.reg.accept(ctx, keyOf(h))
}

// memPipe is one direction of a link: a bounded queue (the flow-control
// window) that either end can break.
type memPipe struct {
	ch     chan *Frame
	broken chan struct{}
	once   sync.Once
}

func newMemPipe() *memPipe {
	return &memPipe{ch: make(chan *Frame, 64), broken: make(chan struct{})}
}

func (p *memPipe) breakPipe() { p.once.Do(func() { close(p.broken) }) }

// memConn is one end of an in-memory link.
type memConn struct {
	net      *MemNetwork
	from, to string
	out, in  *memPipe
	busy     time.Time // a rate-limited link is sending until then (one Send at a time)
}

var errMemBroken = fmt.Errorf("%w: in-memory link closed", ErrLinkBroken)

func copyFrame(f *Frame) *Frame {
	c := *f
	c.buf, c.tx = nil, nil
	c.Payload = append([]byte(nil), f.Payload...)
	return &c
}

// Send implements Conn.
func (c *memConn) Send(f *Frame) error {
	c.net.mu.Lock()
	r := *c.net.rule(c.from, c.to)
	c.net.mu.Unlock()
	select {
	case <-c.out.broken:
		return errMemBroken
	default:
	}
	wait := r.delay
	if r.rate > 0 {
		now := time.Now()
		if c.busy.Before(now) {
			c.busy = now
		}
		c.busy = c.busy.Add(time.Duration(float64(len(f.Payload)) / r.rate * float64(time.Second)))
		wait += c.busy.Sub(now)
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.out.broken:
			t.Stop()
			return errMemBroken
		}
	}
	cp := copyFrame(f)
	if r.drop || (r.filter != nil && !r.filter(cp)) {
		return nil
	}
	if len(cp.Payload) > MaxFrameBytes {
		return fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, len(cp.Payload), MaxFrameBytes)
	}
	return c.deliver(cp)
}

func (c *memConn) deliver(f *Frame) error {
	select {
	case c.out.ch <- f:
		return nil
	case <-c.out.broken:
		return errMemBroken
	}
}

// Recv implements Conn. Frames sent before the link broke are still
// delivered, as TCP delivers data before a FIN.
func (c *memConn) Recv(f *Frame) error {
	var g *Frame
	select {
	case g = <-c.in.ch:
	default:
		select {
		case g = <-c.in.ch:
		case <-c.in.broken:
			return errMemBroken
		}
	}
	buf := f.recvBuf(len(g.Payload))
	copy(buf, g.Payload)
	*f = *g
	f.buf, f.Payload = buf, buf
	return nil
}

// Close implements Conn; both directions break for both ends.
func (c *memConn) Close() error {
	c.out.breakPipe()
	c.in.breakPipe()
	return nil
}
