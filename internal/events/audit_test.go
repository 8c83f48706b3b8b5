package events

import (
	"errors"
	"testing"
)

// A history that keeps the invariants passes, with its counts; each kind
// of break is found at the event that breaks it.
func TestCheckHistory(t *testing.T) {
	steps := func(from, to int64) []Event {
		var out []Event
		for s := from; s <= to; s++ {
			out = append(out, Event{Kind: EventStep, Step: s})
		}
		return out
	}
	cat := func(parts ...[]Event) []Event {
		var out []Event
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	start := []Event{{Kind: EventStart, Step: -1}}
	restart := []Event{{Kind: EventStart, Step: 5}} // resumed from a checkpoint older than the last step
	running := func(step int64) []Event { return []Event{{Kind: EventRunning, Step: step, Generation: 7}} }
	end := []Event{{Kind: EventFinished, Step: 12, StateChecks: 30}}

	good := cat(start, running(0), steps(1, 8), restart, running(8), steps(9, 12), end)
	a, err := CheckHistory(good)
	if err != nil || a.Starts != 2 || a.Steps != 12 || a.Last != 12 || a.StateChecks != 30 {
		t.Fatalf("a good history: %+v, %v", a, err)
	}
	for name, c := range map[string]struct {
		history []Event
		at      int
	}{
		"a step twice":             {cat(start, steps(1, 4), restart, steps(4, 6)), 6},
		"a step missing":           {cat(start, steps(1, 4), steps(6, 6)), 5},
		"a generation rolled back": {cat(start, steps(1, 4), running(3)), 5},
		"a divergence":             {cat(start, steps(1, 2), []Event{{Kind: EventDivergence, Message: "w1 and w2"}}), 3},
	} {
		_, err := CheckHistory(c.history)
		var he *HistoryError
		if !errors.As(err, &he) || he.Index != c.at {
			t.Errorf("%s: %v, want the event at %d", name, err, c.at)
		}
	}
}
