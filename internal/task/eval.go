package task

import (
	"fmt"
	"slices"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
)

// Report is a model's evaluation: its metrics by name, and notes on what
// could not be measured (a baseline that cannot be fitted to the data).
type Report struct {
	Metrics map[string]float64
	Notes   []string
	// Forecast holds a forecast's errors by target, step and method.
	Forecast *ForecastEval
}

// EvaluateJob returns the metrics of EvaluateReport.
func EvaluateJob(jc job.Config, m *rnn.Model[float32]) (map[string]float64, error) {
	r, err := EvaluateReport(jc, m)
	if err != nil {
		return nil, err
	}
	return r.Metrics, nil
}

// EvaluateReport measures a model on the job's validation (test) set, with
// the task's own metrics besides the loss:
//
//	charlm:   loss (nats/char)
//	classify: loss, accuracy
//	forecast: loss (normalised MSE) on the held-out test part, rmse and
//	          mae (in the series' units, over every step and target),
//	          rmse_step_H and mae_step_H (H steps ahead), the same for each
//	          baseline on the same windows (rmse_persistence, ...), and
//	          Report.Forecast: every figure by target and step (see
//	          ForecastEval)
//	seq2seq:  loss, exact_match of greedy decoding to EOS
func EvaluateReport(jc job.Config, m *rnn.Model[float32]) (*Report, error) {
	return evaluateSplit(jc, m, SplitTest)
}

// EvaluateForecast is EvaluateReport of a forecast on split: SplitTest
// (the held-out rows) or SplitValidation (the rows that chose the
// checkpoint and the AR's order: where to compare configurations).
func EvaluateForecast(jc job.Config, m *rnn.Model[float32], split string) (*Report, error) {
	if jc.Task.Kind != job.TaskForecast {
		return nil, fmt.Errorf("eval: --split serves the forecast task, not %s", jc.Task.Kind)
	}
	if split != SplitTest && split != SplitValidation {
		return nil, fmt.Errorf("eval: split %q: want %s or %s", split, SplitTest, SplitValidation)
	}
	return evaluateSplit(jc, m, split)
}

func evaluateSplit(jc job.Config, m *rnn.Model[float32], split string) (*Report, error) {
	t, err := Open(jc)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	r := &Report{Metrics: map[string]float64{}}
	var sum, count float64
	if et, ok := t.(*exampleTask); ok && split == SplitValidation {
		sum, count, _, err = t.Validate(m, 0, 1, 0)
	} else if ok {
		sum, count, err = et.testLoss(m)
	} else {
		sum, count, _, err = t.Validate(m, 0, 1, 0)
	}
	if err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("eval: the validation set is empty")
	}
	r.Metrics["loss"] = sum / count
	et, ok := t.(*exampleTask)
	if !ok {
		return r, nil
	}
	switch jc.Task.Kind {
	case job.TaskClassify:
		err = et.accuracy(m, r.Metrics)
	case job.TaskSeq2Seq:
		err = et.exactMatch(m, r.Metrics)
	case job.TaskForecast:
		r.Forecast, err = et.forecastEval(m, split)
		if err == nil {
			r.Forecast.addMetrics(r.Metrics)
			r.Notes = append(r.Notes, r.Forecast.Notes...)
		}
	}
	return r, err
}

// testLoss sums the loss over the test set.
func (t *exampleTask) testLoss(m *rnn.Model[float32]) (sum, count float64, err error) {
	tp := m.NewTape(0)
	err = t.EachTest(0, 1, func(b *rnn.Batch[float32]) error {
		res, err := tp.Forward(b, rnn.State[float32]{}, false)
		sum += res.Loss
		count += float64(res.Count)
		return err
	})
	return sum, count, err
}

func (t *exampleTask) accuracy(m *rnn.Model[float32], out map[string]float64) error {
	tp := m.NewTape(0)
	right, n := 0, 0
	err := t.EachTest(0, 1, func(b *rnn.Batch[float32]) error {
		logits, _, err := tp.Predict(b, rnn.State[float32]{})
		if err != nil {
			return err
		}
		C := t.outputs
		for r := 0; r < b.B; r++ {
			row := logits[r*C : (r+1)*C]
			if int32(argmax(row)) == b.Targets[r] {
				right++
			}
			n++
		}
		return nil
	})
	out["accuracy"] = float64(right) / float64(max(n, 1))
	out["examples"] = float64(n)
	return err
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func (t *exampleTask) exactMatch(m *rnn.Model[float32], out map[string]float64) error {
	right, n := 0, 0
	eos := int32(t.job.Task.EOS)
	err := t.EachTest(0, 1, func(b *rnn.Batch[float32]) error {
		got, err := m.Decode(b, 2*b.TD+2)
		if err != nil {
			return err
		}
		for r := 0; r < b.B; r++ {
			var want []int32
			for s := 0; s < b.DecLengths[r]; s++ {
				if tok := b.Targets[s*b.B+r]; tok != eos {
					want = append(want, tok)
				}
			}
			if slices.Equal(got[r], want) {
				right++
			}
			n++
		}
		return nil
	})
	out["exact_match"] = float64(right) / float64(max(n, 1))
	out["examples"] = float64(n)
	return err
}
