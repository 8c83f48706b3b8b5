package task

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
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
			for i, frac := range []float64{0.5, 0.7, 0.8, 0.9} {
				vf := []float64{0.1, 0.2, 0.3, 0.25}[i]
				j.Data.Seq, j.Data.Horizon, j.Data.TrainFraction, j.Data.ValFraction = seq, h, frac, vf
				name := fmt.Sprintf("seq=%d horizon=%d train_fraction=%v val_fraction=%v", seq, h, frac, vf)
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
				valStart := testStart - int(vf*float64(testStart))
				va := et.valWindows()
				if first, end := va.Start(0)+seq, va.Start(va.Len()-1)+seq+H; first != valStart || end != testStart {
					t.Errorf("%s: validation targets in rows [%d, %d), want [%d, %d)", name, first, end, valStart, testStart)
				}
				tr := et.trainWindows()
				if end := tr.Start(tr.Len()-1) + seq + H; end != valStart {
					t.Errorf("%s: training windows' targets end at row %d, want %d", name, end, valStart)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no case ran")
	}
}

// data.inputs and data.targets take names or indices; a time column is an
// input by default and never a target; errors name the key.
func TestForecastColumns(t *testing.T) {
	names := []string{"Year", "value", "other"}
	for _, tc := range []struct {
		inputs, targets string
		wantIn, wantTg  []int
		err             string
	}{
		{"", "", []int{0, 1, 2}, []int{1, 2}, ""},
		{"", "value", []int{0, 1, 2}, []int{1}, ""},
		{"1, 2", "2", []int{1, 2}, []int{2}, ""},
		{"value,Year", "", []int{1, 0}, []int{1}, ""},
		{"", "Year", nil, nil, "data.targets: column \"Year\" is a time axis"},
		{"", "0", nil, nil, "data.targets: column \"Year\" is a time axis"},
		{"value", "other", nil, nil, "config data.inputs: target column \"other\""},
		{"", "nope", nil, nil, "config data.targets: no column \"nope\""},
		{"3", "", nil, nil, "config data.inputs: no column \"3\""},
		{"value,value", "", nil, nil, "named twice"},
		{"Year", "", nil, nil, "config data.targets: every input column"},
	} {
		d := job.DataConfig{Inputs: tc.inputs, Targets: tc.targets}
		in, tg, err := forecastColumns(d, names)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("inputs %q targets %q: %v, want %q", tc.inputs, tc.targets, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(in) != fmt.Sprint(tc.wantIn) || fmt.Sprint(tg) != fmt.Sprint(tc.wantTg) {
			t.Errorf("inputs %q targets %q: %v %v %v, want %v %v", tc.inputs, tc.targets, in, tg, err, tc.wantIn, tc.wantTg)
		}
	}
}

// FuzzForecastColumns: any data.inputs / data.targets value is columns or
// an error naming its key, never a panic.
func FuzzForecastColumns(f *testing.F) {
	for _, s := range []string{"", "a", "0,1", "year", " b , 2", ",", "-1", "99999999999999999999"} {
		f.Add(s, s)
	}
	names := []string{"year", "a", "b"}
	f.Fuzz(func(t *testing.T, inputs, targets string) {
		in, tg, err := forecastColumns(job.DataConfig{Inputs: inputs, Targets: targets}, names)
		if err != nil {
			if !strings.Contains(err.Error(), "config data.") {
				t.Fatalf("error names no key: %v", err)
			}
			return
		}
		for _, c := range tg {
			if c < 0 || c >= len(names) || TimeColumn(names[c]) || !slices.Contains(in, c) {
				t.Fatalf("inputs %v, targets %v", in, tg)
			}
		}
	})
}

// data.val is an error for a forecast, naming the key, never ignored.
func TestForecastRefusesVal(t *testing.T) {
	j := forecastJob(t, 200)
	j.Data.Seq, j.Data.Val, j.Train.Steps = 8, "/nonexistent.csv", 10
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "config data.val") {
		t.Fatalf("Validate: %v", err)
	}
	if _, err := Open(j); err == nil || !strings.Contains(err.Error(), "config data.val") {
		t.Fatalf("Open: %v", err)
	}
}

