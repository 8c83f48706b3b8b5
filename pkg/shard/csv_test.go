package shard

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestReadCSVHeader(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		cfg        CSVConfig
		names      []string
		rows       int
		first      float64
	}{
		{"auto header", "t,v\n1,2\n3,4\n", CSVConfig{}, []string{"t", "v"}, 2, 1},
		{"auto none", "1,2\n3,4\n", CSVConfig{}, []string{"c0", "c1"}, 2, 1},
		{"forced header", "1,2\n3,4\n", CSVConfig{Header: HeaderPresent}, []string{"1", "2"}, 1, 3},
		{"select", "a,b,c\n1,2,3\n", CSVConfig{Columns: []string{"c", "a"}}, []string{"c", "a"}, 1, 3},
		{"semicolon", "x;y\n1.5;2e3\n", CSVConfig{Comma: ';'}, []string{"x", "y"}, 1, 1.5},
		{"blank lines around", "\nv\n\n1\n2\n\n\n", CSVConfig{}, []string{"v"}, 2, 1},
		{"quoted field over two lines", "v\n\"1\n\"\n2\n", CSVConfig{}, []string{"v"}, 2, 1},
	} {
		s, err := ReadCSV(strings.NewReader(tc.text), "s.csv", tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if strings.Join(s.Names, ",") != strings.Join(tc.names, ",") || s.Rows != tc.rows || s.At(0, 0) != tc.first {
			t.Errorf("%s: names %v rows %d first %v", tc.name, s.Names, s.Rows, s.At(0, 0))
		}
	}
}

func TestReadCSVErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		cfg        CSVConfig
		want       error
		msg        string
	}{
		{"empty", "", CSVConfig{}, ErrEmpty, "s.csv: no data rows"},
		{"header only", "a,b\n", CSVConfig{}, ErrEmpty, "s.csv: no data rows"},
		{"not a number", "a,b\n1,2\n3,x\n", CSVConfig{}, ErrSyntax, `s.csv:3: column "b": expected a finite number, got "x"`},
		{"nan", "a\n1\nNaN\n", CSVConfig{}, ErrSyntax, `s.csv:3: column "a": expected a finite number, got "NaN"`},
		{"ragged", "a,b\n1,2\n3\n", CSVConfig{}, ErrSyntax, "s.csv:3: column 1: wrong number of fields"},
		{"missing column", "a,b\n1,2\n", CSVConfig{Columns: []string{"z"}}, ErrSyntax, ""},
		{"bad comma", "a\n1\n", CSVConfig{Comma: '"'}, ErrConfig, ""},
		// encoding/csv skips blank lines: a one-column series with a gap
		// used to be read as if the gap were not there.
		{"gap", "v\n1\n2\n\n4\n", CSVConfig{}, ErrSyntax, "s.csv:4: blank line inside the series (rows on lines 3 and 5): a missing value? fill it in or remove the line"},
		{"gaps, no header", "1\n\n\n2\n", CSVConfig{}, ErrSyntax, "s.csv:2: blank line inside the series (rows on lines 1 and 4): a missing value? fill it in or remove the line"},
		{"gap, two columns", "a,b\n1,2\n\n3,4\n", CSVConfig{}, ErrSyntax, "s.csv:3: blank line inside the series (rows on lines 2 and 4): a missing value? fill it in or remove the line"},
	} {
		_, err := ReadCSV(strings.NewReader(tc.text), "s.csv", tc.cfg)
		if !errors.Is(err, tc.want) || (tc.msg != "" && err.Error() != tc.msg) {
			t.Errorf("%s: err %v, want %v %q", tc.name, err, tc.want, tc.msg)
		}
	}
}

