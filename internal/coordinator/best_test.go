package coordinator

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/planner"
	"github.com/recur-ml/recur/pkg/checkpoint"
)

// bestOf returns the step of the lowest loss in val among steps (the
// earliest of equals), as the store chooses; 0 when none has a loss.
func bestOf(val map[int64]float64, steps []int64) int64 {
	best := int64(0)
	for _, s := range steps {
		v, ok := val[s]
		if ok && (best == 0 || v < val[best] || v == val[best] && s < best) {
			best = s
		}
	}
	return best
}

// Every checkpoint's val_loss is the validation loss of its own state,
// never an older validation's carried forward (checkpoints between
// validations have none), and every validated state is checkpointed: the
// best checkpoint is chosen by it, and the checkpoint events name it.
// Which intermediate checkpoints are saved depends on timing here (a
// newer fetched state supersedes one waiting to be saved, and this tiny
// model runs ten steps faster than a fetch); whatever is saved is checked.
func TestCheckpointCarriesItsOwnValidation(t *testing.T) {
	jc := testJob(testCorpus(t), 32)
	jc.Train.CheckpointEvery, jc.Train.ValidateEvery = 4, 10 // checkpoints at 4, 8, 10, 12, ...; the final 32 is validated too
	dir := t.TempDir()
	c, stop := oneWorker(t, jc, dir, nil)
	waitDone(t, c, time.Minute)
	evs, _, _ := c.status.Since(0)
	stop()
	c.Close()
	val := map[int64]float64{}
	var ckSteps []int64
	for _, e := range evs {
		switch e.Kind {
		case events.EventValidation:
			val[e.Step] = e.ValLoss
		case events.EventCheckpoint:
			ckSteps = append(ckSteps, e.Step)
			if e.ValLoss != val[e.Step] {
				t.Errorf("checkpoint event of step %d: validation loss %v, its step's validation %v", e.Step, e.ValLoss, val[e.Step])
			}
			if want := bestOf(val, ckSteps); e.BestStep != want || e.BestValLoss != val[want] {
				t.Errorf("checkpoint event of step %d names the best %d (%v), want %d (%v)", e.Step, e.BestStep, e.BestValLoss, want, val[want])
			}
		}
	}
	st, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	infos, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, in := range infos {
		steps = append(steps, int64(in.Step))
		v, has := in.Metrics["val_loss"]
		want, validated := val[int64(in.Step)]
		t.Logf("checkpoint of step %d: val_loss %v (present %v)", in.Step, v, has)
		if has != validated || v != want {
			t.Errorf("checkpoint of step %d: val_loss %v (present %v), its step's validation %v (present %v)", in.Step, v, has, want, validated)
		}
	}
	if len(steps) == 0 || steps[len(steps)-1] != 32 {
		t.Fatalf("checkpoints %v, want the final one, 32", steps)
	}
	best, _, err := st.Best(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := bestOf(val, steps); int64(best.Step) != want {
		t.Errorf("the store's best is step %d, want %d (validations %v)", best.Step, want, val)
	}
}

// ownValidation waits for the validation of a validated step, which
// workers report after running it, when its snapshot may have been
// fetched already; it gives up with ctx, and does not wait for a step the
// plan does not validate.
func TestOwnValidationWaitsForTheReport(t *testing.T) {
	jc := testJob(testCorpus(t), 100)
	p, err := planner.New(planner.Config{ValidateEvery: 10, LR: func(int64, int) float64 { return 1 }}, -1, "coord:1")
	if err != nil {
		t.Fatal(err)
	}
	c := &Coordinator{cfg: CoordinatorConfig{Job: jc, WarnEvery: time.Hour}, log: zap.NewNop(), p: p, changed: make(chan struct{}),
		closed: make(chan struct{}), validated: map[int64]bool{}, curve: newLossCurve()}
	type result struct {
		v  float64
		ok bool
	}
	got := make(chan result, 1)
	go func() {
		v, ok := c.ownValidation(t.Context(), 20, true)
		got <- result{v, ok}
	}()
	select {
	case r := <-got:
		t.Fatalf("returned %v before the validation was reported", r)
	case <-time.After(100 * time.Millisecond):
	}
	c.mu.Lock()
	c.validated[20] = true
	c.curve.addVal(20, 1.25)
	close(c.changed) // what broadcast does after every report
	c.changed = make(chan struct{})
	c.mu.Unlock()
	select {
	case r := <-got:
		if r != (result{1.25, true}) {
			t.Fatalf("got %v, want the validation of step 20, 1.25", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the validation was reported")
	}
	if v, ok := c.ownValidation(t.Context(), 25, true); ok {
		t.Errorf("step 25 (not validated by the plan): %v, want none at once", v)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if v, ok := c.ownValidation(ctx, 30, true); ok {
		t.Errorf("step 30, never reported: %v, want none once ctx ends", v)
	}
}

// A resumed run's start event names the best checkpoint from before the
// resume, so that a watcher of the new coordinator knows it.
func TestStartEventNamesTheBestCheckpoint(t *testing.T) {
	jc := testJob(testCorpus(t), 20)
	dir := t.TempDir()
	c, stop := oneWorker(t, jc, dir, nil)
	waitDone(t, c, time.Minute)
	stop()
	best, _, err := c.store.Best(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	jc.Train.Steps = 25
	c2, _ := oneWorker(t, jc, dir, nil)
	evs, _, _ := c2.status.Since(0)
	if len(evs) == 0 || evs[0].Kind != events.EventStart {
		t.Fatalf("first event %v, want the start", evs)
	}
	if e := evs[0]; e.BestStep != int64(best.Step) || e.BestValLoss != best.Metrics["val_loss"] {
		t.Errorf("start event names the best %d (%v), the store's is %d (%v)", e.BestStep, e.BestValLoss, best.Step, best.Metrics["val_loss"])
	}
	waitDone(t, c2, time.Minute)
}

// train.early_stop ends the run as finished once that many validations in
// a row did not improve on the best, naming the key, the best and its step.
func TestEarlyStop(t *testing.T) {
	jc := testJob(testCorpus(t), 100000)
	jc.Train.ValidateEvery, jc.Train.CheckpointEvery, jc.Train.EarlyStop = 5, 5, 2
	jc.Schedule.BaseLR = 1e-30 // no update changes a float32 weight: the validation loss never improves
	c, _ := oneWorker(t, jc, t.TempDir(), nil)
	waitDone(t, c, time.Minute)
	o, reason, ck := c.Outcome()
	// Validations at 5 (the best), 10 and 15 (not better): the report of
	// step 15 asks for the stop, which comes at the next step boundary:
	// the final state is that of step 17.
	if o != planner.Finished || !strings.Contains(reason, "early stop (train.early_stop 2)") || !strings.Contains(reason, "(step 5)") || ck != 17 {
		t.Fatalf("outcome %v (%s), final checkpoint %d; want finished by early stop after the validation of step 15, the best at step 5", o, reason, ck)
	}
	// Every validation measured the same weights: the best checkpoint is
	// the earliest saved (which ones are saved depends on timing here).
	best, _, err := c.store.Best(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if best.Metrics["val_loss"] != best.Metrics["best_val_loss"] || best.Metrics["best_val_step"] != 5 {
		t.Fatalf("best checkpoint of step %d: metrics %v, want the loss of step 5's validation", best.Step, best.Metrics)
	}
}