// Eval measures the model and every baseline on the same test windows,
// by target and step: on an exactly periodic series the seasonal naive
// forecast is exact, persistence is not, and the figures match a direct
// computation from the rows.
func TestForecastEval(t *testing.T) {
	const rows, season = 400, 12
	var b strings.Builder
	b.WriteString("year,v\n")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "%d,%g\n", 1900+i, 5+2*math.Sin(2*math.Pi*float64(i)/season))
	}
	j := forecastJob(t, 10)
	j.Data.Train, j.Data.Seq, j.Data.Horizon, j.Data.Season = writeFile(t, "periodic.csv", b.String()), 16, 3, season
	mc, err := Model(j)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := EvaluateReport(j, m)
	if err != nil {
		t.Fatal(err)
	}
	fe := r.Forecast
	want := []string{MethodModel, MethodPersistence, MethodSeasonal, MethodLinearAR}
	if fmt.Sprint(fe.Methods) != fmt.Sprint(want) || fmt.Sprint(fe.Targets) != "[v]" {
		t.Fatalf("methods %v targets %v (notes %q)", fe.Methods, fe.Targets, fe.Notes)
	}
	testStart := int(0.9 * rows)
	if fe.Windows != rows-testStart-j.Data.Horizon+1 {
		t.Fatalf("%d test windows, want %d", fe.Windows, rows-testStart-j.Data.Horizon+1)
	}
	for h := 0; h < fe.Horizon; h++ {
		var se float64
		for w := 0; w < fe.Windows; w++ {
			last := testStart - 1 + w
			v := func(r int) float64 { return 5 + 2*math.Sin(2*math.Pi*float64(r)/season) }
			d := v(last) - v(last+1+h)
			se += d * d
		}
		if got, want := fe.RMSE[1][0][h], math.Sqrt(se/float64(fe.Windows)); math.Abs(got-want) > 1e-3 {
			t.Errorf("persistence rmse at step %d: %v, want %v", h+1, got, want)
		}
		if fe.RMSE[2][0][h] > 1e-3 || fe.MAE[2][0][h] > 1e-3 {
			t.Errorf("seasonal naive at step %d: rmse %v mae %v, want 0", h+1, fe.RMSE[2][0][h], fe.MAE[2][0][h])
		}
	}
	if fe.AROrder < 1 || fe.AROrder > 2*season {
		t.Errorf("AR order %d", fe.AROrder)
	}
	if got := r.Metrics["rmse_step_3_persistence"]; got != fe.RMSE[1][0][2] {
		t.Errorf("rmse_step_3_persistence %v, want %v", got, fe.RMSE[1][0][2])
	}
}

// The AR order grid grows by about half each step and ends at its top.
func TestAROrders(t *testing.T) {
	for top, want := range map[int]string{1: "[1]", 4: "[1 2 3 4]", 24: "[1 2 3 4 6 8 12 16 24]", 30: "[1 2 3 4 6 8 12 16 24 30]"} {
		if got := fmt.Sprint(arOrders(top)); got != want {
			t.Errorf("arOrders(%d) = %s, want %s", top, got, want)
		}
	}
}

// The test-set CSV holds every test window, step and target once, and the
// RMSE recomputed from it is what eval reports, for every method.
func TestPredictTestSetMatchesEval(t *testing.T) {
	j := forecastJob(t, 300)
	j.Data.Seq, j.Data.Horizon, j.Data.Season = 12, 2, 12
	mc, err := Model(j)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := PredictTestSet(j, m, &out); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	r, err := EvaluateReport(j, m)
	if err != nil {
		t.Fatal(err)
	}
	fe := r.Forecast
	if want := append([]string{"origin", "row", "step", "column", "actual"}, fe.Methods...); fmt.Sprint(recs[0]) != fmt.Sprint(want) {
		t.Fatalf("header %v, want %v", recs[0], want)
	}
	if n, want := len(recs)-1, fe.Windows*fe.Horizon*len(fe.Targets); n != want {
		t.Fatalf("%d lines, want %d", n, want)
	}
	se := map[string]float64{}
	for _, rec := range recs[1:] {
		origin, _ := strconv.Atoi(rec[0])
		row, _ := strconv.Atoi(rec[1])
		step, _ := strconv.Atoi(rec[2])
		if row != origin+step || row < fe.Data.TestStart {
			t.Fatalf("line %v: target row %d not held out (test from %d)", rec, row, fe.Data.TestStart)
		}
		actual, _ := strconv.ParseFloat(rec[4], 64)
		for mi, name := range fe.Methods {
			v, _ := strconv.ParseFloat(rec[5+mi], 64)
			se[fmt.Sprint(name, rec[3], step)] += (v - actual) * (v - actual)
		}
	}
	for mi, name := range fe.Methods {
		for k, col := range fe.Targets {
			for h := 0; h < fe.Horizon; h++ {
				got := math.Sqrt(se[fmt.Sprint(name, col, h+1)] / float64(fe.Windows))
				if want := fe.RMSE[mi][k][h]; math.Abs(got-want) > 1e-5*(1+want) {
					t.Errorf("%s %s step %d: CSV gives rmse %v, eval %v", name, col, h+1, got, want)
				}
			}
		}
	}
}

