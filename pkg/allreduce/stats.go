package allreduce

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stats describes one AllReduce call from this rank's point of view. The
// wait times are what name stragglers and slow links: a rank that spends
// its time in WaitLeft is fed too slowly by its left neighbour; one that
// spends it in WaitRight is held back by its right neighbour's credits.
type Stats struct {
	Duration      time.Duration // wall time of the call
	WaitLeft      time.Duration // sender idle, waiting for data from the left neighbour
	WaitRight     time.Duration // sender blocked on the right neighbour (credits, flow control, final acks)
	BytesSent     int64         // payload bytes sent to the right neighbour
	BytesReceived int64         // payload bytes received from the left neighbour
	Segments      int           // data frames sent (equal to frames received)
	Left, Right   Member        // the neighbours the waits refer to
}

// Metrics accumulates counters over the calls of successive rings and the
// streams of a gRPC transport. It has no dependency on a metrics library:
// Snapshot returns plain numbers and WritePrometheus writes the Prometheus
// text exposition format, so a worker can serve it on /metrics as is or
// copy it into its own collectors. All methods are safe for concurrent use
// and on a nil *Metrics (metrics disabled).
type Metrics struct {
	callsOK, callsBad, callsErr   atomic.Int64
	callNanos                     atomic.Int64
	bytesSent, bytesReceived      atomic.Int64
	staleFrames                   atomic.Int64
	rejectedAuth, rejectedOther   atomic.Int64
	hellosEvicted, hellosTimedOut atomic.Int64

	mu   sync.Mutex
	wait map[waitKey]time.Duration
}

type waitKey struct{ side, peer string }

// MetricsSnapshot is a point-in-time copy of Metrics.
type MetricsSnapshot struct {
	CallsOK, CallsBad, CallsFailed int64         // calls by result
	CallTime                       time.Duration // summed wall time of all calls
	BytesSent, BytesReceived       int64         // payload bytes
	StaleFrames                    int64         // frames dropped: other generation or earlier call
	RejectedUnauthenticated        int64         // incoming streams refused for a bad cluster token
	RejectedOther                  int64         // incoming streams refused otherwise (stale generation, malformed)
	// HellosEvicted counts incoming connections closed before their hello
	// (TCP) or first authenticated stream (gRPC) to keep within the
	// transport's admission limits (MaxPendingHellos, ...PerSource).
	HellosEvicted int64
	// HellosTimedOut counts incoming connections closed for not
	// authenticating within the transport's HelloTimeout.
	HellosTimedOut int64
	// NeighborWait is the summed wait per "left/<peer ID>" or "right/<peer ID>".
	NeighborWait map[string]time.Duration
}

// NewMetrics returns empty counters.
func NewMetrics() *Metrics { return &Metrics{wait: map[waitKey]time.Duration{}} }

// Snapshot copies the counters.
func (m *Metrics) Snapshot() MetricsSnapshot {
	if m == nil {
		return MetricsSnapshot{}
	}
	s := MetricsSnapshot{
		CallsOK: m.callsOK.Load(), CallsBad: m.callsBad.Load(), CallsFailed: m.callsErr.Load(),
		CallTime:  time.Duration(m.callNanos.Load()),
		BytesSent: m.bytesSent.Load(), BytesReceived: m.bytesReceived.Load(),
		StaleFrames:             m.staleFrames.Load(),
		RejectedUnauthenticated: m.rejectedAuth.Load(), RejectedOther: m.rejectedOther.Load(),
		HellosEvicted: m.hellosEvicted.Load(), HellosTimedOut: m.hellosTimedOut.Load(),
		NeighborWait: map[string]time.Duration{},
	}
	m.mu.Lock()
	for k, v := range m.wait {
		s.NeighborWait[k.side+"/"+k.peer] = v
	}
	m.mu.Unlock()
	return s
}

