package worker

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recur-ml/recur/pkg/allreduce"
)

// Metrics are a worker's Prometheus metrics: what its steps cost and where
// its allreduce waited, so that an operator comparing workers can tell a
// slow worker (its compute time stands out) from a slow link (the workers
// on either side of it wait on it: recur_allreduce_neighbor_wait_seconds_total
// with its id as the peer grows on them). Every series carries the worker's
// id as the label worker. The coordinator's /metrics (internal/coordinator)
// has the cluster's view: steps, loss, members.
type Metrics struct {
	reg  *prometheus.Registry
	ring *allreduce.Metrics // fed by every ring generation and the ring transport

	steps            *prometheus.CounterVec
	stepSeconds      prometheus.Histogram
	computeSeconds   prometheus.Histogram
	allreduceSeconds prometheus.Histogram
	syncSeconds      prometheus.Histogram
	busbw            prometheus.Gauge
	generation       prometheus.Gauge
	rank             prometheus.Gauge
	ringSize         prometheus.Gauge
	stateStep        prometheus.Gauge
	stateCRC         prometheus.Gauge
	bucketReady      *prometheus.HistogramVec
	bucketAllreduce  *prometheus.HistogramVec
}

// stepBuckets are the histogram bounds of step, compute and allreduce
// times: 1 ms to about 33 s, doubling, which covers a tiny model on
// loopback and a large one on a slow link.
var stepBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// maxBucketLabel bounds the bucket label's values (the series a worker
// keeps): buckets past it share the last label.
const maxBucketLabel = 63

