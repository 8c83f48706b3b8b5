package shard

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HeaderMode says whether a CSV file starts with a header row.
type HeaderMode int

const (
	// HeaderAuto (default) treats the first row as a header when any of its
	// fields is not a number.
	HeaderAuto HeaderMode = iota
	// HeaderPresent always treats the first row as a header.
	HeaderPresent
	// HeaderAbsent treats every row as data; columns are named c0, c1, ...
	HeaderAbsent
)

// CSVConfig configures ReadCSV.
type CSVConfig struct {
	Header HeaderMode
	// Comma is the field separator; default ','.
	Comma rune
	// Columns selects columns by name, in this order; nil keeps all.
	Columns []string
	// Lenient keeps a column that holds a field which is not a finite
	// number (a date string, a label, an empty field) instead of failing:
	// such a field reads as NaN, and Series.NonNumeric records the column's
	// first one. For a caller that uses only some columns and reports the
	// others only when it needs them.
	Lenient bool
}

// Validate reports whether the configuration is usable.
func (c CSVConfig) Validate() error {
	if c.Header < HeaderAuto || c.Header > HeaderAbsent {
		return configErr("CSV header mode %d unknown", c.Header)
	}
	if c.Comma == '"' || c.Comma == '\r' || c.Comma == '\n' {
		return configErr("CSV separator %q not allowed", c.Comma)
	}
	return nil
}

// Series is a numeric table: Rows rows of Cols values, row-major.
type Series struct {
	Names []string  // column names
	Rows  int       // number of rows
	Cols  int       // number of columns
	Data  []float64 // Data[r*Cols+c]
	// NonNumeric is set by a lenient read (CSVConfig.Lenient) of a
	// table with a column that is not all finite numbers: NonNumeric[c]
	// is then the error of column c's first such field (an *InputError
	// naming file:line and the column), nil for a numeric column. A nil
	// slice: every column is numeric.
	NonNumeric []error
}

// Numeric reports whether every field of column c is a finite number.
func (s *Series) Numeric(c int) bool { return s.NonNumeric == nil || s.NonNumeric[c] == nil }

// At returns the value at row r, column c.
func (s *Series) At(r, c int) float64 { return s.Data[r*s.Cols+c] }

// TrainRows returns the number of leading rows in the training part,
// floor(frac*Rows); frac 0 means DefaultTrainFraction.
func (s *Series) TrainRows(frac float64) int {
	if frac == 0 {
		frac = DefaultTrainFraction
	}
	return int(frac * float64(s.Rows))
}

// LoadCSV reads the CSV file at path.
func LoadCSV(path string, cfg CSVConfig) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shard: open CSV: %w", err)
	}
	defer f.Close()
	return ReadCSV(f, filepath.Base(path), cfg)
}

// ReadCSV parses a numeric CSV table; name labels errors as name:line.
// Every data field must be a finite number (CSVConfig.Lenient: or its
// column is marked in Series.NonNumeric). A blank line between two data
// rows is an error: the rows are a series, and skipping the line (as
// encoding/csv does) would join the values on both sides of a gap, a
// missing value most likely. Blank lines before the first data row and
// after the last are allowed.
func ReadCSV(r io.Reader, name string, cfg CSVConfig) (*Series, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cr := csv.NewReader(r)
	if cfg.Comma != 0 {
		cr.Comma = cfg.Comma
	}
	cr.ReuseRecord = true
	s := &Series{}
	var pick []int
	lastRow := 0 // the line the previous data row ended on; 0 before the first
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(name, err)
		}
		line, _ := cr.FieldPos(0)
		end, _ := cr.FieldPos(len(rec) - 1)
		end += strings.Count(rec[len(rec)-1], "\n") // a quoted field may span lines
		if s.Names == nil {
			header := cfg.Header == HeaderPresent || (cfg.Header == HeaderAuto && !allNumeric(rec))
			if pick, err = s.setColumns(rec, header, cfg.Columns); err != nil {
				return nil, inputErr(name, line, ErrSyntax, "%v", err)
			}
			if header {
				continue
			}
		}
		if lastRow > 0 && line > lastRow+1 {
			return nil, inputErr(name, lastRow+1, ErrSyntax, "blank line inside the series (rows on lines %d and %d): "+
				"a missing value? fill it in or remove the line", lastRow, line)
		}
		lastRow = end
		for i, c := range pick {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[c]), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				ferr := inputErr(name, line, ErrSyntax, "column %q: expected a finite number, got %q", s.Names[i], rec[c])
				if !cfg.Lenient {
					return nil, ferr
				}
				if s.NonNumeric == nil {
					s.NonNumeric = make([]error, s.Cols)
				}
				if s.NonNumeric[i] == nil {
					s.NonNumeric[i] = ferr
				}
				v = math.NaN()
			}
			s.Data = append(s.Data, v)
		}
		s.Rows++
	}
	if s.Rows == 0 {
		return nil, inputErr(name, 0, ErrEmpty, "no data rows")
	}
	return s, nil
}

