package task

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/shard"
)

// forecastSplit is the chronological split of a series' rows: training
// targets in [0, ValStart), validation targets in [ValStart, TestStart),
// test targets in [TestStart, Rows). Windows of a later part may read
// earlier rows as inputs (known history), never as targets.
type forecastSplit struct {
	Rows, ValStart, TestStart int
}

// splitRows cuts rows: the test part is the rows from
// floor(trainFraction*rows), validation the last floor(valFraction*n) of
// the n rows before it (valFraction 0: job.DefaultValFraction).
func splitRows(rows int, trainFraction, valFraction float64) forecastSplit {
	if valFraction == 0 {
		valFraction = job.DefaultValFraction
	}
	test := int(trainFraction * float64(rows))
	return forecastSplit{Rows: rows, ValStart: test - int(valFraction*float64(test)), TestStart: test}
}

// timeNames are the column names (lower-cased) that TimeColumn treats as
// a time axis.
var timeNames = []string{"year", "quarter", "month", "week", "day", "date", "time", "timestamp", "datetime", "hour", "minute", "second", "index"}

// TimeColumn reports whether a column name looks like a time axis (year,
// month, date, time, ...): such a column is left out of the default
// forecast targets and refused as a target by name.
func TimeColumn(name string) bool {
	return slices.Contains(timeNames, strings.ToLower(strings.TrimSpace(name)))
}

// parseColumns resolves a data.inputs / data.targets value: comma-separated
// column names or 0-based indices of names. "" returns nil.
func parseColumns(key, spec string, names []string) ([]int, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		c := slices.Index(names, f)
		if c < 0 {
			if n, err := strconv.Atoi(f); err == nil && n >= 0 && n < len(names) {
				c = n
			}
		}
		if c < 0 {
			return nil, fmt.Errorf("config %s: no column %q (the columns: %s; or 0-based indices below %d)", key, f, strings.Join(names, ", "), len(names))
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("config %s: column %q named twice", key, names[c])
		}
		out = append(out, c)
	}
	return out, nil
}

// forecastColumns returns the input and target columns of a series with
// the given names (see job.DataConfig.Targets).
func forecastColumns(d job.DataConfig, names []string) (inputs, targets []int, err error) {
	if inputs, err = parseColumns("data.inputs", d.Inputs, names); err != nil {
		return nil, nil, err
	}
	if inputs == nil {
		for c := range names {
			inputs = append(inputs, c)
		}
	}
	if targets, err = parseColumns("data.targets", d.Targets, names); err != nil {
		return nil, nil, err
	}
	for _, c := range targets {
		if TimeColumn(names[c]) {
			return nil, nil, fmt.Errorf("config data.targets: column %q is a time axis: name it in data.inputs only", names[c])
		}
		if !slices.Contains(inputs, c) {
			return nil, nil, fmt.Errorf("config data.inputs: target column %q must be an input too (persistence and the baselines read it from the window)", names[c])
		}
	}
	if targets == nil {
		for _, c := range inputs {
			if !TimeColumn(names[c]) {
				targets = append(targets, c)
			}
		}
		if len(targets) == 0 {
			return nil, nil, fmt.Errorf("config data.targets: every input column (%s) is a time axis; name the columns to forecast", strings.Join(names, ", "))
		}
	}
	return inputs, targets, nil
}

// numericInputs refuses an input column that is not all numbers (a date
// string, a label, an empty field), naming the file:line of its first
// such field and the key that leaves it out. Columns the model does not
// read may hold anything.
func numericInputs(d job.DataConfig, s *shard.Series, inputs []int) error {
	for _, c := range inputs {
		if s.Numeric(c) {
			continue
		}
		name := s.Names[c]
		var numeric []string
		for k, n := range s.Names {
			if s.Numeric(k) {
				numeric = append(numeric, n)
			}
		}
		key, hint := "data.train", fmt.Sprintf("the model reads every column unless data.inputs lists the ones to read (and data.targets those to forecast): "+
			"set data.inputs to numeric columns (here: %s) and %q is skipped", strings.Join(numeric, ","), name)
		if len(numeric) == 0 {
			hint = "no column of the file is all numbers"
		}
		if d.Inputs != "" {
			key, hint = "data.inputs", fmt.Sprintf("%q is listed in data.inputs, but a column the model reads must be all numbers: leave it out of data.inputs and data.targets", name)
		}
		if TimeColumn(name) {
			hint += "; the rows' order is the time axis, so a time column need not be read"
		}
		return fmt.Errorf("config %s: %w: %s", key, s.NonNumeric[c], hint)
	}
	return nil
}

