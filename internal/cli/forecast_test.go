package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/coordinator"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/checkpoint"
	"github.com/recur-ml/recur/pkg/rnn"
)

// The forecast table has a column per step and the mean, a row per
// method, for RMSE and MAE of each target, and the notes.
func TestPrintForecast(t *testing.T) {
	fig := [][][]float64{{{1, 2}}, {{3, 4}}}
	rep := &task.Report{Metrics: map[string]float64{"loss": 0.5}, Notes: []string{"the linear AR baseline is unavailable: x"},
		Forecast: &task.ForecastEval{Split: task.SplitTest, Windows: 7, Horizon: 2, Targets: []string{"v"}, Methods: []string{"model", "persistence"},
			RMSE: fig, MAE: fig, Data: &task.ForecastColumns{Inputs: []string{"v"}, Targets: []string{"v"}, Rows: 100, ValStart: 72, TestStart: 80}}}
	var b strings.Builder
	if err := printForecast(&b, "step 9", rep, time.Second); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"test set: 7 windows, targets in rows 80-99", "validation 72-79", "RMSE v  step 1  step 2", "mean",
		"model       1       2  1.581", "persistence       3       4  3.536", "MAE v", "3.5", "note: the linear AR"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	rep.Forecast.Split = task.SplitValidation
	b.Reset()
	if err := printForecast(&b, "step 9", rep, time.Second); err != nil {
		t.Fatal(err)
	}
	if want := "step 9, forecast task, validation set: 7 windows, targets in rows 72-79"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in\n%s", want, b.String())
	}
}

// recur predict wants exactly one of --input and --test-set.
func TestPredictNeedsOneSource(t *testing.T) {
	for _, args := range [][]string{{"--run", t.TempDir()}, {"--run", t.TempDir(), "--input", "x.csv", "--test-set"}} {
		if err := PredictCmd(args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--input FILE or --test-set") {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// Before a forecast trains, recur train says which columns it uses and
// how its rows are split, and refuses a time column as a target.
func TestPrintForecastData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.csv")
	var b strings.Builder
	b.WriteString("year,v\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "%d,%d\n", 1900+i, i%7)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jc := job.Default()
	jc.Task.Kind, jc.Data.Train, jc.Data.Seq = job.TaskForecast, p, 5
	var out strings.Builder
	if err := printForecastData(&out, jc); err != nil {
		t.Fatal(err)
	}
	if want := "recur: forecast data: inputs year,v; targets v; rows: training 0-80, validation 81-89, test 90-99\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	jc.Data.Targets = "year"
	if err := printForecastData(io.Discard, jc); err == nil || !strings.Contains(err.Error(), "config data.targets") {
		t.Errorf("year as a target: %v", err)
	}
}

// A run trained before data.targets existed forecast every column, a year
// column too: eval, predict and export say so and how to train it again,
// not which tensor has which shape; another mismatch names both counts.
func TestOldForecastRunSaysTrainAgain(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.csv")
	var b strings.Builder
	b.WriteString("YEAR,v\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "%d,%d\n", 1900+i, i%7)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jc := job.Default()
	jc.Task.Kind, jc.Data.Train, jc.Data.Seq, jc.Data.Horizon, jc.Model.Hidden, jc.Model.Layers = job.TaskForecast, p, 5, 2, 4, 1
	for _, tc := range []struct {
		outputs int
		want    []string
	}{
		{4, []string{"checkpoint of step 7: its model forecasts 4 values, data.horizon 2 times every column (YEAR,v), the time column YEAR included",
			"trained before data.targets existed", "train it again (recur train --config FILE --fresh, with data.inputs"}},
		{6, []string{"its model forecasts 6 values, and its job's data gives 2 (data.horizon 2 times the targets v)"}},
	} {
		run := filepath.Join(dir, fmt.Sprint("run", tc.outputs))
		writeRun(t, run, jc, tc.outputs)
		for _, cmd := range []func() error{
			func() error { return Eval([]string{"--run", run}, io.Discard, io.Discard) },
			func() error { return PredictCmd([]string{"--run", run, "--test-set"}, io.Discard, io.Discard) },
			func() error { return Export([]string{"--run", run}, io.Discard, io.Discard) },
		} {
			err := cmd()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("outputs %d: %v, want %q", tc.outputs, err, w)
				}
			}
		}
	}
}

// writeRun writes a run directory of job jc whose latest checkpoint (step
// 7) is a model with the given number of outputs.
func writeRun(t *testing.T, dir string, jc job.Config, outputs int) {
	t.Helper()
	mc, err := task.Model(jc)
	if err != nil {
		t.Fatal(err)
	}
	mc.Outputs = outputs
	m, err := rnn.New[float32](mc)
	if err != nil {
		t.Fatal(err)
	}
	params, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(jc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "job.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.WriteFile(filepath.Join(dir, coordinator.LatestCheckpointFile), &checkpoint.Checkpoint{Step: 7, Params: params, ConfigHash: jc.Hash()}); err != nil {
		t.Fatal(err)
	}
}

// recur eval --split takes test or validation, else it is a usage error.
func TestEvalSplitFlag(t *testing.T) {
	if err := Eval([]string{"--run", t.TempDir(), "--split", "train"}, io.Discard, io.Discard); ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), `--split "train"`) {
		t.Errorf("--split train: %v", err)
	}
}
