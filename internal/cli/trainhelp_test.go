package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
)

// TestTaskHelpKeys keeps the train usage true to the job's config: every
// key it names exists, every data and task key belongs to some task, and
// every task kind has its help.
func TestTaskHelpKeys(t *testing.T) {
	keys := job.Keys()
	named := map[string]bool{}
	for _, h := range taskHelps {
		for _, k := range h.keys {
			if !slices.Contains(keys, k) {
				t.Errorf("task %s: key %q is not a config key", h.kind, k)
			}
			named[k] = true
		}
		for _, c := range h.after {
			if _, ok := lookup(c); !ok {
				t.Errorf("task %s: unknown command %q", h.kind, c)
			}
		}
	}
	for _, k := range keys {
		if (strings.HasPrefix(k, "data.") || strings.HasPrefix(k, "task.")) && k != "task.kind" && !named[k] {
			t.Errorf("no task's help names %s", k)
		}
	}
	for _, kind := range []string{"", job.TaskCharLM, job.TaskClassify, job.TaskForecast, job.TaskSeq2Seq} {
		if _, ok := helpFor(kind); !ok {
			t.Errorf("no help for task %q", kind)
		}
	}
}

func TestGroupKeys(t *testing.T) {
	got := groupKeys([]string{"model.cell", "model.hidden", "optimizer.kind", "optimizer.adam.beta1", "optimizer.adam.eps", "task.eos"})
	want := []string{"model.{cell,hidden}", "optimizer.{kind,adam.*}", "task.eos"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestRunCommandsByTask: the hint after training names only commands
// that work on the run: sample for charlm, predict for the others.
func TestRunCommandsByTask(t *testing.T) {
	for kind, want := range map[string]string{"": "sample", job.TaskCharLM: "sample",
		job.TaskClassify: "predict", job.TaskForecast: "predict", job.TaskSeq2Seq: "predict"} {
		cmds := runCommands(kind)
		if !slices.Contains(cmds, want) || !slices.Contains(cmds, "eval") {
			t.Errorf("task %q: %v lacks %s or eval", kind, cmds, want)
		}
		if other := map[string]string{"sample": "predict", "predict": "sample"}[want]; slices.Contains(cmds, other) {
			t.Errorf("task %q: %v suggests %s", kind, cmds, other)
		}
	}
	var out bytes.Buffer
	newProgress(&out, 10, 0).summary("runs/f", job.TaskForecast)
	if s := out.String(); strings.Contains(s, "sample") || !strings.Contains(s, "recur predict|eval|export|status --run runs/f") {
		t.Fatalf("forecast summary: %s", s)
	}
}
