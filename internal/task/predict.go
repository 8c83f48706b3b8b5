package task

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/shard"
)

// Predict applies a trained model to new data and writes one JSON line per
// prediction:
//
//	classify (JSONL inputs): {"line": n, "class": k, "probs": [...]}
//	seq2seq  (JSONL inputs): {"line": n, "output": [...]} (greedy, to EOS)
//	forecast (CSV):          {"forecast": [...]} for the horizon after the
//	                         file's last data.seq rows, in the series' units
func Predict(jc job.Config, m *rnn.Model[float32], path string, w io.Writer) error {
	t, err := Open(jc)
	if err != nil {
		return err
	}
	defer t.Close()
	et, ok := t.(*exampleTask)
	if !ok {
		return fmt.Errorf("predict: the %s task generates text; use recur sample", jc.Task.Kind)
	}
	enc := json.NewEncoder(w)
	if jc.Task.Kind == job.TaskForecast {
		return et.predictCSV(m, path, enc)
	}
	lc := shard.JSONLConfig{Vocab: jc.Data.Vocab}
	if jc.Task.Kind == job.TaskSeq2Seq {
		lc.Input = shard.TokenKind
	}
	exs, _, err := shard.LoadJSONL(path, lc)
	if err != nil {
		return err
	}
	tp := m.NewTape(0)
	for i, ex := range exs {
		sb, err := shard.Collate([]shard.Example{{Input: ex.Input, Label: shard.NoLabel}})
		if err != nil {
			return fmt.Errorf("%s: example %d: %w", path, i+1, err)
		}
		b := &rnn.Batch[float32]{T: sb.T, B: 1, Tokens: sb.Tokens, X: sb.X, Lengths: sb.Lengths}
		if jc.Task.Kind == job.TaskSeq2Seq {
			out, err := m.Decode(b, 2*sb.T+10)
			if err != nil {
				return fmt.Errorf("%s: example %d: %w", path, i+1, err)
			}
			if out[0] == nil {
				out[0] = []int32{}
			}
			if err := enc.Encode(map[string]any{"line": i + 1, "output": out[0]}); err != nil {
				return err
			}
			continue
		}
		logits, _, err := tp.Predict(b, rnn.State[float32]{})
		if err != nil {
			return fmt.Errorf("%s: example %d: %w", path, i+1, err)
		}
		if err := enc.Encode(map[string]any{"line": i + 1, "class": argmax(logits), "probs": softmax(logits)}); err != nil {
			return err
		}
	}
	return nil
}

func softmax(v []float32) []float64 {
	out := make([]float64, len(v))
	m := v[argmax(v)]
	var z float64
	for i, x := range v {
		out[i] = math.Exp(float64(x - m))
		z += out[i]
	}
	for i := range out {
		out[i] = math.Round(out[i]/z*1e4) / 1e4
	}
	return out
}

// predictCSV forecasts the horizon after the last window of a CSV file with
// the training series' columns.
func (t *exampleTask) predictCSV(m *rnn.Model[float32], path string, enc *json.Encoder) error {
	s, err := shard.LoadCSV(path, shard.CSVConfig{Lenient: true})
	if err != nil {
		return err
	}
	L, cols := t.job.Data.Seq, len(t.norm.Mean)
	if s.Cols != cols {
		return fmt.Errorf("%s has %d columns, the model was trained on %d", path, s.Cols, cols)
	}
	for _, c := range t.trainWindows().InputColumns() {
		if !s.Numeric(c) {
			return fmt.Errorf("%w (the model reads column %q)", s.NonNumeric[c], s.Names[c])
		}
	}
	if s.Rows < L {
		return fmt.Errorf("%s has %d rows, the model reads windows of %d", path, s.Rows, L)
	}
	b := t.window(s, s.Rows-L)
	pred, _, err := m.NewTape(0).Predict(b, rnn.State[float32]{})
	if err != nil {
		return err
	}
	targets := t.trainWindows().TargetColumns()
	out := make([]float64, len(pred))
	for i, v := range pred {
		out[i] = t.norm.Inverse(t.forecastValue(v, b.X, i), targets[i%len(targets)])
	}
	return enc.Encode(map[string]any{"forecast": out, "columns": targets})
}

// window is a one-row batch of the input columns of rows [start,
// start+data.seq) of s, normalised.
func (t *exampleTask) window(s *shard.Series, start int) *rnn.Batch[float32] {
	L, in := t.job.Data.Seq, t.trainWindows().InputColumns()
	b := &rnn.Batch[float32]{T: L, B: 1, X: make([]float32, 0, L*len(in))}
	for r := start; r < start+L; r++ {
		for _, c := range in {
			b.X = append(b.X, float32(t.norm.Transform(s.At(r, c), c)))
		}
	}
	return b
}

// PredictTestSet writes a forecast model's predictions for every window of
// the held-out test part as CSV, beside the baselines recur eval compares
// it with, so that its figures can be checked with other tools. One line
// per window, step and target:
//
//	origin,row,step,column,actual,model,persistence[,seasonal_naive][,linear_ar]
//
// origin is the window's last input row and row = origin+step the target's
// (0-based data rows of data.train); values are in the series' units.
func PredictTestSet(jc job.Config, m *rnn.Model[float32], w io.Writer) error {
	if jc.Task.Kind != job.TaskForecast {
		return fmt.Errorf("predict: --test-set serves the forecast task, not %s", jc.Task.Kind)
	}
	t, err := Open(jc)
	if err != nil {
		return err
	}
	defer t.Close()
	et := t.(*exampleTask)
	fe, ar := et.forecastMethods(SplitTest)
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{"origin", "row", "step", "column", "actual"}, fe.Methods...)); err != nil {
		return err
	}
	rec := make([]string, 0, 5+len(fe.Methods))
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
	err = et.eachForecast(m, fe, ar, func(p forecastPoint) error {
		rec = append(rec[:0], strconv.Itoa(p.last), strconv.Itoa(p.last+1+p.h), strconv.Itoa(p.h+1), fe.Targets[p.k], num(p.truth))
		for _, v := range p.preds {
			rec = append(rec, num(v))
		}
		return cw.Write(rec)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}