// A model that reads a subset of the columns predicts from a CSV with all
// of them, and its export says which it reads.
func TestForecastInputsSubset(t *testing.T) {
	j := forecastJob(t, 200)
	j.Data.Seq, j.Data.Horizon, j.Data.Inputs = 8, 2, "value,other"
	mc, err := Model(j)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Input != 2 || mc.Outputs != 4 {
		t.Fatalf("model input %d outputs %d, want 2 and 4", mc.Input, mc.Outputs)
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Predict(j, m, j.Data.Train, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Forecast []float64
		Columns  []int
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil || len(got.Forecast) != 4 || fmt.Sprint(got.Columns) != "[1 2]" {
		t.Fatalf("prediction %s: %v", out.String(), err)
	}
	sc, err := ForecastScaling(j)
	if err != nil || fmt.Sprint(sc.Inputs, sc.Targets) != "[1 2] [1 2]" {
		t.Fatalf("scaling %+v, %v", sc, err)
	}
}

// textSeriesCSV is n rows of a date string, a value and a text label.
func textSeriesCSV(n int) string {
	var b strings.Builder
	b.WriteString("date,value,label\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s-1-%d,%.3f,%s\n", time.Month(i%12 + 1).String()[:3], 1990+i/12, 50+10*math.Sin(float64(i)/2), []string{"low", "high"}[i%2])
	}
	return b.String()
}

// A column the model would read that is not all numbers is an error
// naming file:line, the column and the key that leaves it out; columns it
// does not read may hold text; a time column is never a target.
func TestForecastNonNumericColumns(t *testing.T) {
	j := forecastJob(t, 10)
	j.Data.Train, j.Data.Seq = writeFile(t, "text.csv", textSeriesCSV(120)), 6
	for _, tc := range []struct {
		inputs, targets string
		want            []string
	}{
		{"", "", []string{`config data.train: text.csv:2: column "date": expected a finite number, got "Jan-1-1990"`,
			"unless data.inputs lists the ones to read", "set data.inputs to numeric columns (here: value)", `"date" is skipped`, "time axis"}},
		{"", "value", []string{`config data.train: text.csv:2: column "date"`, "set data.inputs"}},
		{"value,label", "value", []string{`config data.inputs: text.csv:2: column "label": expected a finite number, got "low"`,
			`"label" is listed in data.inputs`, "leave it out of data.inputs and data.targets"}},
		{"date,value", "", []string{`config data.inputs: text.csv:2: column "date"`, "need not be read"}},
		{"value", "date", []string{`config data.targets: column "date" is a time axis`}},
		{"value,date", "date", []string{`config data.targets: column "date" is a time axis`}},
	} {
		j.Data.Inputs, j.Data.Targets = tc.inputs, tc.targets
		_, err := Open(j)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("inputs %q targets %q: %v, want %q", tc.inputs, tc.targets, err, w)
			}
		}
	}
	j.Data.Inputs, j.Data.Targets = "value", ""
	d, err := DescribeForecast(j)
	if err != nil {
		t.Fatal(err)
	}
	if want := "inputs value; targets value; not read: date,label; rows: training 0-97, validation 98-107, test 108-119"; d.String() != want {
		t.Errorf("got %q, want %q", d, want)
	}
	m := newModel(t, j)
	var out strings.Builder
	if err := Predict(j, m, j.Data.Train, &out); err != nil || !strings.Contains(out.String(), `"forecast"`) {
		t.Errorf("predict from a CSV with text columns: %q %v", out.String(), err)
	}
	bad := writeFile(t, "bad.csv", strings.Replace(textSeriesCSV(20), "Mar-1-1990,", "Mar-1-1990,n/a", 1))
	if err := Predict(j, m, bad, io.Discard); err == nil || !strings.HasPrefix(err.Error(), `bad.csv:4: column "value": expected a finite number, got "n/a`) ||
		!strings.HasSuffix(err.Error(), `(the model reads column "value")`) {
		t.Errorf("predict from a CSV whose input has text: %v", err)
	}
	sc, err := ForecastScaling(j)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(sc); err != nil || sc.Mean[0] != 0 || sc.Std[0] != 1 || sc.Std[1] <= 1 {
		t.Errorf("scaling %+v: %v", sc, err)
	}
}

