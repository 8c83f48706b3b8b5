package task

import (
	"fmt"
	"math"

	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/shard"
)

// Forecast methods, in ForecastEval.Methods order.
const (
	MethodModel       = "model"
	MethodPersistence = "persistence"    // every step: the window's last value
	MethodSeasonal    = "seasonal_naive" // the value one season before the target (data.season)
	MethodLinearAR    = "linear_ar"      // AR(p) fitted on training windows, p chosen on validation
)

// ForecastEval is a forecast model's errors on the test windows, beside
// baselines' on the same windows, in the series' units.
type ForecastEval struct {
	Windows int      // test windows measured (the same for every method)
	Horizon int      // steps ahead
	Season  int      // data.season; 0: none
	AROrder int      // the AR baseline's order, chosen on validation; 0: unavailable
	Targets []string // target columns
	Methods []string // the methods measured, MethodModel first
	// RMSE[m][k][h] and MAE[m][k][h]: method Methods[m], target
	// Targets[k], h+1 steps ahead.
	RMSE, MAE [][][]float64
	Notes     []string // baselines left out, and why
}

// accum sums squared and absolute errors by method, target and step.
type accum struct{ se, ae [][][]float64 }

func newAccum(methods, targets, h int) *accum {
	mk := func() [][][]float64 {
		out := make([][][]float64, methods)
		for m := range out {
			out[m] = make([][]float64, targets)
			for k := range out[m] {
				out[m][k] = make([]float64, h)
			}
		}
		return out
	}
	return &accum{se: mk(), ae: mk()}
}

func (a *accum) add(m, k, h int, pred, truth float64) {
	d := pred - truth
	a.se[m][k][h] += d * d
	a.ae[m][k][h] += math.Abs(d)
}

// evalBatch is how many test windows the model reads at once.
const evalBatch = 256

// forecastEval measures the model and the baselines on every test window.
func (t *exampleTask) forecastEval(m *rnn.Model[float32]) (*ForecastEval, error) {
	te := t.testWindows()
	s := te.Series()
	targets := te.TargetColumns()
	L, H, season := t.job.Data.Seq, max(t.job.Data.Horizon, 1), t.job.Data.Season
	fe := &ForecastEval{Windows: te.Len(), Horizon: H, Season: season, Methods: []string{MethodModel, MethodPersistence}}
	for _, c := range targets {
		fe.Targets = append(fe.Targets, t.columns[c])
	}
	seasonal := -1
	if season > 0 {
		if first := te.Start(0) + L - season; first < 0 {
			fe.Notes = append(fe.Notes, fmt.Sprintf("the seasonal naive baseline is unavailable: data.season %d reaches before the series' first row", season))
		} else {
			seasonal = len(fe.Methods)
			fe.Methods = append(fe.Methods, MethodSeasonal)
		}
	}
	top := L
	if season > 0 {
		top = min(2*season, L)
	}
	ar, err := t.chooseAR(top)
	arm := -1
	if err != nil {
		fe.Notes = append(fe.Notes, fmt.Sprintf("the linear AR baseline is unavailable: %v", err))
	} else {
		arm, fe.AROrder = len(fe.Methods), ar.p
		fe.Methods = append(fe.Methods, MethodLinearAR)
	}
	acc := newAccum(len(fe.Methods), len(targets), H)
	tp := m.NewTape(0)
	for lo := 0; lo < te.Len(); lo += evalBatch {
		hi := min(lo+evalBatch, te.Len())
		exs := make([]shard.Example, hi-lo)
		for i := range exs {
			exs[i] = te.Example(lo + i)
		}
		pred, _, err := tp.Predict(windowBatch(exs), rnn.State[float32]{})
		if err != nil {
			return nil, fmt.Errorf("eval: test windows %d-%d: %w", lo, hi-1, err)
		}
		for i, ex := range exs {
			last := te.Start(lo+i) + L - 1 // the window's last input row
			for h := 0; h < H; h++ {
				for k, c := range targets {
					j := h*len(targets) + k
					truth := s.At(last+1+h, c)
					acc.add(0, k, h, t.norm.Inverse(float64(pred[i*t.outputs+j]), c), truth)
					acc.add(1, k, h, s.At(last, c), truth)
					if seasonal >= 0 {
						acc.add(seasonal, k, h, s.At(last+1+h-season*(h/season+1), c), truth)
					}
					if arm >= 0 {
						acc.add(arm, k, h, t.norm.Inverse(ar.predict(ex.Input.Values, j), c), truth)
					}
				}
			}
		}
	}
	fe.RMSE, fe.MAE = acc.se, acc.ae
	n := float64(max(fe.Windows, 1))
	for mi := range fe.RMSE {
		for k := range fe.RMSE[mi] {
			for h := range fe.RMSE[mi][k] {
				fe.RMSE[mi][k][h] = math.Sqrt(fe.RMSE[mi][k][h] / n)
				fe.MAE[mi][k][h] /= n
			}
		}
	}
	return fe, nil
}

// windowBatch lays windows out as a model batch: X is [T][B][dim].
func windowBatch(exs []shard.Example) *rnn.Batch[float32] {
	in := exs[0].Input
	T, dim, B := in.Len(), in.Dim, len(exs)
	b := &rnn.Batch[float32]{T: T, B: B, X: make([]float32, T*B*dim)}
	for r, e := range exs {
		for s := 0; s < T; s++ {
			copy(b.X[(s*B+r)*dim:(s*B+r+1)*dim], e.Input.Values[s*dim:(s+1)*dim])
		}
	}
	return b
}

// addMetrics adds the flat figures: for each method (the model's without
// a suffix, a baseline's with _NAME), rmse and mae over every step and
// target, and rmse_step_H and mae_step_H at the last step.
func (fe *ForecastEval) addMetrics(out map[string]float64) {
	H := fe.Horizon
	for mi, name := range fe.Methods {
		suffix := ""
		if name != MethodModel {
			suffix = "_" + name
		}
		var se, ae, seH, aeH float64
		for k := range fe.Targets {
			for h := 0; h < H; h++ {
				r := fe.RMSE[mi][k][h]
				se += r * r
				ae += fe.MAE[mi][k][h]
			}
			seH += fe.RMSE[mi][k][H-1] * fe.RMSE[mi][k][H-1]
			aeH += fe.MAE[mi][k][H-1]
		}
		K := float64(len(fe.Targets))
		out["rmse"+suffix] = math.Sqrt(se / (K * float64(H)))
		out["mae"+suffix] = ae / (K * float64(H))
		out[fmt.Sprintf("rmse_step_%d%s", H, suffix)] = math.Sqrt(seH / K)
		out[fmt.Sprintf("mae_step_%d%s", H, suffix)] = aeH / K
	}
	if fe.AROrder > 0 {
		out["linear_ar_order"] = float64(fe.AROrder)
	}
	out["windows"] = float64(fe.Windows)
}
