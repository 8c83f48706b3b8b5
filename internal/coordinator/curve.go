package coordinator

import (
	"bytes"
	"image/color"
	"maps"
	"path/filepath"
	"slices"

	"go.uber.org/zap"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/recur-ml/recur/internal/events"
)

type point struct{ x, y float64 }

// lossCurve is the training and validation loss by step (steps completed),
// with the newest value of each.
type lossCurve struct {
	train, val         map[int64]float64
	lastTrain, lastVal float64
	hasTrain, hasVal   bool
}

func newLossCurve() lossCurve {
	return lossCurve{train: map[int64]float64{}, val: map[int64]float64{}}
}

func (l *lossCurve) addTrain(step int64, loss float64) {
	l.train[step], l.lastTrain, l.hasTrain = loss, loss, true
}

func (l *lossCurve) addVal(step int64, loss float64) {
	l.val[step], l.lastVal, l.hasVal = loss, loss, true
}

func (l *lossCurve) validated(step int64) bool {
	_, ok := l.val[step]
	return ok
}

// curveFromHistory rebuilds the loss curves of earlier coordinator
// processes of the run from its status history, so that loss.png after a
// resume shows the whole run. Steps run twice (after a restart from an
// older state) keep their latest loss.
func curveFromHistory(path string, log *zap.Logger) lossCurve {
	history, bad, err := events.ReadEventsFile(path)
	if err != nil {
		log.Warn("status history partly unreadable; the loss curve may miss points", zap.Int("bad_lines", bad), zap.Error(err))
	}
	l := newLossCurve()
	for _, e := range history {
		switch {
		case e.Kind == events.EventStep && !e.Skipped:
			l.train[e.Step] = e.Loss
		case e.Kind == events.EventValidation:
			l.val[e.Step] = e.ValLoss
		}
	}
	return l
}

func sortedPoints(m map[int64]float64) []point {
	steps := slices.Sorted(maps.Keys(m))
	out := make([]point, len(steps))
	for i, s := range steps {
		out[i] = point{float64(s), m[s]}
	}
	return out
}

// writeCurve draws the loss curves into loss.png beside the checkpoints.
func (c *Coordinator) writeCurve() {
	c.mu.Lock()
	train, val := sortedPoints(c.curve.train), sortedPoints(c.curve.val)
	c.mu.Unlock()
	if len(train) < 2 {
		return
	}
	p := plot.New()
	p.Title.Text = "Recur training"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats per target)"
	xy := func(ps []point) plotter.XYs {
		out := make(plotter.XYs, len(ps))
		for i, q := range ps {
			out[i].X, out[i].Y = q.x, q.y
		}
		return out
	}
	p.Legend.Top = true
	tl, err := plotter.NewLine(xy(train))
	if err != nil {
		return
	}
	p.Add(tl)
	p.Legend.Add("train", tl)
	if len(val) > 0 {
		vl, vp, err := plotter.NewLinePoints(xy(val))
		if err == nil {
			vl.Color = color.RGBA{R: 200, A: 255}
			vp.Color = vl.Color
			vl.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			p.Add(vl, vp)
			p.Legend.Add("validation", vl, vp)
		}
	}
	if err := savePlot(p, filepath.Join(c.cfg.Dir, "loss.png")); err != nil {
		c.log.Debug("loss curve", zap.Error(err))
	}
}

// savePlot renders p as a PNG into memory and replaces path with it
// atomically: a reader (an image viewer refreshing it) never sees a
// half-written or empty file.
func savePlot(p *plot.Plot, path string) error {
	w, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes())
}
