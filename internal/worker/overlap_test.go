package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/allreduce"
	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// overlapCorpus writes a small generated text (tests ship no data).
func overlapCorpus(t testing.TB) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while seven wizards quietly hum")
	var sb strings.Builder
	for sb.Len() < 20000 {
		sb.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(9) == 0 {
			sb.WriteString(".\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	p := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// overlapJob is a small stacked char LM: 2 layers, 2 goroutines per
// worker (so the replica sums run as buckets become ready), Adam.
func overlapJob(corpus, cell string, world int) job.Config {
	jc := job.Default()
	jc.Data.Text, jc.Data.Seq, jc.Data.Batch = corpus, 10, 4*world
	jc.Model = job.ModelConfig{Cell: cell, Hidden: 16, Layers: 2, Embed: 8}
	jc.Train.Steps, jc.Train.Threads = 100, 2
	jc.Cluster.MinWorkers, jc.Cluster.MemoryLimit = world, "8GB"
	jc.Cluster.BucketBytes = 0 // one bucket per part: the model is far smaller than the default
	return jc
}

// testRanks is one ring generation of engines over an in-memory network.
type testRanks struct {
	net   *allreduce.MemNetwork
	addrs []string
	engs  []*engine
	rings []*allreduce.Ring
}

// newTestRanks builds world engines of jc.
func newTestRanks(t *testing.T, jc job.Config, world int) *testRanks {
	t.Helper()
	tr := &testRanks{net: allreduce.NewMemNetwork()}
	t.Cleanup(tr.net.Close)
	for i := 0; i < world; i++ {
		e, err := newEngine(jc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.close() })
		tr.engs = append(tr.engs, e)
		tr.addrs = append(tr.addrs, fmt.Sprintf("r%d:1", i))
	}
	return tr
}

// form starts ring generation gen over the engines at idx (in ring order).
func (tr *testRanks) form(t *testing.T, gen uint64, idx []int) {
	t.Helper()
	for _, r := range tr.rings {
		r.Close()
	}
	members := make([]allreduce.Member, len(idx))
	for k, i := range idx {
		members[k] = allreduce.Member{ID: fmt.Sprintf("w%d", i), Addr: tr.addrs[i]}
	}
	tr.rings = make([]*allreduce.Ring, len(idx))
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		if err := tr.engs[i].setRing(k, len(idx)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.rings[k], errs[k] = allreduce.New(t.Context(), allreduce.Config{Rank: k, Members: members, Generation: gen,
				Timeout: 20 * time.Second}, tr.net.Node(tr.addrs[i]))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, r := range tr.rings {
			r.Close()
		}
	})
}

// step runs one step on the engines at idx (ring order) concurrently.
func (tr *testRanks) step(ctx context.Context, idx []int) ([]stepResult, []error) {
	res := make([]stepResult, len(idx))
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[k], errs[k] = tr.engs[i].run(ctx, tr.rings[k], 2e-2)
		}()
	}
	wg.Wait()
	return res, errs
}

