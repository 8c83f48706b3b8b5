package worker

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/pkg/allreduce"
)

// scrape reads m's /metrics through its handler.
func scrape(t *testing.T, m *Metrics) MetricsSummary {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	s, err := ReadMetrics(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Three ranks on an in-memory ring whose link w1 -> w2 is slow: each
// worker's /metrics names its two neighbours, counts its calls and bytes,
// and w2 shows the wait for w1's data on the side it comes from.
func TestMetricsNeighbourWaits(t *testing.T) {
	const calls, delay, floats = 4, 30 * time.Millisecond, 3000
	net := allreduce.NewMemNetwork()
	defer net.Close()
	net.SetDelay("w1:7071", "w2:7071", delay)
	ids := []string{"w0", "w1", "w2"}
	members := make([]allreduce.Member, len(ids))
	for i, id := range ids {
		members[i] = allreduce.Member{ID: id, Addr: id + ":7071"}
	}
	ms := make([]*Metrics, len(ids))
	sent := make([]int64, len(ids))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg, called sync.WaitGroup
	called.Add(len(ids))
	allCalled := make(chan struct{})
	go func() { called.Wait(); close(allCalled) }()
	errs := make(chan error, len(ids))
	for i, id := range ids {
		ms[i] = NewMetrics(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := allreduce.New(ctx, allreduce.Config{Rank: i, Members: members, Generation: 1, Timeout: 10 * time.Second,
				Metrics: ms[i].Ring()}, net.Node(members[i].Addr))
			if err != nil {
				called.Done()
				errs <- err
				return
			}
			defer r.Close()
			// A ring stays up until every rank is done with its calls, as a
			// worker's does: the last acknowledgements are still on their way.
			defer func() { called.Done(); <-allCalled }()
			buf := make([]float32, floats)
			for range calls {
				res, err := r.AllReduce(ctx, buf, allreduce.Options{Op: allreduce.Sum})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
				sent[i] += res.Stats.BytesSent
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, id := range ids {
		s := scrape(t, ms[i])
		left, right := ids[(i+2)%3], ids[(i+1)%3]
		if s.Worker != id || s.AllreduceCalls != calls || s.FailedCalls != 0 {
			t.Errorf("%s: worker %q, %v calls (%v failed), want %d ok", id, s.Worker, s.AllreduceCalls, s.FailedCalls, calls)
		}
		if s.BytesSent != float64(sent[i]) || s.BytesSent < 2*floats*4*2/3*calls || s.BytesReceived != s.BytesSent {
			t.Errorf("%s: sent %v received %v, the calls said %d", id, s.BytesSent, s.BytesReceived, sent[i])
		}
		if len(s.Waits) != 2 || s.Waits[0] != (NeighborWait{"left", left, s.Wait("left", left)}) || s.Waits[1].Peer != right {
			t.Errorf("%s: waits %+v, want left %s and right %s", id, s.Waits, left, right)
		}
	}
	// w2 cannot forward anything of a call before w1's first segment of it
	// arrived, one delay after w1 sent it.
	if w := scrape(t, ms[2]).Wait("left", "w1"); w < delay {
		t.Errorf("w2 waited %v for w1's data over a link delaying every frame %v", w, delay)
	}
}

// Steps, syncs, the ring and the state go into their series; bucket
// timings get one series per bucket, the ones past the bound sharing the
// last.
func TestMetricsSteps(t *testing.T) {
	m := NewMetrics("w7")
	s := scrape(t, m)
	if s.Worker != "w7" || s.StepsOK != 0 || s.Failed != 0 || s.Step.Count != 0 || s.Step.Mean() != 0 {
		t.Fatalf("fresh metrics: %+v", s)
	}
	m.observeStep(stepResult{compute: 30 * time.Millisecond, allreduce: 10 * time.Millisecond, busbw: 1e8}, 50*time.Millisecond)
	m.observeStep(stepResult{compute: 50 * time.Millisecond, allreduce: 30 * time.Millisecond}, 90*time.Millisecond)
	m.observeStep(stepResult{skipped: true, compute: 40 * time.Millisecond, allreduce: 20 * time.Millisecond}, 70*time.Millisecond)
	m.observeFailedStep()
	m.observeSync(2 * time.Second)
	m.observeRing(1003, 2, 8)
	m.observeState(41, 0xdeadbeef)
	s = scrape(t, m)
	near := func(d, want time.Duration) bool { return d > want-time.Millisecond && d < want+time.Millisecond }
	switch {
	case s.StepsOK != 2 || s.Skipped != 1 || s.Failed != 1:
		t.Errorf("steps ok %v skipped %v failed %v, want 2 1 1", s.StepsOK, s.Skipped, s.Failed)
	case s.Step.Count != 3 || !near(s.Step.Mean(), 70*time.Millisecond) || !near(s.Compute.Mean(), 40*time.Millisecond) ||
		!near(s.Allreduce.Mean(), 20*time.Millisecond):
		t.Errorf("step %+v (mean %v) compute %v allreduce %v, want 3 steps of 70, 40, 20 ms on average", s.Step, s.Step.Mean(),
			s.Compute.Mean(), s.Allreduce.Mean())
	case s.Sync.Count != 1 || s.Generation != 1003 || s.Rank != 2 || s.RingSize != 8 || s.StateStep != 41 || s.StateCRC != 0xdeadbeef:
		t.Errorf("sync %+v generation %d rank %d of %d state %d %08x", s.Sync, s.Generation, s.Rank, s.RingSize, s.StateStep, s.StateCRC)
	}
	buckets := make([]bucketTiming, maxBucketLabel+4)
	for i := range buckets {
		buckets[i] = bucketTiming{Ready: time.Duration(i) * time.Millisecond, Start: time.Duration(i+1) * time.Millisecond, Reduce: time.Millisecond}
	}
	buckets[len(buckets)-1].Tail = true
	m.observeBuckets(buckets)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if n := strings.Count(body, "recur_worker_bucket_allreduce_seconds_count{"); n != maxBucketLabel+2 { // 0..63 and the tail
		t.Errorf("%d bucket series, want %d", n, maxBucketLabel+2)
	}
	if !strings.Contains(body, `recur_worker_bucket_allreduce_seconds_count{bucket="63",worker="w7"} 3`) {
		t.Errorf("the last bucket label does not gather the buckets past the bound:\n%s", grepLines(body, `bucket="63"`))
	}
	// From hand-over to reduced: 1 ms waiting for the call before, 1 ms reducing.
	if !strings.Contains(body, `recur_worker_bucket_allreduce_seconds_sum{bucket="tail",worker="w7"} 0.002`) {
		t.Errorf("the tail's series:\n%s", grepLines(body, `bucket="tail"`))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Bodies that are not a worker's metrics are errors, never a panic or a
// conversion overflow.
func TestReadMetricsRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"empty":       "",
		"coordinator": "# TYPE recur_step gauge\nrecur_step 12\n",
		"garbage":     "recur_worker_steps_total{result=\"ok\" 3\n",
	} {
		if _, err := ReadMetrics(strings.NewReader(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := ReadMetrics(strings.NewReader("recur_worker_steps_total{result=\"ok\"} 1\nrecur_worker_state_step -1e300\nrecur_worker_state_crc32c 1e300\nrecur_worker_rank NaN\n"))
	if err != nil || s.StateStep != -1 || s.StateCRC != 0xffffffff || s.Rank != -1 {
		t.Errorf("out-of-range values: %+v, %v", s, err)
	}
}

func FuzzReadMetrics(f *testing.F) {
	m := NewMetrics("w1")
	m.observeStep(stepResult{compute: time.Millisecond}, 2*time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	f.Add(rec.Body.Bytes())
	f.Add([]byte("recur_worker_steps_total{result=\"ok\"} 1\nrecur_allreduce_neighbor_wait_seconds_total{side=\"left\",peer=\"w\"} 1e308\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadMetrics(bytes.NewReader(b))
		if err == nil && s.Wait("left", "w") < 0 {
			t.Fatal("negative wait")
		}
	})
}
