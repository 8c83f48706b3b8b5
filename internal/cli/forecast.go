package cli

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
)

// printForecastData says, before a forecast trains, which columns it
// reads and forecasts and how its rows are split; a column or split the
// data cannot give is an error naming its key.
func printForecastData(w io.Writer, jc job.Config) error {
	if jc.Task.Kind != job.TaskForecast {
		return nil
	}
	d, err := task.DescribeForecast(jc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "recur: forecast data: %s\n", d)
	return nil
}

// printForecast writes a forecast's evaluation: the columns and rows in
// use, then for each target a table of RMSE and MAE by method and step
// (in the target's units), with the mean over the steps.
func printForecast(w io.Writer, step string, rep *task.Report, took time.Duration) error {
	fe := rep.Forecast
	d := fe.Data
	lo, hi := d.TestStart, d.Rows
	if fe.Split == task.SplitValidation {
		lo, hi = d.ValStart, d.TestStart
	}
	fmt.Fprintf(w, "%s, forecast task, %s set: %d windows, targets in rows %d-%d (%s)\n",
		step, fe.Split, fe.Windows, lo, hi-1, took.Round(time.Millisecond))
	fmt.Fprintf(w, "%s\n", d)
	fmt.Fprintf(w, "loss %.4g (normalised MSE)", rep.Metrics["loss"])
	if fe.AROrder > 0 {
		fmt.Fprintf(w, "; linear_ar order %d, chosen on the validation rows", fe.AROrder)
	}
	if fe.Season > 0 {
		fmt.Fprintf(w, "; season %d", fe.Season)
	}
	fmt.Fprintln(w)
	for k, name := range fe.Targets {
		for _, m := range []struct {
			what string
			v    [][][]float64
		}{{"RMSE", fe.RMSE}, {"MAE", fe.MAE}} {
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			head := []string{fmt.Sprintf("%s %s", m.what, name)}
			for h := 1; h <= fe.Horizon; h++ {
				head = append(head, fmt.Sprintf("step %d", h))
			}
			head = append(head, "mean")
			fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
			for mi, method := range fe.Methods {
				row := []string{method}
				for _, v := range m.v[mi][k] {
					row = append(row, fmt.Sprintf("%.4g", v))
				}
				row = append(row, fmt.Sprintf("%.4g", meanOver(m.v[mi][k], m.what == "RMSE")))
				fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// meanOver is the mean over steps: of squares, then rooted, for RMSE
// (the RMSE over all steps), plain for MAE.
func meanOver(v []float64, squares bool) float64 {
	var s float64
	for _, x := range v {
		if squares {
			x *= x
		}
		s += x
	}
	s /= float64(max(len(v), 1))
	if squares {
		return math.Sqrt(s)
	}
	return s
}
