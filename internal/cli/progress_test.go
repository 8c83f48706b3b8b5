package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

// The display's throughput is global tokens over wall time between step
// events (waits included), not a worker's compute-only rate; its ETA
// comes from the budget.
func TestProgressThroughputAndETA(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 0, 0)
	t0 := time.Unix(1000, 0)
	p.event(events.Event{Kind: events.EventStart, TotalSteps: 100, Message: "coordinator started"})
	// 10 steps of 3200 tokens in 4 s of wall time, though each step
	// computed in 0.1 s: the rest was waiting.
	for i := range 11 {
		p.event(events.Event{Kind: events.EventStep, Time: t0.Add(time.Duration(i) * 400 * time.Millisecond), Step: int64(10 + i),
			Loss: 2, Tokens: 3200, TotalTokens: float64(3200 * (10 + i)), StepSeconds: 0.1, Members: 2, Elapsed: 10})
	}
	tps, sps, ok := events.Throughput(p.steps)
	if !ok || tps != 8000 || sps != 2.5 {
		t.Fatalf("throughput %v tokens/s, %v steps/s, want 8000 and 2.5", tps, sps)
	}
	last := p.steps[len(p.steps)-1]
	if left, ok := p.eta(last, sps); !ok || left != 32*time.Second {
		t.Fatalf("ETA %v, want 32s for 80 steps at 2.5 steps/s", left)
	}
	p.minutes = 1 // 10 s spent: 50 s left, later than by steps
	if left, _ := p.eta(last, sps); left != 32*time.Second {
		t.Fatalf("ETA %v, want the earlier end (32s)", left)
	}
	p.minutes = 0.25 // 15 s budget, 10 s spent
	if left, _ := p.eta(last, sps); left != 5*time.Second {
		t.Fatalf("ETA %v, want 5s by the time budget", left)
	}
	p.summary("runs/x", "")
	if want := "throughput 8000 tokens/s (global tokens over wall time, steps 10-20)"; !strings.Contains(out.String(), want) {
		t.Fatalf("summary %q lacks %q", out.String(), want)
	}
	if !strings.Contains(out.String(), "[run] coordinator started") {
		t.Fatalf("the start event was not shown:\n%s", out.String())
	}
}