func newModel(t *testing.T, j job.Config) *rnn.Model[float32] {
	t.Helper()
	mc, err := Model(j)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With data.residual the network learns a baseline's error: its training
// targets are the values less the baseline's forecast, and a network that
// outputs zero forecasts exactly what the baseline does, in eval, in
// predict and in the loss (the forecast's error either way).
func TestForecastResidual(t *testing.T) {
	base := forecastJob(t, 300)
	base.Data.Seq, base.Data.Horizon, base.Data.Season, base.Data.Inputs, base.Data.Targets = 12, 3, 12, "value,other", "other,value"
	plain := openForecast(t, base)
	for _, tc := range []struct {
		residual, method string
	}{{job.ResidualLast, MethodPersistence}, {job.ResidualAR, MethodLinearAR}} {
		t.Run(tc.residual, func(t *testing.T) {
			j := base
			j.Data.Residual = tc.residual
			et := openForecast(t, j)
			// Training targets: the plain ones less the baseline.
			for _, set := range []int{0, 1} {
				if err := et.SetRing(set, 2); err != nil {
					t.Fatal(err)
				}
				if err := plain.SetRing(set, 2); err != nil {
					t.Fatal(err)
				}
				for step := int64(0); step < 3; step++ {
					rb, _, _, err := et.Batch(step)
					if err != nil {
						t.Fatal(err)
					}
					got := append([]float32(nil), rb.Y...)
					pb, _, _, err := plain.Batch(step)
					if err != nil {
						t.Fatal(err)
					}
					for r := 0; r < pb.B; r++ {
						x := make([]float32, 0, pb.T*et.dim)
						for s := 0; s < pb.T; s++ {
							x = append(x, pb.X[(s*pb.B+r)*et.dim:(s*pb.B+r+1)*et.dim]...)
						}
						for k := 0; k < et.outputs; k++ {
							want := pb.Y[r*et.outputs+k] - float32(et.residual.predict(x, k))
							if d := got[r*et.outputs+k] - want; d > 1e-5 || d < -1e-5 {
								t.Fatalf("rank %d step %d row %d output %d: target %v, want %v", set, step, r, k, got[r*et.outputs+k], want)
							}
						}
					}
				}
			}
			m := newModel(t, j)
			clear(m.Params.Value) // outputs 0: the forecast is the baseline's
			r, err := EvaluateReport(j, m)
			if err != nil {
				t.Fatal(err)
			}
			fe := r.Forecast
			bi := slices.Index(fe.Methods, tc.method)
			for k := range fe.Targets {
				for h := 0; h < fe.Horizon; h++ {
					if got, want := fe.RMSE[0][k][h], fe.RMSE[bi][k][h]; math.Abs(got-want) > 1e-4*max(1, want) {
						t.Errorf("%s step %d: model RMSE %v, %s %v", fe.Targets[k], h+1, got, tc.method, want)
					}
				}
			}
			// The normalised loss is the forecast's MSE, not the residual's
			// scale: the same for the baseline as the plain model's
			// figures computed from the RMSE.
			var want float64
			for k, c := range et.testWindows().TargetColumns() {
				for h := 0; h < fe.Horizon; h++ {
					e := fe.RMSE[bi][k][h] / et.norm.Std[c]
					want += e * e
				}
			}
			want /= float64(len(fe.Targets) * fe.Horizon)
			if got := r.Metrics["loss"]; math.Abs(got-want) > 1e-4*max(1, want) {
				t.Errorf("loss %v, want the baseline's normalised MSE %v", got, want)
			}
			var out strings.Builder
			if err := Predict(j, m, j.Data.Train, &out); err != nil {
				t.Fatal(err)
			}
			var got struct{ Forecast []float64 }
			if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
				t.Fatal(err)
			}
			s := et.testWindows().Series()
			win := et.window(s, s.Rows-j.Data.Seq)
			for i, v := range got.Forecast {
				c := et.testWindows().TargetColumns()[i%2]
				if want := et.norm.Inverse(et.residual.predict(win.X, i), c); math.Abs(v-want) > 1e-6*max(1, math.Abs(want)) {
					t.Errorf("predict output %d: %v, the baseline's %v", i, v, want)
				}
			}
			sc, err := ForecastScaling(j)
			if err != nil || sc.Residual != tc.residual || (sc.AR != nil) != (tc.residual == job.ResidualAR) {
				t.Fatalf("scaling residual %q ar %v: %v", sc.Residual, sc.AR, err)
			}
		})
	}
}