// NewMetrics registers a worker's metrics, labelled with its id, in a
// fresh registry.
func NewMetrics(id string) *Metrics {
	labels := prometheus.Labels{"worker": id}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "recur", Subsystem: "worker", Name: name, Help: help, ConstLabels: labels})
	}
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "recur", Subsystem: "worker", Name: name, Help: help,
			ConstLabels: labels, Buckets: stepBuckets})
	}
	hv := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "recur", Subsystem: "worker", Name: name, Help: help,
			ConstLabels: labels, Buckets: stepBuckets}, []string{"bucket"})
	}
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		ring: allreduce.NewMetrics(),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "recur", Subsystem: "worker", Name: "steps_total",
			Help: "Steps this worker ran, by result: ok, skipped (non-finite values, skipped on every rank) or failed (dropped; the ring re-forms).", ConstLabels: labels},
			[]string{"result"}),
		stepSeconds:      h("step_seconds", "Wall time of a completed step on this worker: data, compute and allreduce."),
		computeSeconds:   h("compute_seconds", "Forward and backward time of a completed step (before the allreduce)."),
		allreduceSeconds: h("allreduce_seconds", "Allreduce time of a completed step (every call of the step)."),
		syncSeconds:      h("sync_seconds", "Time to fetch the state from a peer when a generation forms (state transfer)."),
		busbw:            g("allreduce_busbw_bytes_per_second", "Allreduce bus bandwidth of the last step (float32 bytes, as nccl-tests)."),
		generation:       g("generation", "The ring generation of the last plan this worker ran."),
		rank:             g("rank", "This worker's rank in its ring generation."),
		ringSize:         g("ring_size", "Members of this worker's ring generation."),
		stateStep:        g("state_step", "The step of the state this worker holds."),
		stateCRC:         g("state_crc32c", "CRC-32C of the parameters and carried states this worker holds at state_step: members holding the same step must agree."),
		bucketReady: hv("bucket_ready_seconds",
			"When backward handed a gradient bucket to the allreduce, from the step's start (steps whose allreduce overlaps backward)."),
		bucketAllreduce: hv("bucket_allreduce_seconds", "Allreduce time of one gradient bucket, from hand-over until reduced."),
	}
	m.reg.MustRegister(m.steps, m.stepSeconds, m.computeSeconds, m.allreduceSeconds, m.syncSeconds, m.busbw, m.generation, m.rank, m.ringSize,
		m.stateStep, m.stateCRC, m.bucketReady, m.bucketAllreduce, newRingCollector(m.ring, labels))
	for _, r := range []string{"ok", "skipped", "failed"} {
		m.steps.WithLabelValues(r) // present at 0 from the start
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Ring is the allreduce counters the worker's rings and ring transport
// feed: neighbour waits, bytes, calls.
func (m *Metrics) Ring() *allreduce.Metrics { return m.ring }

// observeStep records a completed step that took took on this worker.
func (m *Metrics) observeStep(res stepResult, took time.Duration) {
	result := "ok"
	if res.skipped {
		result = "skipped"
	}
	m.steps.WithLabelValues(result).Inc()
	m.stepSeconds.Observe(took.Seconds())
	m.computeSeconds.Observe(res.compute.Seconds())
	m.allreduceSeconds.Observe(res.allreduce.Seconds())
	m.busbw.Set(res.busbw)
}

// observeFailedStep counts a step dropped by a failure.
func (m *Metrics) observeFailedStep() { m.steps.WithLabelValues("failed").Inc() }

// observeSync records a state fetched from a peer.
func (m *Metrics) observeSync(took time.Duration) { m.syncSeconds.Observe(took.Seconds()) }

// observeRing records the ring generation the worker runs in.
func (m *Metrics) observeRing(generation uint64, rank, size int) {
	m.generation.Set(float64(generation))
	m.rank.Set(float64(rank))
	m.ringSize.Set(float64(size))
}

// observeState records the state the worker reports holding.
func (m *Metrics) observeState(step int64, crc uint32) {
	m.stateStep.Set(float64(step))
	m.stateCRC.Set(float64(crc))
}

// observeBuckets records the ring calls of one step (bucketTiming, in
// the order backward produced them, the tail last): when each was ready
// and how long from then until it was reduced on this rank (its wait for
// the calls before it included). The tail is labelled "tail".
func (m *Metrics) observeBuckets(b []bucketTiming) {
	for i, t := range b {
		l := strconv.Itoa(min(i, maxBucketLabel))
		if t.Tail {
			l = "tail"
		}
		m.bucketReady.WithLabelValues(l).Observe(t.Ready.Seconds())
		m.bucketAllreduce.WithLabelValues(l).Observe((t.Start + t.Reduce - t.Ready).Seconds())
	}
}

// ringCollector exports the ring's counters (allreduce.Metrics) at scrape
// time.
type ringCollector struct {
	m                                                         *allreduce.Metrics
	calls, callSeconds, bytes, wait, stale, rejected, dropped *prometheus.Desc
}

func newRingCollector(m *allreduce.Metrics, labels prometheus.Labels) ringCollector {
	d := func(name, help string, vars ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("recur", "allreduce", name), help, vars, labels)
	}
	return ringCollector{m: m,
		calls:       d("calls_total", "Allreduce calls by result: ok, bad (a rank flagged non-finite values) or error.", "result"),
		callSeconds: d("call_seconds_total", "Summed wall time of allreduce calls."),
		bytes:       d("bytes_total", "Payload bytes this rank sent to its right neighbour and received from its left one.", "direction"),
		wait: d("neighbor_wait_seconds_total", "Time this rank waited on a ring neighbour: side left is waiting for its data, "+
			"side right is waiting for its credits (it reads slowly); peer is the neighbour's worker id.", "side", "peer"),
		stale:    d("stale_frames_total", "Ring frames dropped for another generation or an earlier call."),
		rejected: d("rejected_streams_total", "Incoming ring links refused, by reason: unauthenticated or other.", "reason"),
		dropped:  d("dropped_connections_total", "Incoming ring connections closed before they authenticated, by reason: evicted or timeout.", "reason"),
	}
}

// Describe sends the descriptors of every ring series.
func (c ringCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.calls, c.callSeconds, c.bytes, c.wait, c.stale, c.rejected, c.dropped} {
		ch <- d
	}
}

// Collect sends a snapshot of the ring's counters.
func (c ringCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Snapshot()
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	counter(c.calls, float64(s.CallsOK), "ok")
	counter(c.calls, float64(s.CallsBad), "bad")
	counter(c.calls, float64(s.CallsFailed), "error")
	counter(c.callSeconds, s.CallTime.Seconds())
	counter(c.bytes, float64(s.BytesSent), "sent")
	counter(c.bytes, float64(s.BytesReceived), "received")
	for k, v := range s.NeighborWait {
		if side, peer := splitWaitKey(k); peer != "" { // a ring of one has no neighbours
			counter(c.wait, v.Seconds(), side, peer)
		}
	}
	counter(c.stale, float64(s.StaleFrames))
	counter(c.rejected, float64(s.RejectedUnauthenticated), "unauthenticated")
	counter(c.rejected, float64(s.RejectedOther), "other")
	counter(c.dropped, float64(s.HellosEvicted), "evicted")
	counter(c.dropped, float64(s.HellosTimedOut), "timeout")
}

// splitWaitKey splits a MetricsSnapshot.NeighborWait key, "side/peer".
func splitWaitKey(k string) (side, peer string) {
	for i := range k {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}
