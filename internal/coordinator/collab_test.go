package coordinator

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/planner"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/internal/worker"
	"github.com/recur-ml/recur/pkg/checkpoint"
	"github.com/recur-ml/recur/pkg/safetensors"
)

// fakeClock moves only when told to, plus a millisecond at every reading
// so that step times stay positive.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(time.Millisecond)
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// failingStore fails every Save while fail is set.
type failingStore struct {
	Store
	fail  atomic.Bool
	saved atomic.Int64
}

func (s *failingStore) Save(ctx context.Context, ck *checkpoint.Checkpoint) error {
	if s.fail.Load() {
		return errors.New("no space left on device (injected)")
	}
	if err := s.Store.Save(ctx, ck); err != nil {
		return err
	}
	s.saved.Add(1)
	return nil
}

// poll waits for cond, failing the test after a generous deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Saves that keep failing make the health check fail and are counted in
// the metrics and the status stream; the first save that works again
// clears the health check.
func TestCoordinatorFailedSavesFailHealth(t *testing.T) {
	jc := testJob(testCorpus(t), 100000)
	jc.Train.CheckpointEvery = 2
	dir := t.TempDir()
	real, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &failingStore{Store: real}
	store.fail.Store(true)
	c, _ := oneWorker(t, jc, dir, func(cfg *CoordinatorConfig) { cfg.Store = store })

	poll(t, "three failed saves", func() bool { return testutil.ToFloat64(c.Metrics.failedSaves) >= 3 })
	if err := c.Health(0, 3); err == nil || !strings.Contains(err.Error(), "checkpoint saves failed") {
		t.Fatalf("Health after 3 failed saves: %v, want a failed-saves error", err)
	}
	if err := c.Health(0, 1000); err != nil {
		t.Fatalf("Health with a limit not reached: %v", err)
	}
	failed := 0
	evs, _, _ := c.status.Since(0)
	for _, e := range evs {
		if e.Kind == events.EventCheckpointFailed {
			failed++
			if !strings.Contains(e.Message, "injected") {
				t.Errorf("checkpoint_failed event says %q, want the store's error", e.Message)
			}
		}
	}
	if failed < 3 {
		t.Fatalf("%d checkpoint_failed events, want at least 3", failed)
	}

	store.fail.Store(false)
	poll(t, "a save after the store recovered", func() bool { return store.saved.Load() > 0 })
	poll(t, "the health check to recover", func() bool { return c.Health(0, 3) == nil })
	c.Stop(planner.Interrupted, "test over")
	waitDone(t, c, time.Minute)
}

// A coordinator that completes no step is unhealthy once the stall limit
// has passed on its clock, and says what it waits for.
func TestCoordinatorStallOnItsClock(t *testing.T) {
	jc := testJob(testCorpus(t), 100)
	clock := newFakeClock()
	n := newMemNet(t)
	c := n.coordinator(t, jc, t.TempDir(), func(cfg *CoordinatorConfig) { cfg.Clock = clock })
	if err := c.Health(time.Minute, 0); err != nil {
		t.Fatalf("Health at start: %v", err)
	}
	clock.Advance(time.Hour)
	err := c.Health(time.Minute, 0)
	if err == nil || !strings.Contains(err.Error(), "no step completed for 1h0m") || !strings.Contains(err.Error(), "worker") {
		t.Fatalf("Health after an hour without workers: %v, want a stall naming the wait for workers", err)
	}
}

