package cli

import (
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/cluster"
)

func TestOverrides(t *testing.T) {
	t.Setenv("RECUR_MODEL_HIDDEN", "77")
	t.Setenv("RECUR_TRAIN_STEPS", "5")
	job := cluster.DefaultJob()
	if err := applyOverrides(&job, []string{"train.steps=9", "optimizer.adam.beta1=0.8", "model.cell=gru"}); err != nil {
		t.Fatal(err)
	}
	if job.Model.Hidden != 77 || job.Train.Steps != 9 || job.Optimizer.Adam.Beta1 != 0.8 || job.Model.Cell != "gru" {
		t.Fatalf("overrides not applied: %+v", job)
	}
	for _, bad := range []string{"model.hiden=3", "model.hidden", "model.hidden=x"} {
		if err := applyOverrides(&job, []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "model.hid") {
			t.Errorf("%q: error %q does not name the key", bad, err)
		}
	}
}
