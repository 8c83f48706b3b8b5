package coordinator

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/worker"
)

// Three workers train together; afterwards each one's /metrics accounts
// for its steps (step, compute and allreduce times of every completed
// step), names its two ring neighbours in the waits, counts the bytes it
// moved, and shows the final state, the same on every worker.
func TestWorkerMetricsInCluster(t *testing.T) {
	const steps = 30
	jc := testJob(testCorpus(t), steps)
	jc.Cluster.MinWorkers = 3 // all three from the first step: every ring has two neighbours
	n := newMemNet(t)
	c := n.coordinator(t, jc, t.TempDir(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	ws := map[string]*worker.Worker{}
	for _, id := range []string{"w0", "w1", "w2"} {
		ws[id] = n.worker(t, ctx, &wg, id, nil)
	}
	select {
	case <-c.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the run did not finish (%d steps)", len(c.History()))
	}
	wg.Wait()
	var crc uint32
	var sent, received float64 // what one rank sends, its right neighbour receives
	for id, w := range ws {
		rec := httptest.NewRecorder()
		w.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		s, err := worker.ReadMetrics(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		done := uint64(s.StepsOK + s.Skipped)
		if s.Worker != id || done == 0 || s.Step.Count != done || s.Compute.Count != done || s.Allreduce.Count != done {
			t.Errorf("%s: worker %q, %v ok + %v skipped steps, but %d step, %d compute and %d allreduce times", id, s.Worker,
				s.StepsOK, s.Skipped, s.Step.Count, s.Compute.Count, s.Allreduce.Count)
		}
		if s.Step.Mean() <= 0 || s.Compute.Sum+s.Allreduce.Sum > s.Step.Sum {
			t.Errorf("%s: step %v, compute %v + allreduce %v", id, s.Step.Sum, s.Compute.Sum, s.Allreduce.Sum)
		}
		if s.RingSize != 3 || len(s.Waits) != 2 || s.Waits[0].Side != "left" || s.Waits[1].Side != "right" ||
			s.Waits[0].Peer == id || s.Waits[1].Peer == id || s.Waits[0].Peer == s.Waits[1].Peer || ws[s.Waits[0].Peer] == nil {
			t.Errorf("%s: ring of %d, waits %+v: want one on each of its two neighbours", id, s.RingSize, s.Waits)
		}
		if s.BytesSent <= 0 || s.BytesReceived <= 0 {
			t.Errorf("%s: sent %v bytes, received %v", id, s.BytesSent, s.BytesReceived)
		}
		sent, received = sent+s.BytesSent, received+s.BytesReceived
		if s.StateStep != steps || s.StateCRC == 0 || (crc != 0 && s.StateCRC != crc) {
			t.Errorf("%s: state of step %d crc %08x, want step %d and the others' crc %08x", id, s.StateStep, s.StateCRC, steps, crc)
		}
		crc = s.StateCRC
	}
	if sent != received {
		t.Errorf("the ring sent %v bytes and received %v", sent, received)
	}
}
