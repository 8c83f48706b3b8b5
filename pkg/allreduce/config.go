package allreduce

import (
	"fmt"
	"time"
)

// Member is one rank of a ring. Members are listed in ring order: rank i
// sends to rank i+1 and receives from rank i-1 (mod N).
type Member struct {
	ID   string // stable worker identity, unique in the ring
	Addr string // address of the worker's transport listener
}

// Defaults used by Config.EnsureDefaults.
const (
	// DefaultTimeout bounds how long a call waits for a silent or stuck peer:
	// long enough to ride out a GC pause or a busy scheduler, short enough
	// that a training step does not stall noticeably.
	DefaultTimeout = 5 * time.Second
	// DefaultJoinTimeout bounds ring formation: workers of a new generation
	// start within seconds of each other, but a restarted one may be slow.
	DefaultJoinTimeout = 30 * time.Second
	// DefaultSegmentBytes is the float32 size of one pipelined segment:
	// large enough to amortise per-message costs (measured best from 1 to
	// 2 MiB on loopback), small enough that a 10 MB chunk is split into
	// several segments that keep every link busy.
	DefaultSegmentBytes = 1 << 20
	// DefaultWindow is how many segments a rank may have in flight to its
	// right neighbour before it waits for acknowledgements; it bounds send
	// memory to Window*SegmentBytes.
	DefaultWindow = 8
)

// Config describes one rank's view of a ring generation.
type Config struct {
	// Rank is this process's index in Members.
	Rank int
	// Members is the ordered ring. Every rank must pass the same list.
	Members []Member
	// Generation identifies this ring incarnation; it must grow each time
	// a ring is re-formed. Frames of other generations are dropped.
	Generation uint64
	// Timeout bounds every wait on a peer (default DefaultTimeout): a
	// neighbour silent (no heartbeat) or absent from the call for Timeout/2
	// is blamed, and a call with no progress for Timeout fails.
	Timeout time.Duration
	// HeartbeatInterval is how often idle links send a heartbeat (default
	// Timeout/8, so a healthy link misses four before being blamed).
	HeartbeatInterval time.Duration
	// JoinTimeout bounds New when the context has no earlier deadline
	// (default DefaultJoinTimeout).
	JoinTimeout time.Duration
	// SegmentBytes is the float32 size of one pipelined segment (default
	// DefaultSegmentBytes); compression halves what goes on the wire.
	SegmentBytes int
	// Window is the number of unacknowledged segments allowed in flight
	// (default DefaultWindow).
	Window int
	// Metrics, when set, receives per-call counters (see NewMetrics).
	Metrics *Metrics
}

// EnsureDefaults fills zero fields with their documented defaults.
func (c *Config) EnsureDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.Timeout / 8
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
}

// Validate reports the first problem with c, after defaults are applied to
// a copy; the error wraps ErrInvalidConfig.
func (c *Config) Validate() error {
	d := *c
	d.EnsureDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case len(d.Members) == 0:
		return bad("no members")
	case d.Rank < 0 || d.Rank >= len(d.Members):
		return bad("rank %d out of range [0,%d)", d.Rank, len(d.Members))
	case d.Timeout < 0 || d.HeartbeatInterval < 0 || d.JoinTimeout < 0:
		return bad("negative duration")
	case d.HeartbeatInterval >= d.Timeout/2:
		return bad("heartbeat interval %v must be below Timeout/2 (%v)", d.HeartbeatInterval, d.Timeout/2)
	case d.SegmentBytes < 8 || d.SegmentBytes > maxSegmentBytes:
		return bad("segment bytes %d out of range [8,%d]", d.SegmentBytes, maxSegmentBytes)
	case d.Window < 1:
		return bad("window %d < 1", d.Window)
	}
	seen := make(map[string]int, len(d.Members))
	for i, m := range d.Members {
		if m.ID == "" {
			return bad("member %d has no ID", i)
		}
		if j, dup := seen[m.ID]; dup {
			return bad("members %d and %d share ID %q", j, i, m.ID)
		}
		seen[m.ID] = i
		if len(d.Members) > 1 && m.Addr == "" {
			return bad("member %d (%s) has no address", i, m.ID)
		}
	}
	return nil
}

// maxSegmentBytes caps segments so a frame always fits the transport's
// message limit (MaxFrameBytes).
const maxSegmentBytes = 16 << 20