// states returns every engine's encoded state (parameters, optimizer,
// carried states, step).
func (tr *testRanks) states(t *testing.T) [][]byte {
	t.Helper()
	out := make([][]byte, len(tr.engs))
	for i, e := range tr.engs {
		e.mu.Lock()
		b, err := e.state()
		e.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// sameAcross fails unless the engines at idx hold identical bytes.
func (tr *testRanks) sameAcross(t *testing.T, idx []int, what string) {
	t.Helper()
	s := tr.states(t)
	for _, i := range idx[1:] {
		if !bytes.Equal(s[idx[0]], s[i]) {
			t.Fatalf("%s: rank %d's state differs from rank %d's", what, i, idx[0])
		}
	}
}

func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// maxDiff returns the largest absolute difference of a and b.
func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// An overlapped step gives the plain step's update on every rank, with
// identical bytes across ranks after every step: stacked LSTM and GRU, 2
// and 4 workers, fp32, fp16 and bf16 on the wire, with and without
// clipping (clip 0.05 clips every step), over several steps (carried
// states, Adam or SGD). With 2 workers and fp32 the two are equal bit for
// bit (the ring adds two numbers: either order gives the same). With 4, a
// bucket's chunks start at other ranks than the whole gradient's, so the
// four-term sums round differently; and 16 bits on the wire round each
// rank's share at other places: those agree within that rounding, bucket
// by bucket (a bucket lost or counted twice is off by its whole size).
// The 16-bit cases train with SGD: Adam's first steps turn a gradient
// rounded to zero in one path and not the other into a whole step.
func TestOverlapMatchesPlainStep(t *testing.T) {
	corpus := overlapCorpus(t)
	for _, tc := range []struct {
		cell  string
		world int
		comp  string
		clip  float64
		tol   float64 // of a bucket's largest gradient
	}{
		{"lstm", 2, job.CompressNone, 5, 0}, {"gru", 2, job.CompressNone, 0.05, 0},
		{"lstm", 4, job.CompressNone, 0.05, 1e-5}, {"gru", 4, job.CompressNone, 5, 1e-5},
		{"lstm", 4, job.CompressFP16, 5, 2e-3}, {"gru", 2, job.CompressBF16, 0.05, 2e-2},
	} {
		t.Run(fmt.Sprintf("%s-%d-%s-clip%g", tc.cell, tc.world, tc.comp, tc.clip), func(t *testing.T) {
			jc := overlapJob(corpus, tc.cell, tc.world)
			jc.Cluster.Compression, jc.Train.Clip = tc.comp, tc.clip
			if tc.comp != job.CompressNone {
				jc.Optimizer = optim.DefaultConfig(optim.KindSGD)
			}
			plainJob := jc
			plainJob.Cluster.Overlap = false
			ov, pl := newTestRanks(t, jc, tc.world), newTestRanks(t, plainJob, tc.world)
			ov.form(t, 1, all(tc.world))
			pl.form(t, 1, all(tc.world))
			buckets := ov.engs[0].buckets
			if len(buckets) != 4 { // head, 2 layers, embedding
				t.Fatalf("buckets %v, want 4", buckets)
			}
			for _, e := range ov.engs {
				// Backward lingers after its last ready offset: the tail
				// (loss, count, carried states) is written only after it,
				// and must not go on the ring before.
				e.testReady = func(lo int) {
					if lo == 0 {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}
			for s := 0; s < 4; s++ {
				ro, errs := ov.step(t.Context(), all(tc.world))
				for i, err := range append(errs, firstErr(pl.step(t.Context(), all(tc.world)))) {
					if err != nil {
						t.Fatalf("step %d, rank %d: %v", s, i, err)
					}
				}
				if ro[0].skipped || len(ro[0].calls) != 5 {
					t.Fatalf("step %d: skipped %v (%s), %d ring calls, want 5", s, ro[0].skipped, ro[0].skipReason, len(ro[0].calls))
				}
				for i, c := range ro[0].calls {
					tail := i == len(buckets)
					if c.Tail != tail || !tail && (c.Lo != buckets[i].lo || c.Hi != buckets[i].hi) || c.Start < c.Ready ||
						!tail && c.Ready > ro[0].compute || c.Reduce <= 0 {
						t.Fatalf("step %d: call %d %+v (buckets %v, compute %v)", s, i, c, buckets, ro[0].compute)
					}
				}
				ov.sameAcross(t, all(tc.world), fmt.Sprintf("overlap, step %d", s))
				pl.sameAcross(t, all(tc.world), fmt.Sprintf("plain, step %d", s))
				a, b := ov.engs[0], pl.engs[0]
				if a.step != b.step || a.step != int64(s+1) {
					t.Fatalf("steps %d and %d after %d", a.step, b.step, s+1)
				}
				// The applied gradient (divided by the count, clipped).
				for _, bk := range buckets {
					ga, gb := a.model.Params.Grad[bk.lo:bk.hi], b.model.Params.Grad[bk.lo:bk.hi]
					if d, m := maxDiff(ga, gb), maxAbs(gb); d > tc.tol*m || m == 0 {
						t.Fatalf("step %d, bucket %v: gradients differ by %g, largest %g", s, bk, d, m)
					}
				}
				dw, dc := maxDiff(a.model.Params.Value, b.model.Params.Value), maxDiff(a.carry, b.carry)
				if tc.tol == 0 && (dw != 0 || dc != 0 || !bytes.Equal(ov.states(t)[0], pl.states(t)[0])) {
					t.Fatalf("step %d: overlapped and plain differ (weights by %g, carried states by %g), want equal bytes", s, dw, dc)
				}
				// An update moves a weight by up to the learning rate, 2e-2.
				if dw > 1e-4 || dc > 1e-4 {
					t.Fatalf("step %d: overlapped and plain differ: weights by %g, carried states by %g", s, dw, dc)
				}
			}
		})
	}
}

// maxAbs returns the largest magnitude in a.
func maxAbs(a []float32) float64 {
	m := 0.0
	for _, v := range a {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// firstErr is the first non-nil error of a step's ranks.
func firstErr(_ []stepResult, errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Buckets take whole parts from the top down until they hold
// cluster.bucket_bytes, a small last one joins the one before, and they
// always cover the gradient.
func TestPlanBuckets(t *testing.T) {
	offs := []int{90, 60, 10, 0} // head [90,100), layers [60,90) and [10,60), embedding [0,10)
	for _, tc := range []struct {
		bytes int64
		want  []bucket
	}{
		{0, []bucket{{90, 100}, {60, 90}, {10, 60}, {0, 10}}},
		{40, []bucket{{90, 100}, {60, 90}, {10, 60}, {0, 10}}},
		{41, []bucket{{60, 100}, {0, 60}}}, // the embedding's 40 bytes join layer 0
		{160, []bucket{{60, 100}, {0, 60}}},
		{200, []bucket{{0, 100}}},
		{1 << 40, []bucket{{0, 100}}},
	} {
		got := planBuckets(offs, 100, tc.bytes)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("bucket_bytes %d: %v, want %v", tc.bytes, got, tc.want)
		}
	}
}

// A rank whose loss is not finite sets the bad flag on its last call:
// every rank skips the update alike (weights, optimizer and carried
// states unchanged, the step counted), and the next step trains.
func TestOverlapNonFiniteSkippedEverywhere(t *testing.T) {
	jc := overlapJob(overlapCorpus(t), "lstm", 3)
	tr := newTestRanks(t, jc, 3)
	tr.form(t, 1, all(3))
	if _, errs := tr.step(t.Context(), all(3)); firstErr(nil, errs) != nil {
		t.Fatal(firstErr(nil, errs))
	}
	_, _, spec, _ := tr.engs[1].model.Params.Lookup("head.bias")
	poisoned := &tr.engs[1].model.Params.Value[spec.Offset]
	*poisoned = float32(math.Inf(1))
	before := tr.states(t)
	res, errs := tr.step(t.Context(), all(3))
	if err := firstErr(nil, errs); err != nil {
		t.Fatal(err)
	}
	after := tr.states(t)
	for i, e := range tr.engs {
		if !res[i].skipped || e.step != 2 {
			t.Fatalf("rank %d: skipped %v, step %d; want skipped at step 2", i, res[i].skipped, e.step)
		}
		if i == 1 != strings.Contains(res[i].skipReason, "rank 1") {
			t.Fatalf("rank %d: skip reason %q", i, res[i].skipReason)
		}
		if i != 1 && !sameButStep(t, before[i], after[i]) {
			t.Fatalf("rank %d: a skipped step changed the state", i)
		}
	}
	*poisoned = tr.engs[0].model.Params.Value[spec.Offset]
	tr.sameAcross(t, all(3), "after the skipped step")
	res, errs = tr.step(t.Context(), all(3))
	if err := firstErr(nil, errs); err != nil || res[0].skipped {
		t.Fatalf("the step after: %v, skipped %v", err, res[0].skipped)
	}
	tr.sameAcross(t, all(3), "the step after")
}

// sameButStep reports whether two encoded states differ at most in their
// step.
func sameButStep(t *testing.T, a, b []byte) bool {
	t.Helper()
	var sa, sb cluster.State
	if err := sa.UnmarshalBinary(a); err != nil {
		t.Fatal(err)
	}
	if err := sb.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(sa.Params, sb.Params) && bytes.Equal(sa.Optim, sb.Optim) && maxDiff(sa.Carry, sb.Carry) == 0
}

// A peer dies while gradient buckets are in flight and backward runs: the
// survivors hold their backward pass once bucket k is on its way, until
// their ring has failed; rank 2's process is killed (its links break at
// both ends) as it sends bucket k. Every rank's step fails, none applies
// anything (parameters, optimizer state, carried states and step
// unchanged), and the survivors train on in the next generation with
// identical states. k = 4 kills it in the tail, after backward.
func TestOverlapPeerDiesMidBackward(t *testing.T) {
	corpus := overlapCorpus(t)
	for _, k := range []int{0, 1, 3, 4} {
		t.Run(fmt.Sprintf("in-call-%d", k), func(t *testing.T) {
			jc := overlapJob(corpus, "gru", 4)
			jc.Cluster.Compression = job.CompressFP16
			tr := newTestRanks(t, jc, 4)
			tr.form(t, 1, all(4))
			res, errs := tr.step(t.Context(), all(4))
			if err := firstErr(nil, errs); err != nil {
				t.Fatal(err)
			}
			calls := uint64(len(res[0].calls)) // per step: buckets and the tail
			dying := tr.addrs[2]
			var once sync.Once
			tr.net.SetFilter(dying, tr.addrs[3], func(f *allreduce.Frame) bool {
				if f.Kind != allreduce.KindData || f.Call <= calls+uint64(k) {
					return true
				}
				once.Do(func() { go tr.net.Kill(dying) })
				return false
			})
			held := make([]bool, 4)
			for _, i := range []int{0, 1, 3} {
				ready := 0
				tr.engs[i].testReady = func(int) {
					if ready++; ready == k+1 {
						held[i] = waitFailed(tr.rings[i], 10*time.Second)
					}
				}
			}
			before := tr.states(t)
			_, errs = tr.step(t.Context(), all(4))
			for i, err := range errs {
				if err == nil {
					t.Fatalf("rank %d: the step succeeded while rank 2 died", i)
				}
				if k < 4 && i != 2 && !held[i] {
					t.Fatalf("rank %d: its ring had not failed 10 s after rank 2 died", i)
				}
				tr.engs[i].testReady = nil
			}
			var pe *allreduce.PeerError
			if !errors.As(errs[0], &pe) {
				t.Fatalf("rank 0: %v, want a PeerError", errs[0])
			}
			for i, s := range tr.states(t) {
				if !bytes.Equal(before[i], s) {
					t.Fatalf("rank %d: the failed step changed the state (error %v)", i, errs[i])
				}
			}
			survivors := []int{0, 1, 3}
			tr.form(t, 2, survivors)
			for s := 0; s < 2; s++ {
				res, errs := tr.step(t.Context(), survivors)
				if err := firstErr(nil, errs); err != nil || res[0].skipped {
					t.Fatalf("next generation, step %d: %v (skipped %v)", s, err, res[0].skipped)
				}
				tr.sameAcross(t, survivors, "next generation")
			}
			if tr.engs[0].step != 3 {
				t.Fatalf("step %d after 1 + 2 steps", tr.engs[0].step)
			}
		})
	}
}

// waitFailed waits up to d for r to fail and reports whether it did.
func waitFailed(r *allreduce.Ring, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.Err() == nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Cancelling the step's context stops its reducer: the step fails with
// the context's error, nothing is applied, and no goroutine stays behind
// (TestMain checks).
func TestOverlapCancel(t *testing.T) {
	jc := overlapJob(overlapCorpus(t), "lstm", 2)
	tr := newTestRanks(t, jc, 2)
	tr.form(t, 1, all(2))
	before := tr.states(t)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	// Rank 1 never runs the step: rank 0's first bucket waits for it.
	_, err := tr.engs[0].run(ctx, tr.rings[0], 2e-2)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled", err)
	}
	if !bytes.Equal(before[0], tr.states(t)[0]) {
		t.Fatal("a cancelled step changed the state")
	}
}

// A gradient that makes one bucket (the default bucket_bytes on a small
// model) has nothing to overlap: the step is the plain one, one call.
func TestOverlapOneBucketIsPlain(t *testing.T) {
	jc := overlapJob(overlapCorpus(t), "gru", 2)
	jc.Cluster.BucketBytes = job.DefaultBucketBytes
	tr := newTestRanks(t, jc, 2)
	if len(tr.engs[0].buckets) != 1 {
		t.Fatalf("buckets %v, want one", tr.engs[0].buckets)
	}
	tr.form(t, 1, all(2))
	res, errs := tr.step(t.Context(), all(2))
	if err := firstErr(nil, errs); err != nil {
		t.Fatal(err)
	}
	if len(res[0].calls) != 1 || res[0].calls[0].Hi != tr.engs[0].model.Params.Len()+2+tr.engs[0].carrySize() {
		t.Fatalf("calls %+v, want the plain step's one", res[0].calls)
	}
	tr.sameAcross(t, all(2), "one bucket")
}

// A resumed run may change the overlap policy: setPolicy re-cuts the
// buckets.
func TestSetPolicyReplansBuckets(t *testing.T) {
	jc := overlapJob(overlapCorpus(t), "lstm", 1)
	e, err := newEngine(jc)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	n := e.model.Params.Len()
	if len(e.buckets) != 4 || e.buckets[0].hi != n || e.buckets[3].lo != 0 {
		t.Fatalf("buckets %v of %d", e.buckets, n)
	}
	jc.Cluster.BucketBytes = 4 * int64(n)
	if err := e.setPolicy(jc); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(e.buckets) != fmt.Sprint([]bucket{{0, n}}) {
		t.Fatalf("bucket_bytes %d: buckets %v, want one", jc.Cluster.BucketBytes, e.buckets)
	}
}
