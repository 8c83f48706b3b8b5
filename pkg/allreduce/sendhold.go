package allreduce

import (
	"sync"
	"time"

	"google.golang.org/grpc/mem"
)

// sendHolds lets the sender hand a transport a view of the caller's
// buffer instead of a copy. gRPC's SendMsg returns once a message is
// queued; its writer goroutine reads the bytes later, while copying them
// to the socket. So every payload sent without a copy is wrapped in a
// reference-counted mem.Buffer whose pool is the sendHolds: the sender
// holds one reference during Send, the transport another until it has
// written or dropped the bytes, and the last release (Put) tells the ring
// it may write to those elements again. The release is also the
// happens-before edge that makes that later write race-free.
//
// One sendHolds serves one call; a Put arriving after the call ended is
// harmless.
type sendHolds struct {
	mu      sync.Mutex
	held    map[*[]byte]int // payload still held by gRPC -> send slot
	changed chan struct{}   // closed and replaced on every release
}

func newSendHolds() *sendHolds {
	return &sendHolds{held: map[*[]byte]int{}, changed: make(chan struct{})}
}

// canWrap reports whether a payload of n bytes can be tracked: mem.NewBuffer
// turns smaller ones into untracked slices.
func canWrap(n int) bool { return !mem.IsBelowBufferPoolingThreshold(n) }

// wrap registers p, sent at slot, as held and returns it as a mem.Buffer
// with one reference, whose release is reported to h. canWrap(len(p))
// must hold.
func (h *sendHolds) wrap(p []byte, slot int) mem.Buffer {
	b := new([]byte)
	*b = p[:len(p):len(p)]
	h.mu.Lock()
	h.held[b] = slot
	h.mu.Unlock()
	return mem.NewBuffer(b, h)
}

// Get implements mem.BufferPool; gRPC only ever Puts wrapped payloads.
func (h *sendHolds) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

// Put implements mem.BufferPool: gRPC is done with a wrapped payload.
func (h *sendHolds) Put(b *[]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.held[b]; !ok {
		return
	}
	delete(h.held, b)
	close(h.changed)
	h.changed = make(chan struct{})
}

// holding reports whether gRPC still holds the payload of slot (all
// slots when slot < 0) and returns a channel closed on the next release.
func (h *sendHolds) holding(slot int) (bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.held {
		if slot < 0 || s == slot {
			return true, h.changed
		}
	}
	return false, nil
}

// wait blocks until gRPC released the payload of slot (every payload when
// slot < 0). It returns false if stop closed or timeout (if positive)
// passed first.
func (h *sendHolds) wait(slot int, stop <-chan struct{}, timeout time.Duration) bool {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		held, changed := h.holding(slot)
		if !held {
			return true
		}
		select {
		case <-changed:
		case <-stop:
			return false
		case <-expired:
			return false
		}
	}
}
