package task

import (
	"fmt"

	"github.com/recur-ml/recur/internal/job"
)

// Scaling is how a forecast job maps its series to the model and back:
// the model reads columns Inputs (in that order), each as
// (x - Mean[c]) / Std[c]; output i is a value of
// column Targets[i % len(Targets)], mapped back as y*Std + Mean. Mean and
// Std come from the training rows only.
type Scaling struct {
	Columns []string  `json:"columns"`
	Mean    []float64 `json:"mean"`
	Std     []float64 `json:"std"`
	Inputs  []int     `json:"inputs"`
	Targets []int     `json:"targets"`
	Seq     int       `json:"seq"`     // input rows per window (data.seq)
	Horizon int       `json:"horizon"` // steps forecast (data.horizon)
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
	return &Scaling{Columns: et.columns, Mean: et.norm.Mean, Std: et.norm.Std, Inputs: w.InputColumns(), Targets: w.TargetColumns(),
		Seq: jc.Data.Seq, Horizon: max(jc.Data.Horizon, 1)}, nil
}
