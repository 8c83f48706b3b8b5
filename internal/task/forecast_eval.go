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
	// Split is the part measured: SplitTest (recur eval's default) or
	// SplitValidation, on which the AR's order and the best checkpoint
	// were chosen.
	Split   string
	Windows int      // windows measured (the same for every method)
	Horizon int      // steps ahead
	Season  int      // data.season; 0: none
	AROrder int      // the AR baseline's order, chosen on validation; 0: unavailable
	Targets []string // target columns
	Methods []string // the methods measured, MethodModel first
	// RMSE[m][k][h] and MAE[m][k][h]: method Methods[m], target
	// Targets[k], h+1 steps ahead.
	RMSE, MAE [][][]float64
	Notes     []string // baselines left out, and why
	Data      *ForecastColumns
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

// The parts of a forecast's rows that recur eval can measure.
const (
	SplitTest       = "test"
	SplitValidation = "validation"
)

// windowsOf returns the windows of a split.
func (t *exampleTask) windowsOf(split string) *shard.WindowSet {
	if split == SplitValidation {
		return t.valWindows()
	}
	return t.testWindows()
}

// forecastEval measures the model and the baselines on every window of a
// split.
func (t *exampleTask) forecastEval(m *rnn.Model[float32], split string) (*ForecastEval, error) {
	fe, ar := t.forecastMethods(split)
	acc := newAccum(len(fe.Methods), len(fe.Targets), fe.Horizon)
	err := t.eachForecast(m, fe, ar, func(p forecastPoint) error {
		for mi, v := range p.preds {
			acc.add(mi, p.k, p.h, v, p.truth)
		}
		return nil
	})
	if err != nil {
		return nil, err
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

// forecastMethods returns an empty evaluation naming the methods that can
// be measured (notes say why a baseline cannot), and the AR baseline.
func (t *exampleTask) forecastMethods(split string) (*ForecastEval, *linearAR) {
	te := t.windowsOf(split)
	L, H, season := t.job.Data.Seq, max(t.job.Data.Horizon, 1), t.job.Data.Season
	fe := &ForecastEval{Split: split, Windows: te.Len(), Horizon: H, Season: season, Methods: []string{MethodModel, MethodPersistence},
		Data: t.describe()}
	for _, c := range te.TargetColumns() {
		fe.Targets = append(fe.Targets, t.columns[c])
	}
	if season > 0 {
		if first := te.Start(0) + L - season; first < 0 {
			fe.Notes = append(fe.Notes, fmt.Sprintf("the seasonal naive baseline is unavailable: data.season %d reaches before the series' first row", season))
		} else {
			fe.Methods = append(fe.Methods, MethodSeasonal)
		}
	}
	ar, ok := t.residual.(*linearAR)
	var err error
	if !ok {
		ar, err = t.chooseAR(t.arTop())
	}
	if err != nil {
		fe.Notes = append(fe.Notes, fmt.Sprintf("the linear AR baseline is unavailable: %v", err))
		return fe, nil
	}
	fe.AROrder = ar.p
	fe.Methods = append(fe.Methods, MethodLinearAR)
	return fe, ar
}

// forecastPoint is one forecast value of every method: target k, h+1
// steps after row last (the window's last input row), in the series'
// units; preds in fe.Methods order.
type forecastPoint struct {
	window, last, h, k int
	truth              float64
	preds              []float64
}

// eachForecast calls f for every window of fe.Split, step and target, in
// order.
func (t *exampleTask) eachForecast(m *rnn.Model[float32], fe *ForecastEval, ar *linearAR, f func(forecastPoint) error) error {
	te := t.windowsOf(fe.Split)
	s, targets := te.Series(), te.TargetColumns()
	L, season := t.job.Data.Seq, fe.Season
	tp := m.NewTape(0)
	preds := make([]float64, len(fe.Methods))
	for lo := 0; lo < te.Len(); lo += evalBatch {
		hi := min(lo+evalBatch, te.Len())
		exs := make([]shard.Example, hi-lo)
		for i := range exs {
			exs[i] = te.Example(lo + i)
		}
		out, _, err := tp.Predict(windowBatch(exs), rnn.State[float32]{})
		if err != nil {
			return fmt.Errorf("eval: %s windows %d-%d: %w", fe.Split, lo, hi-1, err)
		}
		for i, ex := range exs {
			last := te.Start(lo+i) + L - 1
			for h := 0; h < fe.Horizon; h++ {
				for k, c := range targets {
					j := h*len(targets) + k
					for mi, name := range fe.Methods {
						switch name {
						case MethodModel:
							preds[mi] = t.norm.Inverse(t.forecastValue(out[i*t.outputs+j], ex.Input.Values, j), c)
						case MethodPersistence:
							preds[mi] = s.At(last, c)
						case MethodSeasonal:
							preds[mi] = s.At(last+1+h-season*(h/season+1), c)
						case MethodLinearAR:
							preds[mi] = t.norm.Inverse(ar.predict(ex.Input.Values, j), c)
						}
					}
					p := forecastPoint{window: lo + i, last: last, h: h, k: k, truth: s.At(last+1+h, c), preds: preds}
					if err := f(p); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
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
