package allreduce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Op is the reduction.
type Op uint8

// Reductions.
const (
	Sum  Op = iota // element-wise sum
	Mean           // element-wise sum divided by the number of ranks
)

// Options tune one AllReduce call. Every rank must pass the same Op and
// Compression and a buffer of the same length; a mismatch fails the call
// with ErrProtocol.
type Options struct {
	Op          Op
	Compression Compression
	// Bad marks this rank's contribution as unusable (NaN/Inf gradients).
	// The flag is OR-reduced alongside the data: every rank's Result has
	// AnyBad set from the same call, so all can skip the step together.
	Bad bool
}

// Result is the outcome of a successful AllReduce.
type Result struct {
	AnyBad bool  // some rank passed Options.Bad
	Stats  Stats // timing and volume of this rank's part
}

// call is the state of one AllReduce on one rank. Its mutex guards the
// caller's buffer: after fail, nothing touches buf again.
type call struct {
	seq   uint64
	buf   []float32
	opts  Options
	sched schedule
	total int // slots
	start time.Time

	mu           sync.Mutex
	recvNext     int // receive slots applied
	acked        int // send slots acknowledged by the right neighbour
	lastSend     time.Time
	allAcked     time.Time
	bad          bool
	err          error
	lastProgress time.Time
	stats        Stats

	// holds tracks the views of buf the transport may still read (nil
	// when the right link copies every payload; see sendHolds).
	holds *sendHolds

	sig      chan struct{} // wakes the sender (cap 1)
	failed   chan struct{} // closed on failure
	finished chan struct{} // closed on success
	sent     chan struct{} // closed when the sender is done with the call
}

// fail ends the call with err unless it already ended.
func (c *call) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.isDone() {
		return
	}
	c.err = err
	close(c.failed)
}

// needs reports whether the running call still expects frames from the
// left (data) or right (acks) neighbour.
func (c *call) needs(left bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.isDone() {
		return false
	}
	if left {
		return c.recvNext < c.total
	}
	return c.acked < c.total
}

// isDone reports success; c.mu held. Every slot acked implies every
// slot sent: the sender touches the buffer no more.
func (c *call) isDone() bool {
	return c.recvNext == c.total && c.acked == c.total
}

// progressed records progress and wakes waiters; c.mu held.
func (c *call) progressed() {
	c.lastProgress = time.Now()
	select {
	case c.sig <- struct{}{}:
	default:
	}
	if c.err == nil && c.isDone() {
		close(c.finished)
	}
}

// waitUntil blocks until cond (evaluated under c.mu) holds; false if the
// call failed first.
func (c *call) waitUntil(cond func() bool) bool {
	for {
		c.mu.Lock()
		ok, failed := cond(), c.err != nil
		c.mu.Unlock()
		if failed {
			return false
		}
		if ok {
			return true
		}
		select {
		case <-c.sig:
		case <-c.failed:
		}
	}
}

// AllReduce reduces buf element-wise across all ranks of the ring, in
// place: on success every rank holds the same bytes. It blocks until the
// call completes, ctx ends, or a peer is blamed (see Config.Timeout); on
// error buf holds partial results and the ring is dead (Err, ErrRingFailed).
// Calls on one Ring are serialised; all ranks must make the same calls in
// the same order. Invalid Options (unknown Op or Compression) are a
// programming error and panic.
func (r *Ring) AllReduce(ctx context.Context, buf []float32, opts Options) (Result, error) {
	r.callMu.Lock()
	defer r.callMu.Unlock()
	if opts.Op > Mean || opts.Compression > BF16 {
		panic(fmt.Sprintf("allreduce: invalid options %+v", opts))
	}
	if r.n == 1 {
		if err := r.Err(); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrRingFailed, err)
		}
		return Result{AnyBad: opts.Bad}, nil
	}
	seg := max(1, r.cfg.SegmentBytes/4)
	c := &call{buf: buf, opts: opts, sched: newSchedule(r.n, r.rank, len(buf), seg), start: time.Now(),
		sig: make(chan struct{}, 1), failed: make(chan struct{}), finished: make(chan struct{}),
		sent: make(chan struct{})}
	c.total, c.lastProgress = c.sched.slots(), c.start
	c.stats.Left, c.stats.Right = r.left.Member, r.right.Member
	if zc, ok := r.out.(zeroCopyConn); ok && zc.zeroCopy() && opts.Compression == None && littleEndian {
		c.holds = newSendHolds()
	}
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return Result{}, fmt.Errorf("%w: %w", ErrRingFailed, err)
	}
	r.lastSeq++
	c.seq = r.lastSeq
	r.cur = c
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()

	r.wg.Add(1)
	go r.sendLoop(c)
	err := r.wait(ctx, c)
	if err == nil {
		// Every slot is acknowledged, so the sender is past its last send;
		// wait for it to account for that send before reading the stats.
		<-c.sent
	}
	if err2 := r.quiesce(c, err != nil); err == nil {
		err = err2
	}
	c.mu.Lock()
	st, bad := c.stats, c.bad || opts.Bad
	if c.allAcked.After(c.lastSend) && !c.lastSend.IsZero() {
		st.WaitRight += c.allAcked.Sub(c.lastSend) // the last acks
	}
	c.mu.Unlock()
	st.Duration = time.Since(c.start)
	r.cfg.Metrics.observeCall(st, bad, err)
	if err != nil {
		return Result{Stats: st}, err
	}
	return Result{AnyBad: bad, Stats: st}, nil
}

