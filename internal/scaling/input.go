package scaling

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Input is what the model is fitted and validated on, and what to
// predict: the format of docs/measurements/scaling.json.
type Input struct {
	// Source says where and when the measurements were taken.
	Source string `json:"source"`
	// LinkRate is the rate in bytes/s of the links the ring samples and
	// the points were measured on.
	LinkRate float64 `json:"link_rate_bytes_per_s"`
	// TransportCPURate is the bytes/s one rank's transport moves when the
	// CPU, not the link, binds (0: never binds).
	TransportCPURate float64  `json:"transport_cpu_bytes_per_s"`
	RingSamples      []Sample `json:"ring_samples"`
	Step             Step     `json:"step"`
	Points           []Point  `json:"points"`
	Predict          Grid     `json:"predict"`
}

// Grid is the set of predictions to make.
type Grid struct {
	Workers   []int     `json:"workers"`
	LinksGbit []float64 `json:"links_gbit"`
	// Batches are the tokens per worker per step Recommend may choose
	// from, ascending; Batch is the one the table reports first.
	Batches []float64 `json:"batches"`
	Batch   float64   `json:"batch"`
}

// ParseInput reads an Input and checks it; unknown keys are errors, so a
// misspelt key is not silently a zero.
func ParseInput(b []byte) (*Input, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in Input
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("scaling input: %w", err)
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

// Validate reports an Input the model cannot use.
func (in *Input) Validate() error {
	if !(in.LinkRate > 0) {
		return fmt.Errorf("scaling input: link_rate_bytes_per_s %g must be > 0", in.LinkRate)
	}
	if in.TransportCPURate < 0 {
		return fmt.Errorf("scaling input: transport_cpu_bytes_per_s %g must be >= 0", in.TransportCPURate)
	}
	if err := in.Step.Validate(); err != nil {
		return fmt.Errorf("scaling input: step: %w", err)
	}
	g := in.Predict
	if len(g.Workers) == 0 || len(g.LinksGbit) == 0 || len(g.Batches) == 0 || !(g.Batch > 0) {
		return fmt.Errorf("scaling input: predict needs workers, links_gbit, batches and batch")
	}
	for i, n := range g.Workers {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("scaling input: predict.workers[%d] = %d out of range", i, n)
		}
	}
	for i, l := range g.LinksGbit {
		if !(l > 0) {
			return fmt.Errorf("scaling input: predict.links_gbit[%d] = %g must be > 0", i, l)
		}
	}
	for i, b := range g.Batches {
		if !(b > 0) || (i > 0 && b <= g.Batches[i-1]) {
			return fmt.Errorf("scaling input: predict.batches must be positive and ascending (index %d: %g)", i, b)
		}
	}
	return nil
}
