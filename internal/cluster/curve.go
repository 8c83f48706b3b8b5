package cluster

import (
	"image/color"
	"path/filepath"

	"go.uber.org/zap"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type point struct{ x, y float64 }

// lossCurve is the training and validation loss by step.
type lossCurve struct {
	train, val []point
}

func (l *lossCurve) hasVal(step int64) bool {
	for _, p := range l.val {
		if p.x == float64(step) {
			return true
		}
	}
	return false
}

// writeCurve draws the loss curves into loss.png beside the checkpoints.
func (c *Coordinator) writeCurve() {
	c.mu.Lock()
	train := append([]point(nil), c.curve.train...)
	val := append([]point(nil), c.curve.val...)
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
	if err := p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(c.cfg.Dir, "loss.png")); err != nil {
		c.log.Debug("loss curve", zap.Error(err))
	}
}
