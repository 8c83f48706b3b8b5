package allreduce

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/recur-ml/recur/internal/admit"
)

// Admission defaults of TCPConfig and GRPCConfig: what a stranger without
// the cluster secret can hold on a ring port.
const (
	// DefaultHelloTimeout bounds how long an incoming connection may take
	// to authenticate. A member sends its hello (TCP) or opens its stream
	// (gRPC) right after connecting, within milliseconds; three seconds
	// leave room for a loaded machine and free a stranger's slot quickly.
	DefaultHelloTimeout = 3 * time.Second
	// DefaultMaxPendingHellos bounds incoming connections not yet
	// authenticated: a ring accepts one link per generation, so this is
	// far above what members need, and what strangers hold stays small.
	DefaultMaxPendingHellos = 64
	// DefaultMaxPendingHellosPerSource bounds those from one IP address
	// (an IPv6 /64): a host runs a few workers at most.
	DefaultMaxPendingHellosPerSource = 8
)

// admission holds the admission fields shared by the transport configs.
type admission struct {
	timeout, grace        time.Duration
	maxPending, perSource int
	metrics               *Metrics
	creds                 credentials.TransportCredentials // gRPC only; nil: plaintext
}

// validateAdmission checks the admission fields of a transport config.
func validateAdmission(timeout time.Duration, maxPending, perSource int) error {
	switch {
	case timeout < 0:
		return fmt.Errorf("%w: negative hello timeout", ErrInvalidConfig)
	case maxPending < 0 || perSource < 0:
		return fmt.Errorf("%w: negative pending hello limit", ErrInvalidConfig)
	}
	return nil
}

// listener wraps lis in the admission listener a transport serves on.
// grace is added to the listener's deadline: the time a transport takes
// to answer a hello that timed out.
func (a admission) listener(lis net.Listener) (*admit.Listener, error) {
	cfg := admit.Config{
		Timeout:             a.timeout + a.grace,
		MaxPending:          a.maxPending,
		MaxPendingPerSource: a.perSource,
		OnClose:             func(r admit.Reason) { a.metrics.droppedHello(r == admit.TimedOut) },
		Credentials:         a.creds,
	}
	l, err := admit.NewListener(lis, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return l, nil
}

// expectedPeers tells a transport's admission listener which addresses
// its links should come from: the left neighbours of the newest
// generation it accepts. Their connections are never evicted by a flood
// from other addresses. Members addressed by host name get no such
// preference; the eviction of the oldest pending connection and the
// dialer's retry still let them through.
type expectedPeers struct {
	lis *admit.Listener

	mu     sync.Mutex
	maxGen uint64
	gens   map[netip.Addr]uint64 // address -> newest generation expecting it
}

func newExpectedPeers(lis *admit.Listener) *expectedPeers {
	return &expectedPeers{lis: lis, gens: map[netip.Addr]uint64{}}
}

// expect records that h's dialer will connect for generation
// h.Generation, and forgets the addresses of older generations.
func (e *expectedPeers) expect(h LinkHello) {
	host, _, err := net.SplitHostPort(h.From.Addr)
	if err != nil {
		return
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.Generation < e.maxGen {
		return
	}
	e.maxGen = h.Generation
	for a, g := range e.gens {
		if g < e.maxGen {
			delete(e.gens, a)
		}
	}
	e.gens[ip] = h.Generation
	addrs := make([]netip.Addr, 0, len(e.gens))
	for a := range e.gens {
		addrs = append(addrs, a)
	}
	e.lis.SetPreferred(addrs...)
}