// setColumns names the columns from the first record and returns the
// indices of the selected ones.
func (s *Series) setColumns(rec []string, header bool, want []string) ([]int, error) {
	names := make([]string, len(rec))
	for i := range rec {
		names[i] = fmt.Sprintf("c%d", i)
		if header {
			names[i] = strings.TrimSpace(rec[i])
		}
	}
	var pick []int
	if want == nil {
		for i := range names {
			pick = append(pick, i)
		}
	}
	for _, w := range want {
		i := indexOf(names, w)
		if i < 0 {
			return nil, fmt.Errorf("column %q not found in %q", w, names)
		}
		pick = append(pick, i)
	}
	for _, i := range pick {
		s.Names = append(s.Names, names[i])
	}
	s.Cols = len(pick)
	if s.Cols == 0 {
		return nil, errors.New("no columns")
	}
	return pick, nil
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func allNumeric(rec []string) bool {
	for _, f := range rec {
		if _, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err != nil {
			return false
		}
	}
	return true
}

// csvErr turns an encoding/csv error into an InputError with its line.
func csvErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return inputErr(name, pe.Line, ErrSyntax, "column %d: %v", pe.Column, pe.Err)
	}
	return fmt.Errorf("shard: read %s: %w", name, err)
}

// Normalizer holds per-column mean and standard deviation, computed on the
// training rows only and saved with the model (it marshals as JSON) so that
// predictions can be mapped back with Inverse.
type Normalizer struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"` // population std; 1 for constant columns
}

// FitNormalizer computes the statistics of rows [0, rows) of s. A column
// that is not numeric (Series.Numeric) gets mean 0 and std 1: it holds
// nothing to normalise, and nothing may read it.
func FitNormalizer(s *Series, rows int) (*Normalizer, error) {
	if rows <= 0 || rows > s.Rows {
		return nil, configErr("fit on %d rows of %d", rows, s.Rows)
	}
	n := &Normalizer{Mean: make([]float64, s.Cols), Std: make([]float64, s.Cols)}
	for c := 0; c < s.Cols; c++ {
		if !s.Numeric(c) {
			n.Std[c] = 1
			continue
		}
		// Welford's update: no overflowing sum, stable for large offsets.
		var mean, m2 float64
		for r := 0; r < rows; r++ {
			x := s.At(r, c)
			d := x - mean
			mean += d / float64(r+1)
			m2 += d * (x - mean)
		}
		std := math.Sqrt(m2 / float64(rows))
		if math.IsInf(mean, 0) || math.IsNaN(mean) || math.IsInf(std, 0) || math.IsNaN(std) {
			return nil, fmt.Errorf("%w: column %q statistics overflow float64", ErrSyntax, s.Names[c])
		}
		if std == 0 {
			std = 1
		}
		n.Mean[c], n.Std[c] = mean, std
	}
	return n, nil
}

// Transform returns (v - Mean[col]) / Std[col].
func (n *Normalizer) Transform(v float64, col int) float64 { return (v - n.Mean[col]) / n.Std[col] }

// Inverse returns v*Std[col] + Mean[col], mapping a prediction back to the
// data's units.
func (n *Normalizer) Inverse(v float64, col int) float64 { return v*n.Std[col] + n.Mean[col] }

// InverseSlice maps predictions laid out as [..][len(cols)] back in place:
// value i belongs to column cols[i%len(cols)].
func (n *Normalizer) InverseSlice(vs []float32, cols []int) {
	for i := range vs {
		vs[i] = float32(n.Inverse(float64(vs[i]), cols[i%len(cols)]))
	}
}

// UnmarshalJSON decodes and checks a saved normaliser.
func (n *Normalizer) UnmarshalJSON(b []byte) error {
	type plain Normalizer
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%w: normalizer JSON: %v", ErrCorrupt, err)
	}
	if len(p.Mean) != len(p.Std) {
		return fmt.Errorf("%w: normalizer has %d means and %d stds", ErrCorrupt, len(p.Mean), len(p.Std))
	}
	for _, s := range p.Std {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("%w: normalizer std %v not positive and finite", ErrCorrupt, s)
		}
	}
	*n = Normalizer(p)
	return nil
}

// WindowConfig configures sliding windows over a Series.
type WindowConfig struct {
	// Input is the input window length L. Required.
	Input int
	// Horizon is the number of future steps H to predict; default 1
	// (next-step forecasting).
	Horizon int
	// Stride between window starts; default 1.
	Stride int
	// Targets are the column indices to forecast; nil means all columns.
	Targets []int
	// Inputs are the column indices a window's input rows hold; nil means
	// all columns.
	Inputs []int
}

