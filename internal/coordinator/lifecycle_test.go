package coordinator

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/worker"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/planner"
)

// restart starts a coordinator of job on dir at addr (the old one's, so the
// workers find it).
func restart(t *testing.T, jc job.Config, dir, addr string, secret []byte) *Coordinator {
	t.Helper()
	c, err := NewCoordinator(CoordinatorConfig{Job: jc, Listen: addr, Gossip: "off", Dir: dir, Secret: secret,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitDone(t *testing.T, c *Coordinator, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(timeout):
		t.Fatalf("the run did not end in %v (%d steps)", timeout, len(c.History()))
	}
}

// Rerunning a finished run trains no further step, with or without
// workers, and a worker that joins it is told to stop.
func TestClusterRerunOfFinishedRunTrainsNothing(t *testing.T) {
	jc := testJob(testCorpus(t), 3)
	dir := t.TempDir()
	tc := startCluster(t, jc, dir, false)
	tc.addWorker("w1")
	tc.wait(time.Minute)
	if o, _, ck := tc.coord.Outcome(); o != planner.Finished || ck != 3 {
		t.Fatalf("outcome %v, checkpoint %d, want finished at 3", o, ck)
	}
	tc.wg.Wait()
	addr := tc.coord.Addr()
	tc.coord.Close()

	c2 := restart(t, jc, dir, addr, tc.secret)
	waitDone(t, c2, time.Minute) // no worker needed to learn it is over
	o, reason, ck := c2.Outcome()
	if o != planner.Finished || ck != 3 || !strings.Contains(reason, "already finished") {
		t.Fatalf("outcome %v (%s), checkpoint %d, want already finished at 3", o, reason, ck)
	}
	w, err := worker.NewWorker(worker.WorkerConfig{ID: "late", Coordinator: addr, Secret: tc.secret, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Run(t.Context()); err != nil {
		t.Fatalf("a worker joining a finished run: %v, want a clean stop", err)
	}
	if h := c2.History(); len(h) != 0 {
		t.Fatalf("a finished run trained %d more steps", len(h))
	}
}

// A diverged run stops as Diverged after max_skipped_steps skipped steps,
// naming the step and the parameter, instead of re-forming generations
// forever.
func TestClusterDivergedRunEnds(t *testing.T) {
	jc := testJob(testCorpus(t), 100000)
	jc.Schedule.BaseLR = 1e38 // the first update overflows float32: every later step is non-finite
	jc.Train.MaxSkippedSteps = 4
	tc := startCluster(t, jc, t.TempDir(), false)
	tc.addWorker("w1")
	tc.addWorker("w2")
	tc.wait(2 * time.Minute)
	o, reason, _ := tc.coord.Outcome()
	if o != planner.Diverged || !strings.Contains(reason, "4 consecutive steps") || !strings.Contains(reason, "non-finite") {
		t.Fatalf("outcome %v (%s), want diverged after 4 skipped steps", o, reason)
	}
	h := tc.coord.History()
	if len(h) > 20 || !h[len(h)-1].Skipped {
		t.Fatalf("%d steps, the last skipped=%v: want an early stop on skipped steps", len(h), h[len(h)-1].Skipped)
	}
	if g := tc.coord.p.Generation(); g > 10 {
		t.Fatalf("%d generations formed: the run re-formed instead of skipping (a livelock formed thousands)", g)
	}
	tc.wg.Wait()
	for id, err := range tc.errs {
		if err != nil {
			t.Errorf("worker %s: %v, want a clean stop", id, err)
		}
	}
}

// An operator's stop (SIGINT) ends the run at the next step boundary with
// a checkpoint of that step: a resume loses nothing.
func TestClusterInterruptSavesFinalCheckpoint(t *testing.T) {
	jc := testJob(testCorpus(t), 100000)
	jc.Train.CheckpointEvery = 1000
	dir := t.TempDir()
	tc := startCluster(t, jc, dir, false)
	tc.addWorker("w1")
	tc.addWorker("w2")
	tc.waitSteps(15, time.Minute)
	tc.coord.Stop(planner.Interrupted, "interrupted by a signal")
	tc.wait(time.Minute)
	o, _, ck := tc.coord.Outcome()
	n := int64(len(tc.coord.History()))
	if o != planner.Interrupted || ck != n {
		t.Fatalf("outcome %v, final checkpoint %d after %d steps, want interrupted with a checkpoint at %d", o, ck, n, n)
	}
	tc.wg.Wait()
	for id, err := range tc.errs {
		if !errors.Is(err, worker.ErrRunNotOver) {
			t.Errorf("worker %s: %v, want ErrRunNotOver (a supervisor restarts it; the run is not over)", id, err)
		}
	}
	addr := tc.coord.Addr()
	tc.coord.Close()
	c2 := restart(t, jc, dir, addr, tc.secret)
	if _, _, resumed := c2.Outcome(); resumed != n {
		t.Fatalf("resumed from step %d, want %d", resumed, n)
	}
}

// The time budget counts the whole run, not each coordinator process.
func TestClusterTimeBudgetCountsTheWholeRun(t *testing.T) {
	jc := testJob(testCorpus(t), 20)
	dir := t.TempDir()
	tc := startCluster(t, jc, dir, false)
	tc.addWorker("w1")
	tc.wait(time.Minute)
	tc.wg.Wait()
	addr := tc.coord.Addr()
	tc.coord.Close()

	// Resume with a larger step budget and a time budget the first
	// process already spent: nothing is left to train.
	jc.Train.Steps = 100000
	jc.Train.Minutes = 1e-4 // 6 ms
	c2 := restart(t, jc, dir, addr, tc.secret)
	waitDone(t, c2, time.Minute)
	if o, reason, _ := c2.Outcome(); o != planner.Finished || !strings.Contains(reason, "time budget") {
		t.Fatalf("outcome %v (%s), want finished: time budget spent", o, reason)
	}
	if h := c2.History(); len(h) != 0 {
		t.Fatalf("%d steps trained past the time budget", len(h))
	}
}

// A plateau schedule's reductions survive a coordinator restart: the
// learning rate does not jump back to base.
func TestClusterScheduleStateSurvivesRestart(t *testing.T) {
	jc := testJob(testCorpus(t), 30)
	jc.Schedule.Kind = "plateau"
	jc.Schedule.Plateau.Patience = 0
	jc.Schedule.Plateau.Factor = 0.5
	jc.Schedule.Plateau.Threshold = 0.99 // no validation counts as better: every one reduces
	jc.Train.ValidateEvery = 5
	dir := t.TempDir()
	tc := startCluster(t, jc, dir, false)
	tc.addWorker("w1")
	tc.wait(time.Minute)
	tc.wg.Wait()
	factor := tc.coord.sched.Factor()
	if factor >= 1 {
		t.Fatalf("the plateau schedule never reduced (factor %v)", factor)
	}
	addr := tc.coord.Addr()
	tc.coord.Close()
	jc.Train.Steps = 40
	c2 := restart(t, jc, dir, addr, tc.secret)
	if got := c2.sched.Factor(); got != factor {
		t.Fatalf("restarted schedule factor %v, want %v", got, factor)
	}
}

// A coordinator restarted with another job while the old workers live:
// they drop their state and train the new job; no checkpoint of the old
// model is written under the new job, and a fresh worker can join.
func TestClusterWorkersDropStateOfAnotherJob(t *testing.T) {
	corpus := testCorpus(t)
	jc := testJob(corpus, 100000)
	tc := startCluster(t, jc, t.TempDir(), false)
	tc.addWorker("w1")
	tc.addWorker("w2")
	tc.waitSteps(12, time.Minute)
	addr := tc.coord.Addr()
	tc.coord.Close()

	job2 := testJob(corpus, 25)
	job2.Model.Hidden = 48
	dir2 := t.TempDir()
	c2 := restart(t, job2, dir2, addr, tc.secret)
	tc.addWorker("w3")
	waitDone(t, c2, 2*time.Minute)
	o, _, ck := c2.Outcome()
	if o != planner.Finished || ck != 25 {
		t.Fatalf("outcome %v, checkpoint %d, want finished at 25", o, ck)
	}
	// The new job starts from its own step 0 (a worker may complete that
	// step in a generation superseded as the old workers join: then the
	// record starts at step 1), never from the old job's state.
	h := c2.History()
	if len(h) == 0 || h[0].Step > 1 {
		t.Fatalf("the new job's history starts at %v, want step 0 or 1", h[:min(len(h), 3)])
	}
	tc.wg.Wait()
	for id, w := range tc.workers {
		if jc, hash, _ := w.Job(); hash != job2.Hash() || jc.Model.Hidden != 48 {
			t.Errorf("worker %s holds job %s (hidden %d), want %s", id, hash, jc.Model.Hidden, job2.Hash())
		}
	}
}

// The status stream carries every step and the run's life, ends with how
// the run ended, and metrics.jsonl holds the same events; after a resume
// the loss curve covers the whole run.
func TestClusterStatusStream(t *testing.T) {
	jc := testJob(testCorpus(t), 30)
	dir := t.TempDir()
	tc := startCluster(t, jc, dir, false)
	var streamed []events.Event
	watched := make(chan error, 1)
	go func() {
		watched <- cluster.Watch(t.Context(), tc.coord.Addr(), tc.coord.sec, 0, true, func(e events.Event) error {
			streamed = append(streamed, e)
			return nil
		})
	}()
	tc.addWorker("w1")
	tc.addWorker("w2")
	tc.wait(time.Minute)
	select {
	case err := <-watched:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the status stream did not end with the run")
	}
	var steps []int64
	kinds := map[events.EventKind]int{}
	for _, e := range streamed {
		kinds[e.Kind]++
		if e.Kind == events.EventStep {
			steps = append(steps, e.Step)
			if e.Tokens <= 0 || e.TotalTokens < e.Tokens || e.Members < 1 || e.StateCRC == 0 {
				t.Fatalf("step event %+v lacks its figures", e)
			}
		}
	}
	for i, s := range steps {
		if s != int64(i+1) {
			t.Fatalf("step events %v, want 1..30", steps)
		}
	}
	if len(steps) != 30 || kinds[events.EventStart] != 1 || kinds[events.EventJoined] != 2 || kinds[events.EventGeneration] == 0 || kinds[events.EventValidation] == 0 || kinds[events.EventCheckpoint] == 0 {
		t.Fatalf("event kinds %v, %d steps", kinds, len(steps))
	}
	if last := streamed[len(streamed)-1]; last.Kind != events.EventFinished || last.StateChecks == 0 {
		t.Fatalf("the stream ends with %+v, want finished with state checks", last)
	}
	tc.wg.Wait()
	addr := tc.coord.Addr()
	tc.coord.Close()
	saved, bad, err := events.ReadEventsFile(filepath.Join(dir, events.MetricsFile))
	if err != nil || bad != 0 || len(saved) != len(streamed) {
		t.Fatalf("metrics.jsonl: %d events (%d bad, %v), the stream had %d", len(saved), bad, err, len(streamed))
	}
	for i := range saved {
		if saved[i].Seq != streamed[i].Seq || saved[i].Kind != streamed[i].Kind || saved[i].Step != streamed[i].Step {
			t.Fatalf("event %d: file %+v, stream %+v", i, saved[i], streamed[i])
		}
	}

	jc.Train.Steps = 40
	c2 := restart(t, jc, dir, addr, tc.secret)
	if n := len(c2.curve.train); n != 30 {
		t.Fatalf("the resumed loss curve starts with %d points, want the 30 of the first process", n)
	}
}

// Periodic validation is a sample sized from the first timed validation
// (2% of the training time between validations), not the whole set;
// train.val_windows fixes it instead.
func TestClusterValidationIsASample(t *testing.T) {
	jc := testJob(testCorpus(t), 30)
	jc.Train.ValWindows = 0
	jc.Train.ValidateEvery = 5
	tc := startCluster(t, jc, t.TempDir(), false)
	tc.addWorker("w1")
	tc.wait(time.Minute)
	tc.wg.Wait()
	tc.coord.mu.Lock()
	n := tc.coord.valSample
	got := tc.coord.toProto(planner.Plan{Action: planner.Run, Validate: true}).ValBatches
	tc.coord.mu.Unlock()
	if n <= 0 || got != int32(n) {
		t.Fatalf("validation sample %d, plans ask for %d: want a sized sample", n, got)
	}
	jc.Train.ValWindows = 3
	c2 := restart(t, jc, t.TempDir(), "127.0.0.1:0", tc.secret)
	if got := c2.toProto(planner.Plan{Action: planner.Run, Validate: true}).ValBatches; got != 3 {
		t.Fatalf("with train.val_windows 3, plans ask for %d batches, want 3 (every task honours it)", got)
	}
}
