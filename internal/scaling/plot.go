package scaling

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Plot draws the predicted efficiency by number of workers, one line per
// link, solid with overlap and dashed without.
func (r *Report) Plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Recur scaling model: %.0f tokens per worker per step, fp32", r.Input.Predict.Batch)
	p.X.Label.Text = "workers"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Label.Text = "efficiency (share of the compute-only step rate)"
	p.Y.Min, p.Y.Max = 0, 1.05
	p.Legend.Top = false
	p.Legend.Left = true
	colors := []color.RGBA{{R: 31, G: 119, B: 180, A: 255}, {R: 214, G: 39, B: 40, A: 255}, {R: 44, G: 160, B: 44, A: 255}, {R: 148, G: 103, B: 189, A: 255}}
	for i, gbit := range r.Input.Predict.LinksGbit {
		var over, plain plotter.XYs
		for _, row := range r.Rows {
			if row.LinkGbit == gbit {
				over = append(over, plotter.XY{X: float64(row.Batch.Workers), Y: row.Batch.Efficiency})
				plain = append(plain, plotter.XY{X: float64(row.Plain.Workers), Y: row.Plain.Efficiency})
			}
		}
		c := colors[i%len(colors)]
		lo, po, err := plotter.NewLinePoints(over)
		if err != nil {
			return nil, err
		}
		lp, err := plotter.NewLine(plain)
		if err != nil {
			return nil, err
		}
		lo.Color, po.Color, lp.Color = c, c, c
		lp.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(lo, po, lp)
		p.Legend.Add(fmt.Sprintf("%g Gbit/s, overlapped", gbit), lo, po)
		p.Legend.Add(fmt.Sprintf("%g Gbit/s, not overlapped", gbit), lp)
	}
	return p, nil
}
