package coordinator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/recur-ml/recur/internal/job"
)

// A coordinator started on a forecast job logs, at start, which columns
// the model reads and forecasts and how the rows are split, so that a
// user of `recur coordinator --config` sees them (recur train prints them
// itself).
func TestCoordinatorLogsForecastColumns(t *testing.T) {
	var b strings.Builder
	b.WriteString("date,value,label\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "d%d,%d,l%d\n", i, i%7, i%2)
	}
	csv := filepath.Join(t.TempDir(), "s.csv")
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jc := testJob("", 1)
	jc.Task.Kind, jc.Data.Train, jc.Data.Inputs, jc.Data.Seq, jc.Data.Residual = job.TaskForecast, csv, "value", 5, job.ResidualLast
	core, logs := observer.New(zap.InfoLevel)
	c, err := NewCoordinator(CoordinatorConfig{Job: jc, Listen: "127.0.0.1:0", Gossip: "off", Dir: t.TempDir(), Secret: []byte(memSecret), Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := logs.FilterMessage("forecast data").All()
	if len(got) != 1 {
		t.Fatalf("%d forecast data entries, want 1", len(got))
	}
	want := map[string]any{"inputs": []any{"value"}, "targets": []any{"value"}, "not_read": []any{"date", "label"},
		"training_rows": "0-80", "validation_rows": "81-89", "test_rows": "90-99", "residual": "last"}
	fields := got[0].ContextMap()
	for k, v := range want {
		if fmt.Sprint(fields[k]) != fmt.Sprint(v) {
			t.Errorf("%s: %v, want %v", k, fields[k], v)
		}
	}
}