// wait blocks until c ends, checking the peers on every tick.
func (r *Ring) wait(ctx context.Context, c *call) error {
	tick := time.NewTicker(r.cfg.HeartbeatInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-c.finished:
			return nil
		case <-c.failed:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.err
		case <-ctx.Done():
			err := r.blame(c, "wait", fmt.Errorf("%w: %w", errCanceled, ctx.Err()))
			r.fail(err, nil)
			c.fail(err) // even if the ring was already dead
		case now := <-tick.C:
			if err := r.check(c, now); err != nil {
				r.fail(err, nil)
				c.fail(err)
			}
		}
	}
}

// blame attributes a stalled call to the neighbour it is waiting on.
func (r *Ring) blame(c *call, op string, err error) *PeerError {
	c.mu.Lock()
	needLeft := c.recvNext < c.total
	c.mu.Unlock()
	if needLeft {
		return r.peerErr(&r.left, c.seq, op, err)
	}
	return r.peerErr(&r.right, c.seq, op, err)
}

// check applies the timeouts of Config.Timeout to a running call.
func (r *Ring) check(c *call, now time.Time) error {
	c.mu.Lock()
	needLeft, needRight, last := c.recvNext < c.total, c.acked < c.total, c.lastProgress
	c.mu.Unlock()
	half := r.cfg.Timeout / 2
	silent := func(p *peer) time.Duration {
		seen := time.Unix(0, p.lastSeen.Load())
		if seen.Before(c.start) {
			seen = c.start
		}
		return now.Sub(seen)
	}
	for _, s := range []struct {
		need bool
		p    *peer
		op   string
	}{{needLeft, &r.left, "recv"}, {needRight, &r.right, "send"}} {
		if !s.need {
			continue
		}
		if d := silent(s.p); d > half {
			return r.peerErr(s.p, c.seq, s.op, fmt.Errorf("%w: nothing received for %v", ErrPeerTimeout, d.Round(time.Millisecond)))
		}
		if got := s.p.lastCall.Load(); got < c.seq && now.Sub(c.start) > half {
			return r.peerErr(s.p, c.seq, s.op, fmt.Errorf("%w: peer at call %d after %v", ErrPeerNotReady, got, now.Sub(c.start).Round(time.Millisecond)))
		}
	}
	if d := now.Sub(last); d > r.cfg.Timeout {
		return r.blame(c, "wait", fmt.Errorf("%w: nothing moved for %v", ErrNoProgress, d.Round(time.Millisecond)))
	}
	return nil
}