// Validate reports whether the configuration is usable for cols columns.
func (c WindowConfig) Validate(cols int) error {
	if c.Input <= 0 || c.Horizon < 0 || c.Stride < 0 {
		return configErr("window Input %d, Horizon %d, Stride %d", c.Input, c.Horizon, c.Stride)
	}
	for _, t := range c.Targets {
		if t < 0 || t >= cols {
			return configErr("target column %d outside [0, %d)", t, cols)
		}
	}
	for _, t := range c.Inputs {
		if t < 0 || t >= cols {
			return configErr("input column %d outside [0, %d)", t, cols)
		}
	}
	return nil
}

// WindowSet is the Dataset of sliding windows over a normalised Series.
// Window i starts at row start = first + i*Stride; its input is rows
// [start, start+L) (the input columns) and its output rows
// [start+L, start+L+H) (the target columns).
type WindowSet struct {
	s       *Series
	norm    *Normalizer
	cfg     WindowConfig
	targets []int
	inputs  []int
	first   int
	n       int
}

// NewWindows returns the windows whose output rows lie in [lo, hi). Use
// lo=0, hi=TrainRows for training and lo=TrainRows, hi=Rows for validation:
// validation inputs may then reach back into training rows, which are known
// history, while no validation target is ever trained on. norm (typically
// fit on the training rows) normalises inputs and outputs; nil leaves raw
// values.
func NewWindows(s *Series, norm *Normalizer, cfg WindowConfig, lo, hi int) (*WindowSet, error) {
	if cfg.Horizon == 0 {
		cfg.Horizon = 1
	}
	if cfg.Stride == 0 {
		cfg.Stride = 1
	}
	if err := cfg.Validate(s.Cols); err != nil {
		return nil, err
	}
	if norm != nil && len(norm.Mean) != s.Cols {
		return nil, configErr("normalizer has %d columns, series %d", len(norm.Mean), s.Cols)
	}
	if lo < 0 || hi > s.Rows || lo > hi {
		return nil, configErr("window targets in rows [%d, %d) of %d", lo, hi, s.Rows)
	}
	w := &WindowSet{s: s, norm: norm, cfg: cfg, targets: cfg.Targets, inputs: cfg.Inputs}
	if w.targets == nil {
		w.targets = allColumns(s.Cols)
	}
	if w.inputs == nil {
		w.inputs = allColumns(s.Cols)
	}
	w.first = max(0, lo-cfg.Input)
	last := hi - cfg.Input - cfg.Horizon // last valid start
	if last >= w.first {
		w.n = (last-w.first)/cfg.Stride + 1
	}
	if w.n == 0 {
		return nil, configErr("no window of %d+%d rows has its targets in rows [%d, %d)", cfg.Input, cfg.Horizon, lo, hi)
	}
	return w, nil
}

// Len returns the number of windows.
func (w *WindowSet) Len() int { return w.n }

// Start returns the first input row of window i: its inputs are rows
// [Start(i), Start(i)+Input) and its targets the Horizon rows after them.
func (w *WindowSet) Start(i int) int { return w.first + i*w.cfg.Stride }

// Series returns the series the windows are cut from (raw values).
func (w *WindowSet) Series() *Series { return w.s }

// SeqLen returns the input length, the same for every window.
func (w *WindowSet) SeqLen(int) int { return w.cfg.Input }

// TargetColumns returns the column of each output feature, for Inverse.
func (w *WindowSet) TargetColumns() []int { return append([]int(nil), w.targets...) }

// InputColumns returns the column of each input feature.
func (w *WindowSet) InputColumns() []int { return append([]int(nil), w.inputs...) }

func allColumns(n int) []int {
	all := make([]int, n)
	for c := range all {
		all[c] = c
	}
	return all
}

// Example returns window i, with no label.
func (w *WindowSet) Example(i int) Example {
	start := w.Start(i)
	return Example{
		Input:  Seq{Values: w.rows(start, w.cfg.Input, w.inputs), Dim: len(w.inputs)},
		Label:  NoLabel,
		Output: Seq{Values: w.rows(start+w.cfg.Input, w.cfg.Horizon, w.targets), Dim: len(w.targets)},
	}
}

func (w *WindowSet) rows(start, n int, cols []int) []float32 {
	out := make([]float32, 0, n*len(cols))
	for r := start; r < start+n; r++ {
		for _, c := range cols {
			v := w.s.At(r, c)
			if w.norm != nil {
				v = w.norm.Transform(v, c)
			}
			out = append(out, float32(v))
		}
	}
	return out
}
