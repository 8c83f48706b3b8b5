package task

import (
	"fmt"

	"github.com/recur-ml/recur/internal/job"
)

// Scaling is how a forecast job maps its series to the model and back:
// the model reads columns Inputs (in that order), each as
// (x - Mean[c]) / Std[c]; output i is a value of
// column Targets[i % len(Targets)], mapped back as y*Std + Mean. Mean and
// Std come from the training rows only. With Residual, output i is the
// error of a baseline's forecast, in normalised units, and the baseline's
// is added before mapping back: "last" adds the target's (normalised)
// value in the window's last row; "ar" adds AR's forecast (ARWeights).
type Scaling struct {
	Columns []string  `json:"columns"`
	Mean    []float64 `json:"mean"`
	Std     []float64 `json:"std"`
	Inputs  []int     `json:"inputs"`
	Targets []int     `json:"targets"`
	Seq     int       `json:"seq"`     // input rows per window (data.seq)
	Horizon int       `json:"horizon"` // steps forecast (data.horizon)
	// Residual is data.residual: "last", "ar" or "" (none).
	Residual string     `json:"residual,omitempty"`
	AR       *ARWeights `json:"ar,omitempty"` // Residual "ar": the baseline
}

// ARWeights is a direct AR(p) forecast of every output: output i is
// sum_k x[k]*Weights[k][i] + Weights[p*d][i], where x holds the window's
// last p rows of its d input columns, normalised and flattened row by row.
type ARWeights struct {
	Order   int         `json:"order"`
	Weights [][]float64 `json:"weights"` // (Order*d+1) rows, one column per output
}

// ForecastScaling reads a forecast job's training series and returns its
// scaling, for exporting the model with what prediction needs.
func ForecastScaling(jc job.Config) (*Scaling, error) {
	if jc.Task.Kind != job.TaskForecast {
		return nil, fmt.Errorf("task: the %s task has no series scaling", jc.Task.Kind)
	}
	t, err := Open(jc)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	et := t.(*exampleTask)
	w := et.trainWindows()
	sc := &Scaling{Columns: et.columns, Mean: et.norm.Mean, Std: et.norm.Std, Inputs: w.InputColumns(), Targets: w.TargetColumns(),
		Seq: jc.Data.Seq, Horizon: max(jc.Data.Horizon, 1), Residual: jc.Data.Residual}
	if ar, ok := et.residual.(*linearAR); ok {
		sc.AR = ar.weights()
	}
	return sc, nil
}
