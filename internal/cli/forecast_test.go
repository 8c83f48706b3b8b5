package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
)

// The forecast table has a column per step and the mean, a row per
// method, for RMSE and MAE of each target, and the notes.
func TestPrintForecast(t *testing.T) {
	fig := [][][]float64{{{1, 2}}, {{3, 4}}}
	rep := &task.Report{Metrics: map[string]float64{"loss": 0.5}, Notes: []string{"the linear AR baseline is unavailable: x"},
		Forecast: &task.ForecastEval{Windows: 7, Horizon: 2, Targets: []string{"v"}, Methods: []string{"model", "persistence"},
			RMSE: fig, MAE: fig, Data: &task.ForecastColumns{Inputs: []string{"v"}, Targets: []string{"v"}, Rows: 100, ValStart: 72, TestStart: 80}}}
	var b strings.Builder
	if err := printForecast(&b, "step 9", rep, time.Second); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"7 windows, targets in rows 80-99", "validation 72-79", "RMSE v  step 1  step 2", "mean",
		"model       1       2  1.581", "persistence       3       4  3.536", "MAE v", "3.5", "note: the linear AR"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
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