// The time budget is read on the coordinator's clock: once it has passed,
// the run finishes at the next report, and the checkpoint records the
// elapsed time for a resumed run.
func TestCoordinatorTimeBudgetOnItsClock(t *testing.T) {
	jc := testJob(testCorpus(t), 100000)
	jc.Train.Minutes = 30
	clock := newFakeClock()
	c, _ := oneWorker(t, jc, t.TempDir(), func(cfg *CoordinatorConfig) { cfg.Clock = clock })
	poll(t, "5 steps", func() bool { return len(c.History()) >= 5 })
	if o, _, _ := c.Outcome(); o != planner.Ongoing {
		t.Fatalf("outcome %v before the budget was spent", o)
	}
	clock.Advance(31 * time.Minute)
	waitDone(t, c, time.Minute)
	o, reason, ck := c.Outcome()
	if o != planner.Finished || !strings.Contains(reason, "time budget of 30 minutes") {
		t.Fatalf("outcome %v (%s), want finished on the time budget", o, reason)
	}
	saved, _, err := c.store.Latest(t.Context())
	if err != nil || int64(saved.Step) != ck {
		t.Fatalf("latest checkpoint: %v (step %d, outcome says %d)", err, saved.Step, ck)
	}
	if e := saved.Metrics["elapsed_seconds"]; e < 31*60 {
		t.Fatalf("the final checkpoint records %g s elapsed, want at least %d", e, 31*60)
	}
}

// A state whose weights overflowed is never saved as a checkpoint: the
// check names the tensor, and finite states pass.
func TestCheckFiniteNamesTheTensor(t *testing.T) {
	params := func(bad float32) []byte {
		var b bytes.Buffer
		f := &safetensors.File{Tensors: map[string]safetensors.Tensor{
			"rnn.weight_ih_l0": safetensors.FromFloat32([]int{2, 2}, []float32{1, 2, 3, 4}),
			"fc.bias":          safetensors.FromFloat32([]int{3}, []float32{0.5, bad, 1}),
		}}
		if err := safetensors.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if err := checkFinite(&cluster.State{Params: params(2), Carry: []float32{0, 1}}); err != nil {
		t.Fatalf("finite state refused: %v", err)
	}
	for _, bad := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		err := checkFinite(&cluster.State{Params: params(bad)})
		if err == nil || !strings.Contains(err.Error(), "fc.bias") || !strings.Contains(err.Error(), "index 1") {
			t.Fatalf("%v in fc.bias: %v, want an error naming the tensor and index", bad, err)
		}
	}
	if err := checkFinite(&cluster.State{Params: params(2), Carry: []float32{0, float32(math.NaN())}}); err == nil || !strings.Contains(err.Error(), "carried state") {
		t.Fatalf("NaN carried state: %v", err)
	}
	if err := checkFinite(&cluster.State{Params: []byte("garbage")}); err == nil {
		t.Fatal("garbage parameters accepted")
	}
}

// Gradients sent in fp16 or bf16 train the char LM to the validation loss
// of exact float32 within 1% after the same steps, and every worker ends
// with the same weights.
func TestCompressionMatchesFloat32(t *testing.T) {
	train := func(comp string) float64 {
		jc := testJob(testCorpus(t), 60)
		jc.Cluster.Compression = comp
		n := newMemNet(t)
		c := n.coordinator(t, jc, t.TempDir(), nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		w0 := n.worker(t, ctx, &wg, "w0", errs)
		w1 := n.worker(t, ctx, &wg, "w1", errs)
		waitDone(t, c, 2*time.Minute)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("%s: a worker: %v", comp, err)
			}
		}
		p0, p1 := w0.Model().Params.Value, w1.Model().Params.Value
		for i := range p0 {
			if p0[i] != p1[i] {
				t.Fatalf("%s: w0 and w1 differ at parameter %d", comp, i)
			}
		}
		m, err := task.EvaluateJob(jc, w0.Model())
		if err != nil {
			t.Fatal(err)
		}
		return m["loss"]
	}
	exact := train(job.CompressNone)
	for _, comp := range []string{job.CompressFP16, job.CompressBF16} {
		got := train(comp)
		t.Logf("validation loss after 60 steps: none %.6f, %s %.6f", exact, comp, got)
		if got == exact {
			t.Errorf("%s: the same loss as float32 to the last bit: the encoding is not in use", comp)
		}
		if math.Abs(got-exact) > 0.01*exact {
			t.Errorf("%s: validation loss %.4f, float32 %.4f: more than 1%% apart", comp, got, exact)
		}
	}
}

