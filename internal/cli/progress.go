package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

// progress renders a run's status stream: a progress bar on a terminal
// (plain lines otherwise) and a line for each event of the run's life.
// It reads typed events only; the processes' logs pass through print.
type progress struct {
	mu         sync.Mutex
	w          io.Writer
	tty        bool
	totalSteps int64   // the step budget (0 or huge: none)
	minutes    float64 // the time budget (0: none)
	// steps are the recent step events, for a throughput over the last
	// rateWindow of wall time; first is the first one seen.
	steps    []events.Event
	first    events.Event
	val      float64
	hasVal   bool
	barShown bool
	lastBar  time.Time
}

// rateWindow is the wall time over which the bar's throughput is measured.
const rateWindow = 20 * time.Second

func newProgress(w io.Writer, steps int64, minutes float64) *progress {
	p := &progress{w: w, totalSteps: steps, minutes: minutes}
	if f, ok := w.(*os.File); ok {
		p.tty = IsTerminal(f)
	}
	return p
}

// event takes one status event.
func (p *progress) event(e events.Event) {
	switch e.Kind {
	case events.EventStep:
		p.mu.Lock()
		if len(p.steps) == 0 && p.first.Kind == "" {
			p.first = e
		}
		p.steps = append(p.steps, e)
		for len(p.steps) > 2 && e.Time.Sub(p.steps[1].Time) > rateWindow {
			p.steps = p.steps[1:]
		}
		p.mu.Unlock()
		p.bar(false)
	case events.EventValidation:
		p.mu.Lock()
		p.val, p.hasVal = e.ValLoss, true
		p.mu.Unlock()
		p.bar(true)
	case events.EventStart:
		p.mu.Lock()
		p.totalSteps, p.minutes = e.TotalSteps, e.Minutes
		p.mu.Unlock()
		p.print("[run] " + e.Message)
	case events.EventRunning, events.EventCheckpoint, events.EventInfo:
		// routine: the bar shows their effect
	default:
		p.print("[run] " + e.String())
	}
}

// eta is the wall time left: by the step budget at the current rate, or
// by the time budget, whichever ends first.
func (p *progress) eta(last events.Event, stepsPerSec float64) (time.Duration, bool) {
	var left time.Duration
	ok := false
	if p.totalSteps > 0 && p.totalSteps < 1e9 && stepsPerSec > 0 {
		left, ok = time.Duration(float64(p.totalSteps-last.Step)/stepsPerSec*float64(time.Second)), true
	}
	if p.minutes > 0 {
		byTime := time.Duration((p.minutes*60 - last.Elapsed) * float64(time.Second))
		if !ok || byTime < left {
			left, ok = byTime, true
		}
	}
	return max(left, 0), ok
}

func (p *progress) print(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.barShown {
		fmt.Fprint(p.w, "\r\033[K")
		p.barShown = false
	}
	fmt.Fprintln(p.w, s)
}

// bar draws the progress line: on a terminal at every step, otherwise
// at most every 5 s (and when forced).
func (p *progress) bar(force bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.steps) == 0 {
		return
	}
	now := time.Now()
	if !p.tty && !force && now.Sub(p.lastBar) < 5*time.Second {
		return
	}
	p.lastBar = now
	last := p.steps[len(p.steps)-1]
	frac := 0.0
	if p.totalSteps > 0 && p.totalSteps < 1e9 {
		frac = float64(last.Step) / float64(p.totalSteps)
	}
	if p.minutes > 0 {
		frac = max(frac, last.Elapsed/(p.minutes*60))
	}
	frac = min(frac, 1)
	var b strings.Builder
	fmt.Fprintf(&b, "step %6d  loss %.3f", last.Step, last.Loss)
	if p.hasVal {
		fmt.Fprintf(&b, "  val %.3f (sample)", p.val)
	}
	tps, sps, ok := events.Throughput(p.steps)
	if ok {
		fmt.Fprintf(&b, "  %6.0f tok/s", tps)
	}
	fmt.Fprintf(&b, "  %d workers  %s", last.Members, (time.Duration(last.Elapsed) * time.Second).Round(time.Second))
	if left, ok := p.eta(last, sps); ok {
		fmt.Fprintf(&b, "  ETA %s", left.Round(time.Second))
	}
	if p.tty {
		n := int(frac * 30)
		fmt.Fprintf(p.w, "\r\033[K[%s%s] %3.0f%% %s", strings.Repeat("=", n), strings.Repeat(" ", 30-n), 100*frac, b.String())
		p.barShown = true
		return
	}
	fmt.Fprintf(p.w, "%3.0f%% %s\n", 100*frac, b.String())
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.barShown {
		fmt.Fprintln(p.w)
		p.barShown = false
	}
}

// meanThroughput is global tokens over wall time from the first step
// event seen to the last: what a user gets from the run, waits included.
func (p *progress) meanThroughput() (tps float64, from, to int64, ok bool) {
	if len(p.steps) == 0 {
		return 0, 0, 0, false
	}
	t, _, ok := events.Throughput([]events.Event{p.first, p.steps[len(p.steps)-1]})
	return t, p.first.Step, p.steps[len(p.steps)-1].Step, ok
}

// summary ends the display of a finished run in dir, pointing to the
// commands that work on a run of task kind.
func (p *progress) summary(dir, kind string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.steps) > 0 {
		last := p.steps[len(p.steps)-1]
		fmt.Fprintf(p.w, "recur: trained to step %d (%s of training in this run); last train loss %.4f\n", last.Step,
			(time.Duration(last.Elapsed) * time.Second).Round(time.Second), last.Loss)
		if tps, from, to, ok := p.meanThroughput(); ok {
			fmt.Fprintf(p.w, "recur: throughput %.0f tokens/s (global tokens over wall time, steps %d-%d)\n", tps, from, to)
		}
	}
	fmt.Fprintf(p.w, "recur: checkpoints, metrics.jsonl and the loss curve (loss.png) are in %s; see `recur %s --run %s`\n", dir, strings.Join(runCommands(kind), "|"), dir)
}

// runCommands are the commands that take --run DIR of a task kind's run.
func runCommands(kind string) []string {
	h, ok := helpFor(kind)
	if !ok {
		return []string{"eval", "status"}
	}
	return append(slices.Clone(h.after), "status")
}
