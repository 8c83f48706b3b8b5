package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressMeanThroughput: the summary's mean throughput runs from the
// first step line after warm-up to the last, with the step's token count.
func TestProgressMeanThroughput(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 100, 0)
	for _, l := range []string{
		`{"level":"info","msg":"step","step":1,"loss":4.1,"tokens":3200,"tokens_per_s":900,"world":2}`,
		`{"level":"info","msg":"step","step":21,"loss":3.2,"tokens":3200,"tokens_per_s":20000,"world":2}`,
		`{"level":"info","msg":"step","step":41,"loss":2.9,"tokens":3200,"tokens_per_s":21000,"world":2}`,
	} {
		p.line("coordinator", []byte(l))
	}
	if p.first["step"].(float64) != 21 {
		t.Fatalf("measured from step %v, want 21 (after the warm-up step)", p.first["step"])
	}
	p.firstTime = p.lastTime.Add(-4 * time.Second) // 20 steps of 3200 tokens in 4 s
	p.summary("runs/x")
	if want := "mean throughput 16000 tokens/s over steps 21-41"; !strings.Contains(out.String(), want) {
		t.Fatalf("summary %q lacks %q", out.String(), want)
	}
}