// sendLoop streams this rank's slots to the right neighbour, each as soon
// as its input is ready and a send buffer is free.
func (r *Ring) sendLoop(c *call) {
	defer r.wg.Done()
	defer close(c.sent)
	s, w := c.sched, r.cfg.Window
	comp := c.opts.Compression
	slotBytes := s.seg * comp.elemSize()
	f := Frame{Kind: KindData, Generation: r.cfg.Generation, Call: c.seq, Origin: int32(r.rank),
		Total: uint64(len(c.buf))}
	for t := 0; t < c.total; t++ {
		t0 := time.Now()
		dep := s.dependsOn(t)
		if !c.waitUntil(func() bool { return c.recvNext > dep }) {
			return
		}
		t1 := time.Now()
		if !c.waitUntil(func() bool { return c.acked > t-w }) {
			return
		}
		t2 := time.Now()
		lo, hi := s.sendRange(t)
		size := (hi - lo) * comp.elemSize()
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		if c.holds != nil && canWrap(size) {
			// No copy: the transport reads the caller's elements, which
			// nothing writes until the hold is released (see onData).
			f.Payload = asBytes(c.buf[lo:hi])
			f.tx = c.holds.wrap(f.Payload, t)
		} else {
			if len(r.arena) < w*slotBytes {
				r.arena = make([]byte, w*slotBytes)
			}
			f.Payload = r.arena[(t%w)*slotBytes:][:size]
			encode(comp, f.Payload, c.buf[lo:hi])
		}
		f.Flags = uint32(comp) << flagCompShift
		if c.bad || c.opts.Bad {
			f.Flags |= flagBad
		}
		c.mu.Unlock()
		f.Slot = uint32(t)
		err := sendTo(r.out, &r.outMu, &f)
		if f.tx != nil {
			f.tx.Free() // the sender's reference; the transport keeps its own
			f.tx = nil
		}
		if err != nil {
			if errors.Is(err, ErrClosed) { // our own link went away: we are the one leaving
				r.fail(r.selfErr(c.seq, "send", err), nil)
			} else {
				r.fail(r.peerErr(&r.right, c.seq, "send", fmt.Errorf("%w: %w", ErrLinkBroken, err)), nil)
			}
			return
		}
		c.mu.Lock()
		c.lastSend = time.Now()
		c.stats.WaitLeft += t1.Sub(t0)
		c.stats.WaitRight += t2.Sub(t1) + c.lastSend.Sub(t2) // credits, then flow control
		c.stats.BytesSent += int64(size)
		c.stats.Segments++
		c.mu.Unlock()
	}
}

// onData applies a data frame from the left neighbour, first waiting for
// the local call it belongs to if the neighbour is ahead. It returns false
// when the ring closed meanwhile.
func (r *Ring) onData(f *Frame, ack *Frame) (bool, error) {
	var c *call
	for {
		r.mu.Lock()
		cur, changed, closed, last := r.cur, r.changed, r.closed, r.lastSeq
		r.mu.Unlock()
		switch {
		case closed:
			return false, nil
		case f.Call <= last && (cur == nil || f.Call != cur.seq):
			r.cfg.Metrics.staleFrame()
			return true, nil
		case f.Call > last+1:
			return true, fmt.Errorf("%w: data for call %d while at call %d", ErrProtocol, f.Call, last)
		case cur != nil && f.Call == cur.seq:
			c = cur
		}
		if c != nil {
			break
		}
		select { // the neighbour is one call ahead: wait for ours to start
		case <-changed:
		case <-r.closeCh:
			return false, nil
		}
	}
	if !r.awaitRelease(c, f) {
		return true, nil // the call failed or the ring closed
	}
	applied, err := c.apply(f)
	if err != nil || !applied {
		return true, err
	}
	*ack = Frame{Kind: KindAck, Generation: r.cfg.Generation, Call: c.seq, Slot: f.Slot, Origin: int32(r.rank)}
	if err := sendTo(r.in, &r.inMu, ack); err != nil {
		if errors.Is(err, ErrClosed) {
			return true, fmt.Errorf("ack: %w", err) // readLoop blames this rank
		}
		return true, fmt.Errorf("%w: ack: %w", ErrLinkBroken, err)
	}
	return true, nil
}

// awaitRelease waits until the transport released the send whose
// elements the data frame f, the next slot of c, overwrites. It reports
// false if the call failed (or the ring closed) first.
func (r *Ring) awaitRelease(c *call, f *Frame) bool {
	if c.holds == nil {
		return true
	}
	c.mu.Lock()
	next := c.recvNext
	c.mu.Unlock()
	t := int(f.Slot)
	if t != next || t >= c.total {
		return true // apply rejects the frame
	}
	u := c.sched.overwrites(t)
	return u < 0 || c.holds.wait(u, c.failed, 0)
}

