package coordinator

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/pkg/checkpoint"
)

// Every checkpoint at a validation step carries the validation loss of
// its own state, not the newest one recorded when it was saved (the
// workers report a step's validation after its state was fetched), so the
// best checkpoint is the saved state with the lowest validation loss.
// Checkpoints every 2 steps of a fast job: saves fall behind, and most
// are skipped as superseded.
func TestBestCheckpointIsTheLowestSaved(t *testing.T) {
	jc := testJob(testCorpus(t), 40)
	jc.Train.CheckpointEvery, jc.Train.ValidateEvery = 2, 2
	jc.Schedule.BaseLR = 0.05 // the validation loss rises near the end: the best is not the last
	dir := t.TempDir()
	tc := startCluster(t, jc, dir, false)
	tc.addWorker("w1")
	tc.wait(time.Minute)
	tc.coord.Close()
	evs, _, err := events.ReadEventsFile(filepath.Join(dir, events.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	val := map[uint64]float64{}
	for _, e := range evs {
		if e.Kind == events.EventValidation {
			val[uint64(e.Step)] = e.ValLoss
		}
	}
	st, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	infos, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) == 0 {
		t.Fatal("no checkpoint")
	}
	best, lowest := -1, math.Inf(1)
	for i, in := range infos {
		v, ok := in.Metrics["val_loss"]
		want, validated := val[in.Step]
		if !validated || !ok || v != want {
			t.Errorf("checkpoint of step %d: val_loss %v (present %v), its validation %v (present %v)", in.Step, v, ok, want, validated)
		}
		if in.Best {
			best = i
		}
		lowest = min(lowest, v)
	}
	if best < 0 || infos[best].Metrics["val_loss"] != lowest {
		t.Errorf("the best checkpoint %+v; the lowest validation loss saved is %v", infos, lowest)
	}
}

// A checkpoint superseded by a newer one on its way is skipped, unless it
// is the best validated state so far; one older than a saved checkpoint is
// always skipped (the store would drop the newer one).
func TestSkipSave(t *testing.T) {
	for _, tc := range []struct {
		step, saved  int64
		newer        bool
		v, best      float64
		validated, w bool
	}{
		{10, 5, false, 1, 1, true, false},
		{10, 5, true, 1, 0.5, true, true},
		{10, 5, true, 0.5, 0.5, true, false}, // the best so far
		{10, 5, true, 0.5, 0.5, false, true}, // not validated: cannot be the best
		{10, 12, false, 0.5, 0.5, true, true},
		{10, 12, true, 0.5, 0.5, true, true},
		{10, -1, false, 0, math.Inf(1), false, false},
	} {
		if got := skipSave(tc.step, tc.saved, tc.newer, tc.v, tc.validated, tc.best); got != tc.w {
			t.Errorf("%+v: skip %v", tc, got)
		}
	}
}
