package task

import (
	"fmt"
	"math"
	"slices"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
)

// Report is a model's evaluation: its metrics by name, and notes on what
// could not be measured (a baseline that cannot be fitted to the data).
type Report struct {
	Metrics map[string]float64
	Notes   []string
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
//	forecast: loss (normalised MSE), rmse (in the series' units), and the
//	          rmse of a persistence (last value) and a least-squares linear
//	          autoregressive baseline over the same input window (left out,
//	          with a note, when the data cannot fit it: a constant series)
//	seq2seq:  loss, exact_match of greedy decoding to EOS
func EvaluateReport(jc job.Config, m *rnn.Model[float32]) (*Report, error) {
	t, err := Open(jc)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	r := &Report{Metrics: map[string]float64{}}
	sum, count, _, err := t.Validate(m, 0, 1, 0)
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
		err = et.forecastRMSE(m, r)
	}
	return r, err
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

// forecastRMSE compares the model with persistence and a linear AR model
// fitted by least squares on the training windows, in the series' units.
// When the AR model cannot be fitted (a constant series makes its least
// squares singular) the report says so and has the other two.
func (t *exampleTask) forecastRMSE(m *rnn.Model[float32], r *Report) error {
	out := r.Metrics
	cols := t.trainWindows().TargetColumns()
	ar, err := t.fitAR(cols)
	if err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("the linear AR baseline is unavailable: %v", err))
		ar = nil
	}
	tp := m.NewTape(0)
	var se, sePersist, seAR float64
	n := 0
	H := max(t.job.Data.Horizon, 1)
	err = t.EachTest(0, 1, func(b *rnn.Batch[float32]) error {
		pred, _, err := tp.Predict(b, rnn.State[float32]{})
		if err != nil {
			return err
		}
		dim := len(t.norm.Mean)
		for r := 0; r < b.B; r++ {
			x := make([]float64, b.T*dim)
			for s := 0; s < b.T; s++ {
				for c := 0; c < dim; c++ {
					x[s*dim+c] = float64(b.X[(s*b.B+r)*dim+c])
				}
			}
			for h := 0; h < H; h++ {
				for k, c := range cols {
					i := r*t.outputs + h*len(cols) + k
					truth := t.norm.Inverse(float64(b.Y[i]), c)
					p := t.norm.Inverse(float64(pred[i]), c)
					last := t.norm.Inverse(x[(b.T-1)*dim+c], c)
					se += (p - truth) * (p - truth)
					sePersist += (last - truth) * (last - truth)
					if ar != nil {
						lin := t.norm.Inverse(ar.predict(x, h*len(cols)+k), c)
						seAR += (lin - truth) * (lin - truth)
					}
					n++
				}
			}
		}
		return nil
	})
	out["rmse"] = math.Sqrt(se / float64(max(n, 1)))
	out["rmse_persistence"] = math.Sqrt(sePersist / float64(max(n, 1)))
	if ar != nil {
		out["rmse_linear_ar"] = math.Sqrt(seAR / float64(max(n, 1)))
	}
	return err
}
