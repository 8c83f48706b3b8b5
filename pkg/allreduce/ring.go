package allreduce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Ring is one rank's membership in one ring generation. It holds a link to
// each neighbour for its whole life; AllReduce calls run over them one at
// a time. After any failed call the Ring refuses further calls (a ring
// whose members may disagree about a step must not be reused): Close it
// and form a new generation.
type Ring struct {
	cfg         Config
	n, rank     int
	self        Member
	left, right peer
	out, in     Conn       // link to the right / from the left neighbour
	outMu, inMu sync.Mutex // one Send at a time per link

	mu      sync.Mutex
	cur     *call         // current or last call
	changed chan struct{} // closed and replaced whenever cur changes
	lastSeq uint64        // highest call entered
	err     error         // first failure; the ring is dead once set
	closed  bool
	closeCh chan struct{}

	callMu sync.Mutex // serialises AllReduce
	arena  []byte     // send buffers: Window slots of one segment each
	wg     sync.WaitGroup
}

// peer is a neighbour and what this rank has heard from it.
type peer struct {
	Member
	rank     int
	lastSeen atomic.Int64  // unix nanos of the last frame of any kind
	lastCall atomic.Uint64 // highest call the peer is known to have entered
}

func (p *peer) touch()              { p.lastSeen.Store(time.Now().UnixNano()) }
func (p *peer) entered(call uint64) { maxStore(&p.lastCall, call) }

// selfErr blames this rank: its own transport or link was closed.
func (r *Ring) selfErr(call uint64, op string, err error) *PeerError {
	return &PeerError{Rank: r.rank, ID: r.self.ID, Addr: r.self.Addr, Generation: r.cfg.Generation, Call: call, Op: op, Err: err}
}

func (r *Ring) peerErr(p *peer, call uint64, op string, err error) *PeerError {
	return &PeerError{Rank: p.rank, ID: p.ID, Addr: p.Addr, Generation: r.cfg.Generation, Call: call, Op: op, Err: err}
}

func maxStore(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// New joins ring generation cfg.Generation as rank cfg.Rank: it dials the
// right neighbour and accepts the left one through tr, concurrently, and
// returns once both links are up (bounded by ctx and cfg.JoinTimeout).
func New(ctx context.Context, cfg Config, tr Transport) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	n := len(cfg.Members)
	r := &Ring{cfg: cfg, n: n, rank: cfg.Rank, self: cfg.Members[cfg.Rank],
		changed: make(chan struct{}), closeCh: make(chan struct{})}
	li, ri := (cfg.Rank-1+n)%n, (cfg.Rank+1)%n
	r.left.Member, r.left.rank = cfg.Members[li], li
	r.right.Member, r.right.rank = cfg.Members[ri], ri
	if n == 1 {
		return r, nil
	}
	if tr == nil {
		return nil, fmt.Errorf("%w: nil transport for %d ranks", ErrInvalidConfig, n)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.JoinTimeout)
	defer cancel()
	var dialErr, acceptErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.in, acceptErr = tr.Accept(ctx, LinkHello{cfg.Generation, r.left.Member, r.self, li, cfg.Rank})
	}()
	r.out, dialErr = tr.Dial(ctx, LinkHello{cfg.Generation, r.self, r.right.Member, cfg.Rank, ri})
	if dialErr != nil {
		cancel() // no point waiting for the left link
	}
	wg.Wait()
	if dialErr != nil || acceptErr != nil {
		if r.out != nil {
			r.out.Close()
		}
		if r.in != nil {
			r.in.Close()
		}
		if dialErr != nil {
			return nil, r.peerErr(&r.right, 0, "dial", dialErr)
		}
		return nil, r.peerErr(&r.left, 0, "accept", acceptErr)
	}
	r.left.touch()
	r.right.touch()
	r.wg.Add(4)
	go r.readLoop(&r.left)
	go r.readLoop(&r.right)
	go r.heartbeatLoop(r.out, &r.outMu)
	go r.heartbeatLoop(r.in, &r.inMu)
	return r, nil
}

// Generation is the ring's generation.
func (r *Ring) Generation() uint64 { return r.cfg.Generation }

// Size is the number of ranks.
func (r *Ring) Size() int { return r.n }

// Rank is this process's rank.
func (r *Ring) Rank() int { return r.rank }

// Err returns the failure that ended the ring, or nil while it is usable.
func (r *Ring) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close tears down the links and waits for the ring's goroutines. A call
// in progress fails with ErrClosed. Close is idempotent.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.err == nil {
		r.err = ErrClosed
	}
	c := r.cur
	close(r.closeCh)
	r.mu.Unlock()
	if c != nil {
		c.fail(ErrClosed)
	}
	if r.out != nil {
		r.out.Close()
		r.in.Close()
	}
	r.wg.Wait()
	return nil
}

// fail records the ring's first failure, fails the current call with it
// and tells both neighbours (abort frames travel on around the ring).
// ab is the abort to forward, or nil to build one blaming err's peer.
func (r *Ring) fail(err error, ab *Frame) { r.failAt(err, ab, false) }