// quiesce returns once the transport reads c.buf no more, so that the
// caller may write to it again. After a success that takes a moment:
// every payload was delivered, and gRPC releases each right after
// writing it. A failed call waits a little, then closes the outgoing link
// (the ring is dead anyway), which stops gRPC's writer for good. Payloads
// still held a Timeout after a success fail the call: the caller could
// otherwise change bytes that are still being sent.
func (r *Ring) quiesce(c *call, failed bool) error {
	if c.holds == nil {
		return nil
	}
	var err error
	if !failed {
		if c.holds.wait(-1, nil, r.cfg.Timeout) {
			return nil
		}
		err = r.peerErr(&r.right, c.seq, "send", fmt.Errorf("%w: sent data not released by the transport after %v", ErrLinkBroken, r.cfg.Timeout))
		r.fail(err, nil)
	}
	if !c.holds.wait(-1, nil, r.cfg.HeartbeatInterval) {
		r.out.Close()
		// Close returns once gRPC's writer has stopped; collect what it
		// releases on the way out.
		c.holds.wait(-1, nil, r.cfg.HeartbeatInterval)
	}
	return err
}

// apply adds or copies one received slot into the buffer.
func (c *call) apply(f *Frame) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return false, nil
	}
	s, comp := c.sched, c.opts.Compression
	t := c.recvNext
	lo, hi := 0, 0
	if t < c.total {
		lo, hi = s.recvRange(t)
	}
	switch {
	case t >= c.total || int(f.Slot) != t:
		return false, fmt.Errorf("%w: got slot %d, expected %d of %d", ErrProtocol, f.Slot, t, c.total)
	case f.Total != uint64(len(c.buf)):
		return false, fmt.Errorf("%w: peer reduces %d elements, this rank %d", ErrProtocol, f.Total, len(c.buf))
	case f.compression() != comp:
		return false, fmt.Errorf("%w: peer compresses with %v, this rank with %v", ErrProtocol, f.compression(), comp)
	case f.payloadLen() != (hi-lo)*comp.elemSize():
		return false, fmt.Errorf("%w: slot %d has %d payload bytes, want %d", ErrProtocol, t, f.payloadLen(), (hi-lo)*comp.elemSize())
	}
	c.bad = c.bad || f.Flags&flagBad != 0
	region := c.buf[lo:hi]
	applyPayload(comp, region, f, s.reduces(t))
	if s.final(t) {
		if c.opts.Op == Mean {
			n := float32(s.ranks)
			for i := range region {
				region[i] /= n
			}
		}
		roundTrip(comp, region) // keep exactly what the others will decode
	}
	c.recvNext++
	c.stats.BytesReceived += int64(f.payloadLen())
	c.progressed()
	return true, nil
}

// onAck records the right neighbour's acknowledgement of one slot.
func (r *Ring) onAck(f *Frame) error {
	r.mu.Lock()
	c := r.cur
	r.mu.Unlock()
	if c == nil || f.Call != c.seq {
		r.cfg.Metrics.staleFrame()
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil
	}
	if int(f.Slot) != c.acked || c.acked >= c.total {
		return fmt.Errorf("%w: ack for slot %d, expected %d", ErrProtocol, f.Slot, c.acked)
	}
	c.acked++
	if c.acked == c.total {
		c.allAcked = time.Now()
	}
	c.progressed()
	return nil
}

// applyPayload adds (reduce) or copies the frame's payload into dst. The
// payload may come in pieces that split an element; those bytes are
// carried over.
func applyPayload(comp Compression, dst []float32, f *Frame, reduce bool) {
	op := decode
	if reduce {
		op = accumulate
	}
	es := comp.elemSize()
	var carry [4]byte
	nc, i := 0, 0
	f.pieces(func(p []byte) {
		if nc > 0 {
			k := copy(carry[nc:es], p)
			nc, p = nc+k, p[k:]
			if nc < es {
				return
			}
			op(comp, dst[i:i+1], carry[:es])
			i, nc = i+1, 0
		}
		whole := len(p) / es
		op(comp, dst[i:i+whole], p[:whole*es])
		i += whole
		nc = copy(carry[:], p[whole*es:])
	})
}
