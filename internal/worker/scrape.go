package worker

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Timing is a histogram's count and sum of seconds.
type Timing struct {
	Count uint64
	Sum   float64 // seconds
}

// Mean is the mean observation (0 when none).
func (t Timing) Mean() time.Duration {
	if t.Count == 0 {
		return 0
	}
	return time.Duration(t.Sum / float64(t.Count) * float64(time.Second))
}

// NeighborWait is the time one rank waited on one ring neighbour.
type NeighborWait struct {
	Side string // "left": waiting for its data; "right": waiting for its credits
	Peer string // the neighbour's worker id
	Wait time.Duration
}

// MetricsSummary is what a worker's /metrics says about its steps and its
// links (ReadMetrics).
type MetricsSummary struct {
	Worker                      string
	StepsOK, Skipped, Failed    float64
	Step, Compute, Allreduce    Timing
	Sync                        Timing
	Generation                  uint64
	Rank, RingSize              int
	StateStep                   int64
	StateCRC                    uint32
	BytesSent, BytesReceived    float64
	Waits                       []NeighborWait // by side, then peer
	AllreduceCalls, FailedCalls float64
}

// Wait is the summed wait on peer on side ("left" or "right").
func (s MetricsSummary) Wait(side, peer string) time.Duration {
	for _, w := range s.Waits {
		if w.Side == side && w.Peer == peer {
			return w.Wait
		}
	}
	return 0
}

// ReadMetrics reads a worker's /metrics (the Prometheus text format) into
// a summary. Series it does not know are ignored; a body that is not the
// text format, or one without a worker's metrics, is an error.
func ReadMetrics(r io.Reader) (MetricsSummary, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return MetricsSummary{}, fmt.Errorf("worker metrics: %w", err)
	}
	var s MetricsSummary
	if _, ok := fams["recur_worker_steps_total"]; !ok {
		return s, fmt.Errorf("worker metrics: no recur_worker_steps_total: not a worker's /metrics")
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s.add(name, m)
		}
	}
	sort.Slice(s.Waits, func(i, j int) bool {
		if s.Waits[i].Side != s.Waits[j].Side {
			return s.Waits[i].Side < s.Waits[j].Side
		}
		return s.Waits[i].Peer < s.Waits[j].Peer
	})
	return s, nil
}

// add folds one series of family name into s.
func (s *MetricsSummary) add(name string, m *dto.Metric) {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if w := labels["worker"]; w != "" {
		s.Worker = w
	}
	v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue() // the one that is set
	timing := func() Timing {
		return Timing{Count: m.GetHistogram().GetSampleCount(), Sum: m.GetHistogram().GetSampleSum()}
	}
	switch name {
	case "recur_worker_steps_total":
		switch labels["result"] {
		case "ok":
			s.StepsOK = v
		case "skipped":
			s.Skipped = v
		case "failed":
			s.Failed = v
		}
	case "recur_worker_step_seconds":
		s.Step = timing()
	case "recur_worker_compute_seconds":
		s.Compute = timing()
	case "recur_worker_allreduce_seconds":
		s.Allreduce = timing()
	case "recur_worker_sync_seconds":
		s.Sync = timing()
	case "recur_worker_generation":
		s.Generation = uint64(clampFloat(v, 0, 1<<62))
	case "recur_worker_rank":
		s.Rank = int(clampFloat(v, -1, math.MaxInt32))
	case "recur_worker_ring_size":
		s.RingSize = int(clampFloat(v, 0, math.MaxInt32))
	case "recur_worker_state_step":
		s.StateStep = int64(clampFloat(v, -1, 1<<62))
	case "recur_worker_state_crc32c":
		s.StateCRC = uint32(clampFloat(v, 0, math.MaxUint32))
	case "recur_allreduce_bytes_total":
		if labels["direction"] == "sent" {
			s.BytesSent = v
		} else if labels["direction"] == "received" {
			s.BytesReceived = v
		}
	case "recur_allreduce_calls_total":
		s.AllreduceCalls += v
		if labels["result"] == "error" {
			s.FailedCalls = v
		}
	case "recur_allreduce_neighbor_wait_seconds_total":
		s.Waits = append(s.Waits, NeighborWait{Side: labels["side"], Peer: labels["peer"],
			Wait: time.Duration(clampFloat(v, 0, maxSeconds) * float64(time.Second))})
	}
}

// maxSeconds bounds a wait read from a body (about 31 years), well within
// a time.Duration.
const maxSeconds = 1e9

// clampFloat bounds v to [lo, hi] (NaN gives lo), so that a hostile or
// damaged body cannot overflow a conversion.
func clampFloat(v, lo, hi float64) float64 {
	if math.IsNaN(v) || v < lo {
		return lo
	}
	return min(v, hi)
}
