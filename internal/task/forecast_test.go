package task

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/shard"
)

// seriesCSV is a header and n rows of a seasonal value beside a year column.
func seriesCSV(n int) string {
	var b strings.Builder
	b.WriteString("year,value,other\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%d,%.4f,%.4f\n", 1900+i, 10+3*math.Sin(2*math.Pi*float64(i)/12)+0.01*float64(i%7), math.Cos(float64(i)/5))
	}
	return b.String()
}

func forecastJob(t *testing.T, rows int) job.Config {
	t.Helper()
	j := job.Default()
	j.Task.Kind, j.Data.Train, j.Data.Batch = job.TaskForecast, writeFile(t, "series.csv", seriesCSV(rows)), 4
	j.Model.Hidden, j.Model.Layers = 8, 1
	j.Cluster.MemoryLimit = "8GB"
	return j
}

// Every target row of every test window is held out (at or after the
// first test row), for any seq, horizon and split; training windows have
// every target row before it.
func TestForecastTestWindowsHeldOut(t *testing.T) {
	const rows = 300
	j := forecastJob(t, rows)
	n := 0
	for _, seq := range []int{1, 2, 5, 12, 24, 40} {
		for _, h := range []int{0, 1, 3, 7, 12} {
			for _, frac := range []float64{0.5, 0.7, 0.8, 0.9} {
				j.Data.Seq, j.Data.Horizon, j.Data.TrainFraction = seq, h, frac
				name := fmt.Sprintf("seq=%d horizon=%d train_fraction=%v", seq, h, frac)
				tk, err := Open(j)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				et := tk.(*exampleTask)
				testStart := int(frac * rows)
				H := max(h, 1)
				te := et.test.(*shard.WindowSet)
				if first := te.Start(0) + seq; first != testStart {
					t.Errorf("%s: first test target row %d, want %d", name, first, testStart)
				}
				if last := te.Start(te.Len()-1) + seq + H; last != rows {
					t.Errorf("%s: last test window ends at row %d, want %d", name, last, rows)
				}
				for i := 0; i < te.Len(); i++ {
					if r := te.Start(i) + seq; r < testStart {
						t.Fatalf("%s: test window %d has target row %d before the test part %d", name, i, r, testStart)
					}
				}
				tr := et.train.(*shard.WindowSet)
				if end := tr.Start(tr.Len()-1) + seq + H; end > testStart {
					t.Errorf("%s: a training window has target rows up to %d, past %d", name, end, testStart)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no case ran")
	}
}