func openForecast(t *testing.T, j job.Config) *exampleTask {
	t.Helper()
	tk, err := Open(j)
	if err != nil {
		t.Fatal(err)
	}
	return tk.(*exampleTask)
}

// FuzzForecastCSV: any CSV and column choice opens as a forecast or is an
// error naming its key (a text column the model would read names its
// file:line), never a panic; what opens reads only numeric columns.
func FuzzForecastCSV(f *testing.F) {
	f.Add("date,v\nJan,1\nFeb,2\nMar,3\nApr,4\nMay,5\nJun,6\nJul,7\n", "v", "")
	f.Add("date,v\nJan,1\nFeb,2\nMar,3\nApr,4\nMay,5\nJun,6\nJul,7\n", "", "")
	f.Add("a,b\n1,x\n2,\n3,4\n4,5\n5,6\n6,7\n7,8\n", "a,b", "a")
	f.Add(textSeriesCSV(30), "value", "value")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text, inputs, targets string) {
		p := filepath.Join(dir, "f.csv")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		j := job.Default()
		j.Task.Kind, j.Data.Train, j.Data.Seq, j.Data.Batch, j.Data.Inputs, j.Data.Targets = job.TaskForecast, p, 2, 2, inputs, targets
		j.Data.TrainFraction, j.Model.Hidden, j.Model.Layers, j.Cluster.MemoryLimit = 0.5, 4, 1, "8GB"
		tk, err := Open(j)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config data") {
				t.Fatalf("error names no key: %v", err)
			}
			return
		}
		et := tk.(*exampleTask)
		s := et.trainWindows().Series()
		for _, c := range et.trainWindows().InputColumns() {
			if !s.Numeric(c) {
				t.Fatalf("opened with text column %q as an input", s.Names[c])
			}
		}
	})
}

// EvaluateForecast on the validation split measures the validation
// windows (where configurations are compared) with the same methods, and
// its loss is the validation loss training reports; other splits and
// tasks are refused.
func TestEvaluateForecastValidation(t *testing.T) {
	j := forecastJob(t, 300)
	j.Data.Seq, j.Data.Horizon, j.Data.Season = 12, 2, 12
	m := newModel(t, j)
	r, err := EvaluateForecast(j, m, SplitValidation)
	if err != nil {
		t.Fatal(err)
	}
	et := openForecast(t, j)
	va := et.valWindows()
	fe := r.Forecast
	if fe.Split != SplitValidation || fe.Windows != va.Len() || fe.Windows == et.testWindows().Len() {
		t.Fatalf("split %q, %d windows; validation has %d, test %d", fe.Split, fe.Windows, va.Len(), et.testWindows().Len())
	}
	s, c := va.Series(), va.TargetColumns()
	var se float64
	for w := 0; w < va.Len(); w++ {
		last := va.Start(w) + j.Data.Seq - 1
		d := s.At(last, c[0]) - s.At(last+2, c[0])
		se += d * d
	}
	pi := slices.Index(fe.Methods, MethodPersistence)
	if got, want := fe.RMSE[pi][0][1], math.Sqrt(se/float64(va.Len())); math.Abs(got-want) > 1e-9 {
		t.Errorf("persistence at step 2 on validation: %v, want %v", got, want)
	}
	sum, count, _, err := et.Validate(m, 0, 1, 0)
	if err != nil || math.Abs(r.Metrics["loss"]-sum/count) > 1e-12 {
		t.Errorf("loss %v, validation loss %v (%v)", r.Metrics["loss"], sum/count, err)
	}
	if _, err := EvaluateForecast(j, m, "train"); err == nil {
		t.Error("split train accepted")
	}
	tr, err := EvaluateForecast(j, m, SplitTest)
	if err != nil || tr.Forecast.Split != SplitTest || tr.Forecast.Windows != et.testWindows().Len() {
		t.Errorf("test split: %+v %v", tr, err)
	}
}