// loadForecast reads the CSV series, splits its rows in time (training,
// validation, test: splitRows), normalises it with statistics of the
// training rows, and cuts the windows of each part.
func (t *exampleTask) loadForecast() error {
	d := t.job.Data
	if d.Val != "" {
		return fmt.Errorf("config data.val: the forecast task splits data.train in time (data.train_fraction, data.val_fraction); a separate file is not supported")
	}
	s, err := shard.LoadCSV(d.Train, shard.CSVConfig{Lenient: true})
	if err != nil {
		return fmt.Errorf("config data.train: %w", err)
	}
	inputs, targets, err := forecastColumns(d, s.Names)
	if err != nil {
		return err
	}
	if err := numericInputs(d, s, inputs); err != nil {
		return err
	}
	sp := splitRows(s.Rows, d.TrainFraction, d.ValFraction)
	if sp.ValStart <= 0 {
		return fmt.Errorf("config data.train: %s has %d rows, too few for a training part (data.train_fraction %v, data.val_fraction %v)", d.Train, s.Rows, d.TrainFraction, d.ValFraction)
	}
	if t.norm, err = shard.FitNormalizer(s, sp.ValStart); err != nil {
		return err
	}
	wc := shard.WindowConfig{Input: d.Seq, Horizon: d.Horizon, Inputs: inputs, Targets: targets}
	parts := []struct {
		name   string
		lo, hi int
		ds     *shard.Dataset
	}{{"training", 0, sp.ValStart, &t.train}, {"validation", sp.ValStart, sp.TestStart, &t.val}, {"test", sp.TestStart, sp.Rows, &t.test}}
	for _, p := range parts {
		w, err := shard.NewWindows(s, t.norm, wc, p.lo, p.hi)
		if err != nil {
			return fmt.Errorf("config data: %s windows (target rows %d to %d of %s; data.seq %d, data.horizon %d): %w",
				p.name, p.lo, p.hi, d.Train, d.Seq, max(d.Horizon, 1), err)
		}
		*p.ds = w
	}
	t.columns, t.split = s.Names, sp
	t.outputs = max(d.Horizon, 1) * len(targets)
	switch d.Residual {
	case job.ResidualLast:
		lv := &lastValue{dim: len(inputs)}
		for _, c := range targets {
			lv.pos = append(lv.pos, slices.Index(inputs, c))
		}
		t.residual = lv
	case job.ResidualAR:
		ar, err := t.chooseAR(t.arTop())
		if err != nil {
			return fmt.Errorf("config data.residual %s: %w", d.Residual, err)
		}
		t.residual = ar
	}
	return nil
}

// forecastBase is a baseline the network may learn the error of
// (data.residual): predict returns output j (step j/targets, target
// j%targets) for the normalised, flattened input window x, in normalised
// units.
type forecastBase interface {
	predict(x []float32, j int) float64
}

// lastValue is persistence: each target's value in the window's last row.
type lastValue struct {
	pos []int // each target's place in an input row
	dim int   // input columns per row
}

func (l *lastValue) predict(x []float32, j int) float64 {
	return float64(x[len(x)-l.dim+l.pos[j%len(l.pos)]])
}

// forecastValue maps the network's output j for a window whose input
// rows are x (normalised, flattened) to a forecast in normalised units:
// with data.residual, the output is the error of a baseline's forecast.
func (t *exampleTask) forecastValue(out float32, x []float32, j int) float64 {
	v := float64(out)
	if t.residual != nil {
		v += t.residual.predict(x, j)
	}
	return v
}