// A lenient read keeps a column that is not all numbers, records its
// first bad field (file:line and column), and gives it mean 0 and std 1;
// the numeric columns read as before.
func TestReadCSVLenient(t *testing.T) {
	s, err := ReadCSV(strings.NewReader("date,v,w\nJan-1,1,5\nFeb-1,2,\nMar-1,3,7\n"), "s.csv", CSVConfig{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows != 3 || s.Cols != 3 || s.Numeric(0) || !s.Numeric(1) || s.Numeric(2) {
		t.Fatalf("rows %d cols %d non-numeric %v", s.Rows, s.Cols, s.NonNumeric)
	}
	for c, want := range map[int]string{0: `s.csv:2: column "date": expected a finite number, got "Jan-1"`, 2: `s.csv:3: column "w": expected a finite number, got ""`} {
		var ie *InputError
		if err := s.NonNumeric[c]; !errors.As(err, &ie) || !errors.Is(err, ErrSyntax) || err.Error() != want {
			t.Errorf("column %d: %v, want %q", c, err, want)
		}
	}
	if s.At(1, 1) != 2 || s.At(2, 2) != 7 || !math.IsNaN(s.At(0, 0)) || !math.IsNaN(s.At(1, 2)) {
		t.Errorf("values %v", s.Data)
	}
	n, err := FitNormalizer(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n.Mean[0] != 0 || n.Std[0] != 1 || n.Mean[1] != 2 || n.Mean[2] != 0 || n.Std[2] != 1 {
		t.Errorf("normaliser %+v", n)
	}
	if _, err := json.Marshal(n); err != nil {
		t.Errorf("normaliser of a non-numeric column does not marshal: %v", err)
	}
	all, err := ReadCSV(strings.NewReader("a\n1\n"), "s.csv", CSVConfig{Lenient: true})
	if err != nil || all.NonNumeric != nil || !all.Numeric(0) {
		t.Errorf("all numeric: %v %v", all.NonNumeric, err)
	}
	if _, err := ReadCSV(strings.NewReader("date,v\nJan-1,1\n"), "s.csv", CSVConfig{}); err == nil || err.Error() != `s.csv:2: column "date": expected a finite number, got "Jan-1"` {
		t.Errorf("strict read: %v", err)
	}
}

// series of rows r: column 0 = r, column 1 = 10*r.
func rampSeries(rows int) *Series {
	s := &Series{Names: []string{"a", "b"}, Rows: rows, Cols: 2}
	for r := 0; r < rows; r++ {
		s.Data = append(s.Data, float64(r), float64(10*r))
	}
	return s
}

func TestNormalizerTrainOnly(t *testing.T) {
	s := rampSeries(10)
	n, err := FitNormalizer(s, s.TrainRows(0)) // rows 0..8
	if err != nil {
		t.Fatal(err)
	}
	if n.Mean[0] != 4 || math.Abs(n.Std[0]-math.Sqrt(60.0/9)) > 1e-12 || n.Mean[1] != 40 {
		t.Fatalf("mean %v std %v: must use the 9 training rows only", n.Mean, n.Std)
	}
	js, _ := json.Marshal(n)
	var back Normalizer
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{-3, 0, 7.5} {
		if got := back.Inverse(back.Transform(v, 1), 1); math.Abs(got-v) > 1e-9 {
			t.Fatalf("inverse(transform(%v)) = %v", v, got)
		}
	}
	for _, bad := range []string{`{"mean":[1],"std":[0]}`, `{"mean":[1,2],"std":[1]}`, `{"mean":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &back); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v", bad, err)
		}
	}
	c, _ := FitNormalizer(&Series{Rows: 3, Cols: 1, Data: []float64{5, 5, 5}}, 3)
	if c.Std[0] != 1 {
		t.Fatalf("constant column std %v, want 1", c.Std[0])
	}
}

func TestWindows(t *testing.T) {
	s := rampSeries(20)
	split := s.TrainRows(0.75) // 15
	cfg := WindowConfig{Input: 4, Horizon: 2, Targets: []int{1}}
	train, err := NewWindows(s, nil, cfg, 0, split)
	if err != nil {
		t.Fatal(err)
	}
	val, err := NewWindows(s, nil, cfg, split, s.Rows)
	if err != nil {
		t.Fatal(err)
	}
	// Train windows start at 0..9 (rows up to 14); validation windows start at
	// 11..14 so that targets are rows 15..19.
	if train.Len() != 10 || val.Len() != 4 {
		t.Fatalf("train %d, val %d windows", train.Len(), val.Len())
	}
	e := val.Example(0)
	if e.Input.Dim != 2 || e.Input.Len() != 4 || e.Input.Values[0] != 11 || e.Output.Dim != 1 {
		t.Fatalf("first validation window %+v", e)
	}
	if e.Output.Values[0] != 150 || e.Output.Values[1] != 160 {
		t.Fatalf("targets %v, want rows 15, 16 of column b", e.Output.Values)
	}
	last := train.Example(train.Len() - 1)
	if last.Output.Values[1] != 140 {
		t.Fatalf("last training target %v must be row 14", last.Output.Values)
	}
	norm, _ := FitNormalizer(s, split)
	nw, _ := NewWindows(s, norm, cfg, 0, split)
	b, err := Collate([]Example{nw.Example(3), nw.Example(5)})
	if err != nil {
		t.Fatal(err)
	}
	preds := append([]float32(nil), b.Y...)
	norm.InverseSlice(preds, nw.TargetColumns())
	// Y is [OutT=2][B=2][1]: step 0 of row 1 is window 5's row 9 -> 90.
	if math.Abs(float64(preds[1])-90) > 1e-4 || b.OutT != 2 || b.OutDim != 1 {
		t.Fatalf("inverse of normalised targets %v", preds)
	}
	if _, err := NewWindows(s, nil, WindowConfig{Input: 30}, 0, 20); !errors.Is(err, ErrConfig) {
		t.Fatalf("oversized window: err %v", err)
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add("a,b\n1,2\n3,4\n", uint8(0))
	f.Add("1;2\n\"3\";4\n", uint8(1))
	f.Add("x\n\"unterminated\n", uint8(2))
	f.Add("v\n1\n\n2\n", uint8(0))
	f.Add("v\n\"1\n\"\n\n2\n", uint8(1))
	f.Add("date,v\nJan-1,1\nFeb-1,x\n", uint8(3))
	f.Fuzz(func(t *testing.T, text string, mode uint8) {
		lenient := mode/3%2 == 1
		s, err := ReadCSV(strings.NewReader(text), "f.csv", CSVConfig{Header: HeaderMode(mode % 3), Lenient: lenient})
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if s.Rows*s.Cols != len(s.Data) || s.Cols != len(s.Names) {
			t.Fatalf("inconsistent series %d x %d with %d values", s.Rows, s.Cols, len(s.Data))
		}
		if s.NonNumeric != nil && (!lenient || len(s.NonNumeric) != s.Cols) {
			t.Fatalf("non-numeric columns %v from a read with lenient %v", s.NonNumeric, lenient)
		}
		for i, v := range s.Data {
			if c := i % s.Cols; (math.IsNaN(v) || math.IsInf(v, 0)) && s.Numeric(c) {
				t.Fatalf("value %v in numeric column %d", v, c)
			}
		}
		for _, e := range s.NonNumeric {
			var ie *InputError
			if e != nil && (!errors.As(e, &ie) || !errors.Is(e, ErrSyntax) || ie.Line <= 0) {
				t.Fatalf("non-numeric column error %v: want an input error with a line", e)
			}
		}
		n, err := FitNormalizer(s, s.Rows)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatal(err)
			}
			return
		}
		for _, sd := range n.Std {
			if !(sd > 0) {
				t.Fatalf("std %v", sd)
			}
		}
	})
}