// failAt is fail; quiet spares the current call, for failures that only
// affect later calls (a link lost after the call no longer needs it). A
// quiet failure blames the call it is for (PeerError.Call): if that call
// started meanwhile (the caller saw no call running), it fails too, or it
// would wait for the peer's silence timeout instead.
func (r *Ring) failAt(err error, ab *Frame, quiet bool) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = err
	c := r.cur
	r.mu.Unlock()
	if quiet && c != nil {
		var pe *PeerError
		if errors.As(err, &pe) && pe.Call == c.seq {
			quiet = false
		}
	}
	if c != nil && !quiet {
		c.fail(err)
	}
	if ab == nil {
		ab = &Frame{Kind: KindAbort, Origin: int32(r.rank), Suspect: -1, Code: uint32(codeOf(err))}
		var pe *PeerError
		if errors.As(err, &pe) {
			ab.Suspect = int32(pe.Rank)
			ab.Call = pe.Call
		}
		ab.Reason = err.Error()
		if pe != nil {
			ab.Reason = pe.Err.Error()
		}
		if len(ab.Reason) > maxReasonBytes {
			ab.Reason = ab.Reason[:maxReasonBytes]
		}
	}
	ab.Generation = r.cfg.Generation
	for _, l := range []struct {
		c  Conn
		mu *sync.Mutex
	}{{r.out, &r.outMu}, {r.in, &r.inMu}} {
		f := *ab
		r.wg.Add(1)
		go func() { // may block on a stuck link until Close
			defer r.wg.Done()
			l.mu.Lock()
			defer l.mu.Unlock()
			l.c.Send(&f) //nolint:errcheck // best effort: the link may be what failed
		}()
	}
}

// readLoop receives every frame from one neighbour until the link fails.
func (r *Ring) readLoop(p *peer) {
	defer r.wg.Done()
	conn, fromLeft := r.in, true
	if p == &r.right {
		conn, fromLeft = r.out, false
	}
	var f, ack Frame
	defer f.release()
	for {
		f.release() // the previous frame's received buffers
		if err := conn.Recv(&f); err != nil {
			r.linkFailed(p, err)
			return
		}
		p.touch()
		if f.Generation != r.cfg.Generation {
			r.cfg.Metrics.staleFrame()
			continue
		}
		var err error
		switch {
		case f.Kind == KindHeartbeat:
			p.entered(f.Call)
		case f.Kind == KindAbort:
			r.remoteAbort(&f)
		case f.Kind == KindData && fromLeft:
			p.entered(f.Call)
			var ok bool
			if ok, err = r.onData(&f, &ack); !ok {
				return
			}
		case f.Kind == KindAck && !fromLeft:
			p.entered(f.Call)
			err = r.onAck(&f)
		default:
			err = fmt.Errorf("%w: unexpected frame kind %d", ErrProtocol, f.Kind)
		}
		if err != nil { // f.Call may be garbage: blame our current call
			r.mu.Lock()
			call := r.lastSeq
			r.mu.Unlock()
			if errors.Is(err, ErrClosed) { // our own link went away
				r.fail(r.selfErr(call, "ack", err), nil)
			} else {
				r.fail(r.peerErr(p, call, "recv", err), nil)
			}
		}
	}
}

// linkFailed handles a broken link: fatal unless the ring is closing. A
// link the current call no longer needs (a neighbour that finished the
// call and closed) spares that call and fails the next one.
func (r *Ring) linkFailed(p *peer, err error) {
	r.mu.Lock()
	closed, cur, call := r.closed, r.cur, r.lastSeq+1
	r.mu.Unlock()
	if closed {
		return
	}
	quiet := true
	if cur != nil && cur.needs(p == &r.left) {
		call, quiet = cur.seq, false
	}
	if errors.Is(err, ErrClosed) { // our own transport went away: we are the one leaving
		r.failAt(r.selfErr(call, "recv", err), nil, quiet)
		return
	}
	if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrUnauthenticated) {
		err = fmt.Errorf("%w: %w", ErrLinkBroken, err)
	}
	r.failAt(r.peerErr(p, call, "recv", err), nil, quiet)
}

// remoteAbort adopts a failure reported by another rank.
func (r *Ring) remoteAbort(f *Frame) {
	cause := &abortError{origin: int(f.Origin), reason: f.Reason, kind: errOfCode(errCode(f.Code))}
	pe := &PeerError{Rank: -1, Generation: r.cfg.Generation, Call: f.Call, Op: "abort", Err: cause}
	if s := int(f.Suspect); s >= 0 && s < r.n {
		pe.Rank, pe.ID, pe.Addr = s, r.cfg.Members[s].ID, r.cfg.Members[s].Addr
	}
	fwd := *f
	fwd.Payload = nil
	// An abort for a later call than ours comes from a rank that finished
	// ours: it spares the current call and fails the next.
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	r.failAt(pe, &fwd, cur == nil || f.Call > cur.seq)
}

// abortError is a failure another rank detected; it wraps ErrAborted and
// the sentinel of the original failure class.
type abortError struct {
	origin int
	reason string
	kind   error
}

func (e *abortError) Error() string {
	return fmt.Sprintf("%v: rank %d reports: %s", ErrAborted, e.origin, e.reason)
}

func (e *abortError) Unwrap() []error {
	if e.kind == nil {
		return []error{ErrAborted}
	}
	return []error{ErrAborted, e.kind}
}

// heartbeatLoop keeps one link's direction from going silent. It skips a
// beat while a send is in progress: that send is proof of life already.
func (r *Ring) heartbeatLoop(c Conn, mu *sync.Mutex) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	f := Frame{Kind: KindHeartbeat, Generation: r.cfg.Generation, Origin: int32(r.rank)}
	for {
		select {
		case <-r.closeCh:
			return
		case <-t.C:
		}
		if !mu.TryLock() {
			continue
		}
		r.mu.Lock()
		f.Call = r.lastSeq
		r.mu.Unlock()
		err := c.Send(&f)
		mu.Unlock()
		if err != nil {
			return // the read loop reports the broken link
		}
	}
}

// sendTo sends one frame on a link under its lock.
func sendTo(c Conn, mu *sync.Mutex, f *Frame) error {
	mu.Lock()
	defer mu.Unlock()
	return c.Send(f)
}