// testWindows and valWindows are the forecast's held-out windows.
func (t *exampleTask) testWindows() *shard.WindowSet { return t.test.(*shard.WindowSet) }
func (t *exampleTask) valWindows() *shard.WindowSet  { return t.val.(*shard.WindowSet) }

// ForecastColumns describes the columns a forecast job uses.
type ForecastColumns struct {
	Columns []string // the CSV's columns
	Inputs  []string // those the model reads
	Targets []string // those it forecasts
	Unread  []string // those it does not read (they may hold text: a date, a label)
	// Rows and the first row of the validation and test parts.
	Rows, ValStart, TestStart int
}

// String is one line: inputs, targets and the row split.
func (c ForecastColumns) String() string {
	unread := ""
	if len(c.Unread) > 0 {
		unread = "; not read: " + strings.Join(c.Unread, ",")
	}
	return fmt.Sprintf("inputs %s; targets %s%s; rows: training 0-%d, validation %d-%d, test %d-%d",
		strings.Join(c.Inputs, ","), strings.Join(c.Targets, ","), unread, c.ValStart-1, c.ValStart, c.TestStart-1, c.TestStart, c.Rows-1)
}

// DescribeForecast reads a forecast job's series and returns the columns
// and rows it uses.
func DescribeForecast(jc job.Config) (*ForecastColumns, error) {
	if jc.Task.Kind != job.TaskForecast {
		return nil, fmt.Errorf("task: the %s task has no series columns", jc.Task.Kind)
	}
	t, err := Open(jc)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return t.(*exampleTask).describe(), nil
}

func (t *exampleTask) describe() *ForecastColumns {
	w := t.testWindows()
	names := func(cols []int) []string {
		out := make([]string, len(cols))
		for i, c := range cols {
			out[i] = t.columns[c]
		}
		return out
	}
	var unread []int
	for c := range t.columns {
		if !slices.Contains(w.InputColumns(), c) {
			unread = append(unread, c)
		}
	}
	return &ForecastColumns{Columns: t.columns, Inputs: names(w.InputColumns()), Targets: names(w.TargetColumns()), Unread: names(unread),
		Rows: t.split.Rows, ValStart: t.split.ValStart, TestStart: t.split.TestStart}
}

// CheckForecastOutputs explains why a forecast checkpoint whose model has
// outputs values cannot serve job jc (whose data gives data.horizon times
// its targets), or returns nil when the counts agree. A run trained before
// data.targets existed forecast every column, a time column (a year) too;
// it is told to train again rather than shown a shape mismatch.
func CheckForecastOutputs(jc job.Config, outputs int) error {
	d, err := DescribeForecast(jc)
	if err != nil {
		return err
	}
	H := max(jc.Data.Horizon, 1)
	if outputs == H*len(d.Targets) {
		return nil
	}
	var timeCols []string
	for _, c := range d.Inputs {
		if TimeColumn(c) {
			timeCols = append(timeCols, c)
		}
	}
	if outputs == H*len(d.Inputs) && len(timeCols) > 0 && jc.Data.Targets == "" {
		return fmt.Errorf("its model forecasts %d values, data.horizon %d times every column (%s), the time column %s included: "+
			"it was trained before data.targets existed, when every column was a target, and its figures mixed the error in %s into the series'. "+
			"A time column is never a target now, so this version cannot load the model: train it again "+
			"(recur train --config FILE --fresh, with data.inputs naming the columns to read; a trend column such as %s is better left out)",
			outputs, H, strings.Join(d.Inputs, ","), strings.Join(timeCols, ","), strings.Join(timeCols, ","), timeCols[0])
	}
	return fmt.Errorf("its model forecasts %d values, and its job's data gives %d (data.horizon %d times the targets %s): "+
		"was data.train changed since it trained? Train it again, or point data.train in job.json at the file it trained on",
		outputs, H*len(d.Targets), H, strings.Join(d.Targets, ","))
}
