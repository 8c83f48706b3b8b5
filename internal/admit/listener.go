package admit

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc/credentials/insecure"
)

// Listener is a net.Listener whose accepted connections are pending until
// admitted; see the package comment for the limits on pending ones. It is
// safe for concurrent use.
type Listener struct {
	inner net.Listener
	cfg   Config

	mu        sync.Mutex
	pending   list.List          // *Conn, oldest first
	perSource map[netip.Addr]int // pending connections by source key
	preferred map[netip.Addr]bool
	closed    bool
	stats     Stats
}

// Stats counts a Listener's connections.
type Stats struct {
	// Pending is the number of slots held by unauthenticated connections
	// now (never above Config.MaxPending). A gRPC connection that ends
	// after its HTTP/2 handshake without authenticating keeps its slot,
	// not its socket, until it is evicted or times out.
	Pending int
	// Accepted counts connections accepted, Admitted those authenticated
	// in time.
	Accepted, Admitted int64
	// Evicted, Refused and TimedOut count pending connections the
	// Listener closed, by Reason.
	Evicted, Refused, TimedOut int64
}

// connState is where a Conn is in its admission; guarded by Listener.mu.
type connState int

const (
	statePending connState = iota
	stateAdmitted
	stateDropped // evicted, timed out, closed or never added
)

// Conn is a connection accepted by a Listener. Close releases its pending
// slot; NetConn returns the connection it wraps.
type Conn struct {
	net.Conn
	l         *Listener
	src       netip.Addr // source key; valid when the remote address is an IP
	preferred bool
	elem      *list.Element // in l.pending while pending
	timer     *time.Timer
	state     connState
}

// NewListener wraps inner. Closing the Listener closes inner and every
// pending connection.
func NewListener(inner net.Listener, cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	if cfg.Credentials == nil {
		cfg.Credentials = insecure.NewCredentials()
	}
	return &Listener{inner: inner, cfg: cfg, perSource: map[netip.Addr]int{}}, nil
}

// Accept waits for the next connection and returns it as a pending *Conn,
// closing an older pending one when the limits require it. Errors are the
// wrapped listener's.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.add(nc); c != nil {
			return c, nil
		}
	}
}

// Addr is the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close closes the wrapped listener and every pending connection.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	var drop []*Conn
	for e := l.pending.Front(); e != nil; e = e.Next() {
		drop = append(drop, e.Value.(*Conn))
	}
	for _, c := range drop {
		l.remove(c)
	}
	l.mu.Unlock()
	err := l.inner.Close()
	for _, c := range drop {
		c.Conn.Close()
	}
	return err
}

// Admit marks c, a connection this Listener accepted, authenticated: it
// leaves the pending set and its deadline. It reports false when c was
// already closed by the Listener (evicted, timed out) or is not one of
// its connections; the caller then drops it.
func (l *Listener) Admit(c net.Conn) bool {
	ac, ok := c.(*Conn)
	if !ok || ac.l != l {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ac.state {
	case statePending:
		l.remove(ac)
		ac.state = stateAdmitted
		l.stats.Admitted++
		return true
	case stateAdmitted:
		return true
	}
	return false
}

// SetPreferred replaces the set of preferred sources: the addresses the
// server expects its members to connect from. Pending connections from
// them are evicted only by connections from the same source or, when
// every pending connection is preferred, by another preferred one.
func (l *Listener) SetPreferred(addrs ...netip.Addr) {
	set := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			set[sourceKey(a)] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.preferred = set
	for e := l.pending.Front(); e != nil; e = e.Next() {
		c := e.Value.(*Conn)
		c.preferred = c.src.IsValid() && set[c.src]
	}
}

// Stats returns the Listener's counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Pending = l.pending.Len()
	return s
}

// add makes nc pending, evicting as the limits require; nil when nc was
// refused (and closed).
func (l *Listener) add(nc net.Conn) *Conn {
	c := &Conn{Conn: nc, l: l, src: sourceOf(nc.RemoteAddr()), state: stateDropped}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		nc.Close()
		return nil
	}
	l.stats.Accepted++
	c.preferred = c.src.IsValid() && l.preferred[c.src]
	victim, refused := l.victimFor(c)
	if refused {
		l.stats.Refused++
		l.mu.Unlock()
		nc.Close()
		l.notify(Refused)
		return nil
	}
	if victim != nil {
		l.remove(victim)
		l.stats.Evicted++
	}
	c.state = statePending
	c.elem = l.pending.PushBack(c)
	if c.src.IsValid() {
		l.perSource[c.src]++
	}
	c.timer = time.AfterFunc(l.cfg.Timeout, c.expire)
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close()
		l.notify(Evicted)
	}
	return c
}

// victimFor picks the pending connection that must go for c to be
// added, or reports that c is refused. l.mu is held.
func (l *Listener) victimFor(c *Conn) (victim *Conn, refused bool) {
	if c.src.IsValid() && l.perSource[c.src] >= l.cfg.MaxPendingPerSource {
		return l.oldest(func(p *Conn) bool { return p.src == c.src }), false
	}
	if l.pending.Len() < l.cfg.MaxPending {
		return nil, false
	}
	if v := l.oldest(func(p *Conn) bool { return !p.preferred }); v != nil {
		return v, false
	}
	if !c.preferred {
		return nil, true
	}
	return l.oldest(func(*Conn) bool { return true }), false
}

// oldest returns the oldest pending connection that ok accepts. l.mu is
// held. A scan: the set is small and only floods make it full.
func (l *Listener) oldest(ok func(*Conn) bool) *Conn {
	for e := l.pending.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*Conn); ok(c) {
			return c
		}
	}
	return nil
}

// remove takes a pending c out of the set and marks it dropped. l.mu is
// held.
func (l *Listener) remove(c *Conn) {
	l.pending.Remove(c.elem)
	c.elem = nil
	if c.src.IsValid() {
		if n := l.perSource[c.src] - 1; n > 0 {
			l.perSource[c.src] = n
		} else {
			delete(l.perSource, c.src)
		}
	}
	c.timer.Stop()
	c.state = stateDropped
}

func (l *Listener) notify(r Reason) {
	if l.cfg.OnClose != nil {
		l.cfg.OnClose(r)
	}
}

// expire closes c if it is still pending at its deadline.
func (c *Conn) expire() {
	l := c.l
	l.mu.Lock()
	if c.state != statePending {
		l.mu.Unlock()
		return
	}
	l.remove(c)
	l.stats.TimedOut++
	l.mu.Unlock()
	c.Conn.Close()
	l.notify(TimedOut)
}

// Close closes the connection and releases its pending slot.
func (c *Conn) Close() error {
	c.l.mu.Lock()
	if c.state == statePending {
		c.l.remove(c)
	}
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// NetConn returns the wrapped connection, for I/O that needs its concrete
// type (writev, TCP options) once the connection is admitted.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// sourceOf is the source key of a remote address, invalid when it is not
// an IP address.
func sourceOf(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case nil:
		return ip
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	if !ip.IsValid() {
		return ip
	}
	return sourceKey(ip)
}

// sourceKey is what one source is counted by: the IPv4 address, or the
// /64 of an IPv6 one (a single host commonly holds a whole /64).
func sourceKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
