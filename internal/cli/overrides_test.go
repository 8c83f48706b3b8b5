package cli

import (
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
)

func TestOverrides(t *testing.T) {
	t.Setenv("RECUR_MODEL_HIDDEN", "77")
	t.Setenv("RECUR_TRAIN_STEPS", "5")
	jc := job.Default()
	if err := applyOverrides(&jc, []string{"train.steps=9", "optimizer.adam.beta1=0.8", "model.cell=gru"}); err != nil {
		t.Fatal(err)
	}
	if jc.Model.Hidden != 77 || jc.Train.Steps != 9 || jc.Optimizer.Adam.Beta1 != 0.8 || jc.Model.Cell != "gru" {
		t.Fatalf("overrides not applied: %+v", jc)
	}
	for _, bad := range []string{"model.hiden=3", "model.hidden", "model.hidden=x"} {
		if err := applyOverrides(&jc, []string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "model.hid") {
			t.Errorf("%q: error %q does not name the key", bad, err)
		}
	}
}
