package scaling

import (
	"bytes"
	"strings"
	"testing"
)

const sampleInput = `{
  "source": "test",
  "link_rate_bytes_per_s": 125000000,
  "transport_cpu_bytes_per_s": 400000000,
  "ring_samples": [
    {"ranks": 2, "bytes": 1000000, "seconds": 0.0092},
    {"ranks": 4, "bytes": 13200000, "seconds": 0.168},
    {"ranks": 8, "bytes": 4000000, "seconds": 0.060}
  ],
  "step": {"compute_s_per_token": 0.0001, "backward_share": 0.6, "params": 3300000, "hidden": 0.7},
  "points": [{"workers": 4, "tokens_per_worker": 3200, "wire": "fp32", "overlap": true, "ceiling_s": 1.2, "measured_s": 1.25}],
  "predict": {"workers": [8, 16, 32], "links_gbit": [1, 10], "batches": [800, 1600, 3200, 6400], "batch": 3200}
}`

func TestBuildReport(t *testing.T) {
	in, err := ParseInput([]byte(sampleInput))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 6 || len(r.Checks) != 1 {
		t.Fatalf("%d rows, %d checks", len(r.Rows), len(r.Checks))
	}
	// 10 Gbit/s is CPU-bound at 0.4 GB/s here, well below 95% of 1.25 GB/s.
	if got := 1 / r.Rows[3].Ring.Beta; got != 400e6 {
		t.Errorf("10 Gbit/s ring rate %g, want the CPU's 4e8", got)
	}
	for _, row := range r.Rows {
		if row.Batch.Efficiency < row.Plain.Efficiency {
			t.Errorf("%+v: overlap made it slower", row)
		}
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(md.String(), "\n| "); n != 3+3+1+6 { // headers, samples, checks, predictions
		t.Errorf("%d table rows in\n%s", n, md.String())
	}
	if _, err := r.Plot(); err != nil {
		t.Fatal(err)
	}
}

func TestParseInputRefuses(t *testing.T) {
	for name, edit := range map[string][2]string{
		"unknown key":   {`"source"`, `"sauce"`},
		"no link rate":  {`"link_rate_bytes_per_s": 125000000`, `"link_rate_bytes_per_s": 0`},
		"bad step":      {`"backward_share": 0.6`, `"backward_share": 6`},
		"batches order": {`[800, 1600, 3200, 6400]`, `[800, 400]`},
		"zero workers":  {`"workers": [8, 16, 32]`, `"workers": [0]`},
		"not json":      {`{`, `[`},
	} {
		s := strings.Replace(sampleInput, edit[0], edit[1], 1)
		if s == sampleInput {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := ParseInput([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseInput(f *testing.F) {
	f.Add([]byte(sampleInput))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInput(b)
		if err != nil {
			return
		}
		if r, err := Build(in); err == nil {
			var buf bytes.Buffer
			if err := r.WriteMarkdown(&buf); err != nil {
				t.Fatal(err)
			}
		}
	})
}
