package coordinator

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap"
	"gonum.org/v1/plot"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
)

// writeHistory writes a synthetic metrics.jsonl: a training loss at every
// step 1..steps (one skipped), a validation every valEvery steps and at
// the last step.
func writeHistory(t *testing.T, steps, valEvery int64) string {
	path := filepath.Join(t.TempDir(), events.MetricsFile)
	l, err := events.OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	publish := func(e events.Event) {
		if _, err := l.Publish(e); err != nil {
			t.Fatal(err)
		}
	}
	for s := int64(1); s <= steps; s++ {
		publish(events.Event{Kind: events.EventStep, Step: s, Loss: 3 / math.Sqrt(float64(s)), Skipped: s == 7})
		if s%valEvery == 0 || s == steps {
			publish(events.Event{Kind: events.EventValidation, Step: s, ValLoss: 3.2 / math.Sqrt(float64(s))})
		}
	}
	return path
}

func TestLossPlotFromHistory(t *testing.T) {
	const steps = 1010
	c := curveFromHistory(readHistory(writeHistory(t, steps, 250), zap.NewNop()))
	train, val := sortedPoints(c.train), sortedPoints(c.val)
	if len(train) != steps-1 {
		t.Fatalf("%d training points, want %d (one step skipped)", len(train), steps-1)
	}
	if last := val[len(val)-1]; last.x != steps || len(val) != 5 {
		t.Fatalf("validation points %v: want 250, 500, 750, 1000 and the final one at step %d", val, steps)
	}
	p, err := lossPlot(train, val, job.TaskCharLM)
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Max < steps || p.Y.Min > val[len(val)-1].y {
		t.Fatalf("the axes (x to %v, y from %v) leave out the final validation point %v", p.X.Max, p.Y.Min, val[len(val)-1])
	}
	labels := majorLabels(p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max))
	if len(labels) < 2 {
		t.Fatalf("step ticks %q", labels)
	}
	for _, l := range labels {
		if _, err := strconv.ParseInt(l, 10, 64); err != nil {
			t.Errorf("step tick %q is not a whole number (ticks %q)", l, labels)
		}
	}
	if got := validationLegend(val); !strings.Contains(got, "step 1010") {
		t.Errorf("legend %q does not name the final validation", got)
	}
	out := filepath.Join(t.TempDir(), "loss.png")
	if err := savePlot(p, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("loss.png: %v", err)
	}
}

// TestStepTicksWhole: over a few steps the default ticks fall between
// steps; those get no label, and every label is a whole step.
func TestStepTicksWhole(t *testing.T) {
	for _, r := range [][2]float64{{1, 3}, {0, 1}, {1, 20}, {0, 250}, {100, 1e6}} {
		labels := majorLabels(stepTicks{}.Ticks(r[0], r[1]))
		if len(labels) == 0 {
			t.Errorf("%v: no labelled tick", r)
		}
		for _, l := range labels {
			if _, err := strconv.ParseInt(l, 10, 64); err != nil {
				t.Errorf("%v: tick %q is not a whole step", r, l)
			}
		}
	}
}

func TestLossAxisLabelByTask(t *testing.T) {
	for kind, want := range map[string]string{"": "nats per character", job.TaskCharLM: "nats per character",
		job.TaskClassify: "nats per example", job.TaskSeq2Seq: "nats per output token", job.TaskForecast: "mean squared error"} {
		p, err := lossPlot([]point{{1, 2}, {2, 1}}, nil, kind)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Y.Label.Text, want) {
			t.Errorf("task %q: y label %q, want %q", kind, p.Y.Label.Text, want)
		}
	}
}

func majorLabels(ticks []plot.Tick) []string {
	var out []string
	for _, t := range ticks {
		if t.Label != "" {
			out = append(out, t.Label)
		}
	}
	return out
}