// WritePrometheus writes the counters in the Prometheus text format.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	s := m.Snapshot()
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	p("# HELP allreduce_calls_total AllReduce calls by result.\n# TYPE allreduce_calls_total counter\n")
	p("allreduce_calls_total{result=\"ok\"} %d\nallreduce_calls_total{result=\"bad\"} %d\nallreduce_calls_total{result=\"error\"} %d\n", s.CallsOK, s.CallsBad, s.CallsFailed)
	p("# HELP allreduce_call_seconds_total Summed wall time of AllReduce calls.\n# TYPE allreduce_call_seconds_total counter\n")
	p("allreduce_call_seconds_total %g\n", s.CallTime.Seconds())
	p("# HELP allreduce_bytes_total Payload bytes moved by AllReduce.\n# TYPE allreduce_bytes_total counter\n")
	p("allreduce_bytes_total{direction=\"sent\"} %d\nallreduce_bytes_total{direction=\"received\"} %d\n", s.BytesSent, s.BytesReceived)
	p("# HELP allreduce_stale_frames_total Frames dropped for another generation or an earlier call.\n# TYPE allreduce_stale_frames_total counter\n")
	p("allreduce_stale_frames_total %d\n", s.StaleFrames)
	p("# HELP allreduce_rejected_streams_total Incoming ring streams refused.\n# TYPE allreduce_rejected_streams_total counter\n")
	p("allreduce_rejected_streams_total{reason=\"unauthenticated\"} %d\nallreduce_rejected_streams_total{reason=\"other\"} %d\n", s.RejectedUnauthenticated, s.RejectedOther)
	p("# HELP allreduce_dropped_connections_total Incoming connections closed before they authenticated.\n# TYPE allreduce_dropped_connections_total counter\n")
	p("allreduce_dropped_connections_total{reason=\"evicted\"} %d\nallreduce_dropped_connections_total{reason=\"timeout\"} %d\n", s.HellosEvicted, s.HellosTimedOut)
	p("# HELP allreduce_neighbor_wait_seconds_total Time spent waiting on a ring neighbour.\n# TYPE allreduce_neighbor_wait_seconds_total counter\n")
	keys := make([]string, 0, len(s.NeighborWait))
	for k := range s.NeighborWait {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var side, peer string
		for i := range k {
			if k[i] == '/' {
				side, peer = k[:i], k[i+1:]
				break
			}
		}
		p("allreduce_neighbor_wait_seconds_total{side=%q,peer=%q} %g\n", side, peer, s.NeighborWait[k].Seconds())
	}
	return err
}

// observeCall records one finished call.
func (m *Metrics) observeCall(st Stats, bad bool, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.callsErr.Add(1)
	case bad:
		m.callsBad.Add(1)
	default:
		m.callsOK.Add(1)
	}
	m.callNanos.Add(int64(st.Duration))
	m.bytesSent.Add(st.BytesSent)
	m.bytesReceived.Add(st.BytesReceived)
	m.mu.Lock()
	if m.wait == nil {
		m.wait = map[waitKey]time.Duration{}
	}
	m.wait[waitKey{"left", st.Left.ID}] += st.WaitLeft
	m.wait[waitKey{"right", st.Right.ID}] += st.WaitRight
	m.mu.Unlock()
}

// staleFrame counts one dropped frame.
func (m *Metrics) staleFrame() {
	if m != nil {
		m.staleFrames.Add(1)
	}
}

// rejectedStream counts one refused incoming stream.
func (m *Metrics) rejectedStream(unauthenticated bool) {
	if m == nil {
		return
	}
	if unauthenticated {
		m.rejectedAuth.Add(1)
	} else {
		m.rejectedOther.Add(1)
	}
}

// droppedHello counts one incoming connection the transport closed before
// it authenticated: for room (evicted or refused) or at its deadline.
func (m *Metrics) droppedHello(timedOut bool) {
	if m == nil {
		return
	}
	if timedOut {
		m.hellosTimedOut.Add(1)
	} else {
		m.hellosEvicted.Add(1)
	}
}
