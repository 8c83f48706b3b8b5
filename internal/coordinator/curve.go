package coordinator

import (
	"bytes"
	"fmt"
	"image/color"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"go.uber.org/zap"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
)

type point struct{ x, y float64 }

// lossCurve is the training and validation loss by step (steps completed),
// with the newest value of each.
type lossCurve struct {
	train, val map[int64]float64
	lastTrain  float64
	hasTrain   bool
}

func newLossCurve() lossCurve {
	return lossCurve{train: map[int64]float64{}, val: map[int64]float64{}}
}

func (l *lossCurve) addTrain(step int64, loss float64) {
	l.train[step], l.lastTrain, l.hasTrain = loss, loss, true
}

func (l *lossCurve) addVal(step int64, loss float64) {
	l.val[step] = loss
}

func (l *lossCurve) validated(step int64) bool {
	_, ok := l.val[step]
	return ok
}

// readHistory reads the run's status history (metrics.jsonl): the
// events of earlier coordinator processes of the run.
func readHistory(path string, log *zap.Logger) []events.Event {
	history, bad, err := events.ReadEventsFile(path)
	if err != nil {
		log.Warn("status history partly unreadable; the loss curve and the dashboard may miss points", zap.Int("bad_lines", bad), zap.Error(err))
	}
	return history
}

// curveFromHistory rebuilds the loss curves of earlier coordinator
// processes of the run from its status history, so that loss.png after a
// resume shows the whole run. Steps run twice (after a restart from an
// older state) keep their latest loss.
func curveFromHistory(history []events.Event) lossCurve {
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
	p, err := lossPlot(train, val, c.cfg.Job.Task.Kind)
	if err == nil {
		err = savePlot(p, filepath.Join(c.cfg.Dir, "loss.png"))
	}
	if err != nil {
		c.log.Debug("loss curve", zap.Error(err))
	}
}

// lossAxisLabel names what the loss of task kind measures.
func lossAxisLabel(kind string) string {
	switch kind {
	case job.TaskForecast:
		return "loss: mean squared error per value (normalised series)"
	case job.TaskClassify:
		return "loss: cross-entropy (nats per example)"
	case job.TaskSeq2Seq:
		return "loss: cross-entropy (nats per output token)"
	}
	return "loss: cross-entropy (nats per character)"
}

// lossPlot draws the training loss and the validation loss (each point
// marked, the newest named in the legend) by step, for task kind.
func lossPlot(train, val []point, kind string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Recur training"
	p.X.Label.Text = "step"
	p.X.Tick.Marker = stepTicks{}
	p.Y.Label.Text = lossAxisLabel(kind)
	tl, err := plotter.NewLine(xys(train))
	if err != nil {
		return nil, err
	}
	p.Add(tl)
	legend := plot.NewLegend()
	legend.Add("train", tl)
	if len(val) > 0 {
		vl, vp, err := plotter.NewLinePoints(xys(val))
		if err != nil {
			return nil, err
		}
		vl.Color = color.RGBA{R: 200, A: 255}
		vp.Color = vl.Color
		vp.Shape = draw.CircleGlyph{}
		vl.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(vl, vp)
		legend.Add(validationLegend(val), vl, vp)
	}
	// Drawn last, over the curves' top right corner, which a falling loss
	// leaves free; its background keeps it readable over a curve.
	p.Add(legendBox{legend})
	return p, nil
}

// validationLegend names the validation curve and its newest point.
func validationLegend(val []point) string {
	last := val[len(val)-1]
	return fmt.Sprintf("validation (step %d: %.4g)", int64(last.x), last.y)
}

func xys(ps []point) plotter.XYs {
	out := make(plotter.XYs, len(ps))
	for i, q := range ps {
		out[i].X, out[i].Y = q.x, q.y
	}
	return out
}

// stepTicks labels the step axis with whole steps: plot's default ticks
// with integer labels, and no label between two steps.
type stepTicks struct{}

func (stepTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label == "" {
			continue
		}
		if t.Value != math.Trunc(t.Value) {
			ticks[i].Label = ""
			continue
		}
		ticks[i].Label = strconv.FormatInt(int64(t.Value), 10)
	}
	return ticks
}

// legendBox draws a legend inside the top right corner of the data area
// on a white background with a thin border, inset from the edges so no
// part of it is cut off.
type legendBox struct{ l plot.Legend }

func (b legendBox) Plot(c draw.Canvas, _ *plot.Plot) {
	pad := vg.Points(6)
	r := b.l.Rectangle(c)
	w, h := r.Size().X+2*pad, r.Size().Y+2*pad
	box := vg.Rectangle{Min: vg.Point{X: c.Max.X - pad - w, Y: c.Max.Y - pad - h}, Max: vg.Point{X: c.Max.X - pad, Y: c.Max.Y - pad}}
	outline := []vg.Point{box.Min, {X: box.Max.X, Y: box.Min.Y}, box.Max, {X: box.Min.X, Y: box.Max.Y}, box.Min}
	c.FillPolygon(color.White, outline)
	c.StrokeLines(draw.LineStyle{Color: color.Gray{Y: 160}, Width: vg.Points(0.5)}, outline)
	inner := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{Min: box.Min.Add(vg.Point{X: pad, Y: pad}), Max: box.Max.Sub(vg.Point{X: pad, Y: pad})}}
	b.l.Draw(inner)
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
