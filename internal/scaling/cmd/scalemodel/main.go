// Command scalemodel fits Recur's scaling model (internal/scaling) to the
// measurements in a JSON file, checks it against the measured steps, and
// prints the fit, the validation and the predictions as markdown (the
// tables of docs/SCALING.md); --png draws the predicted efficiency.
//
//	go run ./internal/scaling/cmd/scalemodel --png docs/img/scaling.png docs/measurements/scaling.json
//
// It exits 1 when the input cannot be read or fitted, and 3 when a
// validation point is off by more than --max-error percent.
package main

import (
	"flag"
	"fmt"
	"os"

	"gonum.org/v1/plot/vg"

	"github.com/recur-ml/recur/internal/scaling"
)

func main() {
	png := flag.String("png", "", "write the efficiency plot to this PNG file")
	maxErr := flag.Float64("max-error", 15, "fail (exit 3) when a validation point's prediction is off by more than this many percent")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: scalemodel [--png FILE] [--max-error PCT] MEASUREMENTS.json\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *png); err != nil {
		fmt.Fprintln(os.Stderr, "scalemodel:", err)
		os.Exit(1)
	}
	r, _ := build(flag.Arg(0))
	if m := r.MaxErrorPct(); m > *maxErr {
		fmt.Fprintf(os.Stderr, "scalemodel: a prediction is off by %.1f%%, more than %.0f%%\n", m, *maxErr)
		os.Exit(3)
	}
}

func build(path string) (*scaling.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	in, err := scaling.ParseInput(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return scaling.Build(in)
}

func run(path, png string) error {
	r, err := build(path)
	if err != nil {
		return err
	}
	if err := r.WriteMarkdown(os.Stdout); err != nil {
		return err
	}
	if png == "" {
		return nil
	}
	p, err := r.Plot()
	if err != nil {
		return err
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, png)
}