// A coordinator restarted with a changed policy of the same job (the
// gradient encoding, the clip) resumes with the workers' state, and every
// worker adopts the new policy: they keep computing alike.
func TestClusterWorkersAdoptChangedPolicy(t *testing.T) {
	jc := testJob(testCorpus(t), 20)
	dir := t.TempDir()
	n := newMemNet(t)
	c := n.coordinator(t, jc, dir, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	errs := make(chan error, 2)
	w0 := n.worker(t, ctx, &wg, "w0", errs)
	w1 := n.worker(t, ctx, &wg, "w1", errs)
	poll(t, "10 steps", func() bool { return len(c.History()) >= 10 })
	c.Close() // as a crash: the workers wait for it to come back

	jc.Train.Steps = 40
	jc.Cluster.Compression = job.CompressBF16
	jc.Train.Clip = 1
	c2 := n.coordinator(t, jc, dir, nil)
	waitDone(t, c2, 2*time.Minute)
	if o, reason, ck := c2.Outcome(); o != planner.Finished || ck != 40 {
		t.Fatalf("outcome %v (%s) at checkpoint %d, want finished at 40", o, reason, ck)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a worker: %v", err)
		}
	}
	p0, p1 := w0.Model().Params.Value, w1.Model().Params.Value
	for i := range p0 {
		if p0[i] != p1[i] {
			t.Fatalf("w0 and w1 differ at parameter %d", i)
		}
	}
	for _, w := range []*worker.Worker{w0, w1} {
		if held, _, _ := w.Job(); held.Cluster.Compression != job.CompressBF16 || held.Train.Clip != 1 {
			t.Fatalf("a worker holds compression %q, clip %g: the new policy was not adopted", held.Cluster.Compression, held.Train.Clip)
		}
	}
}

// A run directory whose history records checkpoints but whose store is
// gone (deleted, or replaced by an empty one) is not silently trained
// again from scratch: the coordinator refuses, naming the step and the
// way out; --fresh starts over.
func TestCoordinatorRefusesALostStore(t *testing.T) {
	jc := testJob(testCorpus(t), 20)
	dir := t.TempDir()
	c, stop := oneWorker(t, jc, dir, nil)
	waitDone(t, c, time.Minute)
	stop()
	c.Close()
	n := newMemNet(t)
	for _, f := range []string{"checkpoints.db", "checkpoints.db.bak"} { // both lost
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := NewCoordinator(CoordinatorConfig{Job: jc, Listener: n.listen("coordinator:7070"), Dialer: n.dial, Gossip: "off",
		Dir: dir, Secret: []byte(memSecret)})
	if err == nil || !strings.Contains(err.Error(), "step 20") || !strings.Contains(err.Error(), "--fresh") {
		t.Fatalf("a lost store: %v, want a refusal naming step 20 and --fresh", err)
	}
	c2, err := NewCoordinator(CoordinatorConfig{Job: jc, Listener: n.listen("coordinator:7070"), Dialer: n.dial, Gossip: "off",
		Dir: dir, Secret: []byte(memSecret), Fresh: true})
	if err != nil {
		t.Fatalf("--fresh: %v", err)
	}
	c2.Close()
}

// --fresh sets the earlier run's checkpoints aside: a later restart
// resumes this run's newest checkpoint, not the earlier run's, and the
// earlier store is kept beside.
func TestCoordinatorFreshSetsTheOldRunAside(t *testing.T) {
	jc := testJob(testCorpus(t), 30)
	dir := t.TempDir()
	run := func(steps int64, fresh bool) int64 {
		t.Helper()
		jc.Train.Steps = steps
		c, stop := oneWorker(t, jc, dir, func(cfg *CoordinatorConfig) { cfg.Fresh = fresh })
		waitDone(t, c, time.Minute)
		stop()
		_, _, ck := c.Outcome()
		c.Close()
		return ck
	}
	if ck := run(30, false); ck != 30 {
		t.Fatalf("first run ended at %d", ck)
	}
	if ck := run(10, true); ck != 10 {
		t.Fatalf("fresh run ended at %d", ck)
	}
	if ck := run(20, false); ck != 20 {
		t.Fatalf("the resumed fresh run ended at checkpoint %d, want 20 (resumed from its own 10)", ck)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "checkpoints.db.old-*"))
	if len(old) == 0 {
		t.Fatal("the earlier run's store was not kept")
	}
}

// The store file deleted while the run goes on: the next save finds it
// gone, the coordinator reopens the store from its backup and saves
// again; nothing saved is lost, the recovery is counted and in the status
// stream, and the run ends with its final checkpoint in the file.
func TestCoordinatorStoreDeletedWhileTraining(t *testing.T) {
	jc := testJob(testCorpus(t), 100000)
	jc.Train.CheckpointEvery = 2
	dir := t.TempDir()
	c, stop := oneWorker(t, jc, dir, nil)
	poll(t, "a checkpoint", func() bool { _, _, ck := c.Outcome(); return ck >= 4 })
	if err := os.Remove(filepath.Join(dir, "checkpoints.db")); err != nil {
		t.Fatal(err)
	}
	poll(t, "the recovery", func() bool { return testutil.ToFloat64(c.Metrics.storeRecoveries) >= 1 })
	_, _, before := c.Outcome()
	poll(t, "checkpoints after the recovery", func() bool { _, _, ck := c.Outcome(); return ck >= before+4 })
	c.Stop(planner.Interrupted, "test over")
	waitDone(t, c, time.Minute)
	_, _, final := c.Outcome()
	if n := testutil.ToFloat64(c.Metrics.failedSaves); n != 0 {
		t.Errorf("%g saves failed: the reopened store should have taken them", n)
	}
	evs, _, _ := c.status.Since(0)
	told := false
	for _, e := range evs {
		told = told || (e.Kind == events.EventInfo && strings.Contains(e.Message, "backup"))
	}
	if !told {
		t.Error("the recovery is not in the status stream")
	}
	stop()
	c.Close()
	s, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ck, _, err := s.Latest(t.Context())
	if err != nil || int64(ck.Step) != final {
		t.Fatalf("the file holds %v (%v), want the final checkpoint %d", ck, err, final)
	}
}

// slowStore holds up the save of one step, so that later checkpoints are
// fetched meanwhile.
type slowStore struct {
	Store
	slow uint64
}

func (s slowStore) Save(ctx context.Context, ck *checkpoint.Checkpoint) error {
	if ck.Step == s.slow {
		time.Sleep(300 * time.Millisecond)
	}
	return s.Store.Save(ctx, ck)
}

// A checkpoint whose save is slow does not land after a newer one: the
// store drops checkpoints newer than the one it saves, so saves go in
// step order and a late older one is skipped. The final checkpoint stays.
func TestCheckpointsSaveInStepOrder(t *testing.T) {
	jc := testJob(testCorpus(t), 8)
	jc.Train.CheckpointEvery = 2
	dir := t.TempDir()
	real, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := oneWorker(t, jc, dir, func(cfg *CoordinatorConfig) { cfg.Store = slowStore{Store: real, slow: 2} })
	waitDone(t, c, time.Minute)
	ck, _, err := real.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ck.Step != 8 {
		t.Fatalf("the newest checkpoint in the store is step %d, want 8", ck.Step)
	}
}

// The final state is validated (on the periodic validations' sample) when
// no validation of its step was recorded: the status stream and the curve
// end with it, and the final checkpoint carries it, so it can be the best.
func TestFinalStateIsValidated(t *testing.T) {
	jc := testJob(testCorpus(t), 25) // validations before steps 10 and 20; none at 25
	dir := t.TempDir()
	c, _ := oneWorker(t, jc, dir, nil)
	waitDone(t, c, time.Minute)
	evs, _, _ := c.status.Since(0)
	var steps []int64
	for _, e := range evs {
		if e.Kind == events.EventValidation {
			steps = append(steps, e.Step)
		}
	}
	if len(steps) == 0 || steps[len(steps)-1] != 25 {
		t.Fatalf("validations at steps %v, want the last at 25", steps)
	}
	ck, _, err := c.store.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ck.Metrics["val_loss"]; !ok || ck.Step != 25 {
		t.Fatalf("the final checkpoint (step %d) carries no validation loss: %v", ck.Step, ck.Metrics)
	}
}
