// Package events is a run's typed status stream: the Event of every
// completed step and of everything else that happens to the run, the
// bounded in-memory log that coordinator watchers read, the append-only
// metrics.jsonl that keeps every event of every coordinator process, and
// its reader. Programs read these, never the logs.
package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"
)

// Event is one entry of a run's status stream: every completed step and
// everything else that happens to the run. The coordinator publishes it
// over the Control service's Watch call and appends it to metrics.jsonl in
// the run directory (one JSON object a line; the history of every
// coordinator process of the run). Programs read these, never the logs.
// Fields a kind does not use are zero (and left out of the JSON).
type Event struct {
	// Seq numbers the events of one coordinator process from 1.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	// Step: for step events the number of steps completed (the state's
	// step after it); otherwise the step the event concerns.
	Step       int64  `json:"step"`
	Generation uint64 `json:"generation,omitempty"`
	Members    int    `json:"members,omitempty"` // workers in the ring
	Worker     string `json:"worker,omitempty"`
	// Step events.
	Loss             float64 `json:"loss,omitempty"`   // mean over the global batch
	LR               float64 `json:"lr,omitempty"`     // learning rate of the step
	Tokens           float64 `json:"tokens,omitempty"` // global targets of the step
	TotalTokens      float64 `json:"total_tokens,omitempty"`
	StepSeconds      float64 `json:"step_seconds,omitempty"`      // the reporting worker's compute and allreduce
	AllreduceSeconds float64 `json:"allreduce_seconds,omitempty"` // of which in the allreduce
	StateCRC         uint32  `json:"state_crc,omitempty"`         // CRC-32C of the weights after the step
	Skipped          bool    `json:"skipped,omitempty"`           // the update was skipped: non-finite values
	// Elapsed is the run's training time so far, over every coordinator
	// process (what train.minutes counts).
	Elapsed float64 `json:"elapsed_seconds,omitempty"`
	// Validation events: the loss of the state of Step and the lowest
	// of the run so far. Checkpoint events: ValLoss is the saved state's
	// own validation loss (absent when its step was not validated).
	ValLoss     float64 `json:"val_loss,omitempty"`
	BestValLoss float64 `json:"best_val_loss,omitempty"`
	// BestStep, on checkpoint and start events: the step of the run's best
	// checkpoint (the lowest validation loss, BestValLoss: the one eval,
	// sample, export and predict use by default); 0: no checkpoint has a
	// validation loss yet.
	BestStep int64 `json:"best_step,omitempty"`
	// Start events: the budgets and the job.
	TotalSteps int64   `json:"total_steps,omitempty"`
	Minutes    float64 `json:"minutes,omitempty"`
	Job        string  `json:"job,omitempty"`
	// End events: state checksums of members compared by this
	// coordinator process, and how many differed (divergence).
	StateChecks int64 `json:"state_checks,omitempty"`
	Divergences int64 `json:"divergences,omitempty"`
	// Message says the rest in words (reasons, errors).
	Message string `json:"message,omitempty"`
}

// EventKind names what an Event reports.
type EventKind string

// The kinds of status events.
const (
	EventStart            EventKind = "start"             // a coordinator process started (Step: the checkpoint it resumed, -1 none)
	EventJoined           EventKind = "joined"            // a worker joined
	EventLeft             EventKind = "left"              // a worker left or was removed
	EventGeneration       EventKind = "generation"        // a generation formed (Step: the state it starts from)
	EventRunning          EventKind = "running"           // every member is ready; the ring runs Step
	EventFailed           EventKind = "failed"            // a member's step or sync failed (Message: why)
	EventWaiting          EventKind = "waiting"           // the run waits (Message: for what)
	EventStep             EventKind = "step"              // a step completed
	EventValidation       EventKind = "validation"        // a validation pass completed
	EventCheckpoint       EventKind = "checkpoint"        // a checkpoint of Step was saved
	EventCheckpointFailed EventKind = "checkpoint_failed" // saving one failed (Message: why)
	EventDivergence       EventKind = "divergence"        // members of a generation hold different weights
	EventFinished         EventKind = "finished"          // the run ended: budget reached (or already)
	EventDiverged         EventKind = "diverged"          // the run ended: too many non-finite steps
	EventInterrupted      EventKind = "interrupted"       // the run ended: stopped by an operator
	EventInfo             EventKind = "info"              // anything else worth a line
)

// Ends reports whether the kind ends a run.
func (k EventKind) Ends() bool {
	return k == EventFinished || k == EventDiverged || k == EventInterrupted
}

// String is the event as a line for people.
func (e Event) String() string {
	switch e.Kind {
	case EventStep:
		s := fmt.Sprintf("step %d loss %.4f lr %.3g world %d", e.Step, e.Loss, e.LR, e.Members)
		if e.Skipped {
			s += " (update skipped)"
		}
		return s
	case EventValidation:
		return fmt.Sprintf("validation at step %d: %.4f (best %.4f)", e.Step, e.ValLoss, e.BestValLoss)
	case EventCheckpoint:
		s := fmt.Sprintf("checkpoint of step %d saved", e.Step)
		if e.ValLoss != 0 {
			s += fmt.Sprintf(" (validation loss %.4f)", e.ValLoss)
		}
		switch {
		case e.BestStep == e.Step:
			s += "; the best checkpoint"
		case e.BestStep > 0:
			s += fmt.Sprintf("; the best is step %d (%.4f)", e.BestStep, e.BestValLoss)
		}
		return s
	}
	if e.Kind == EventWaiting {
		return "waiting: " + e.Message
	}
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("%s at step %d", e.Kind, e.Step)
}

// MetricsFile is the run directory's status history.
const MetricsFile = "metrics.jsonl"

// Log keeps the recent events of a coordinator process for Watch
// calls, bounded in memory, and appends every event to metrics.jsonl.
type Log struct {
	mu      sync.Mutex
	seq     int64
	recent  []Event // the newest maxRecent events, oldest first
	changed chan struct{}
	closed  bool
	f       *os.File // nil: not persisted
	w       *bufio.Writer
	werr    error // the first write error (reported once)
}

// maxRecent bounds the events a Log keeps for watchers.
const maxRecent = 4096

// OpenLog appends to path ("" keeps events in memory only). A last
// line torn by a crash is ended first, so the next event starts a line.
func OpenLog(path string) (*Log, error) {
	l := &Log{changed: make(chan struct{})}
	if path == "" {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			f.Write([]byte{'\n'}) //nolint:errcheck // a failed write shows at the next one
		}
	}
	l.f, l.w = f, bufio.NewWriter(f)
	return l, nil
}

// Publish numbers e, keeps it for watchers and appends it to the file. It
// returns the first write error, once.
func (l *Log) Publish(e Event) (Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return e, nil
	}
	l.seq++
	e.Seq = l.seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e = finiteEvent(e)
	l.recent = append(l.recent, e)
	if len(l.recent) > maxRecent {
		l.recent = append(l.recent[:0], l.recent[len(l.recent)-maxRecent/2:]...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	if l.w == nil || l.werr != nil {
		return e, nil
	}
	b, err := json.Marshal(e)
	if err == nil {
		b = append(b, '\n')
		if _, err = l.w.Write(b); err == nil {
			err = l.w.Flush()
		}
	}
	if err != nil {
		l.werr = err
		return e, fmt.Errorf("status: %s: %w", l.f.Name(), err)
	}
	return e, nil
}

// finiteEvent replaces non-finite numbers (which JSON cannot hold) by 0.
func finiteEvent(e Event) Event {
	for _, p := range []*float64{&e.Loss, &e.LR, &e.Tokens, &e.TotalTokens, &e.StepSeconds, &e.AllreduceSeconds,
		&e.Elapsed, &e.ValLoss, &e.BestValLoss, &e.Minutes} {
		if math.IsNaN(*p) || math.IsInf(*p, 0) {
			*p = 0
		}
	}
	return e
}

// Since returns the kept events after seq and a channel closed by the
// next publish (or close).
func (l *Log) Since(seq int64) ([]Event, <-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := len(l.recent)
	for i > 0 && l.recent[i-1].Seq > seq {
		i--
	}
	return append([]Event(nil), l.recent[i:]...), l.changed, l.closed
}

// Close flushes and closes the file and ends every watch.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.changed)
	if l.f == nil {
		return nil
	}
	err := l.w.Flush()
	if serr := l.f.Sync(); err == nil {
		err = serr
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadEvents reads a metrics.jsonl stream. Lines that do not parse (a line
// torn by a crash) are skipped and counted in bad; the first such line's
// number is in the error returned beside the events, nil when none.
func ReadEvents(r io.Reader) (events []Event, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e Event
		if jerr := json.Unmarshal(b, &e); jerr != nil || e.Kind == "" {
			if bad == 0 {
				err = fmt.Errorf("line %d: not a status event", line)
			}
			bad++
			continue
		}
		events = append(events, e)
	}
	if serr := sc.Err(); serr != nil {
		return events, bad, errors.Join(err, serr)
	}
	return events, bad, err
}

// ReadEventsFile reads a run directory's metrics.jsonl (no file: none).
func ReadEventsFile(path string) ([]Event, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	ev, bad, err := ReadEvents(f)
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return ev, bad, err
}

// Throughput is the global tokens and steps per second of wall time
// between the first and the last of steps (step events in order; waits
// for generations included); ok is false with fewer than two steps or no
// time or steps between them.
func Throughput(steps []Event) (tokens, stepsPerSec float64, ok bool) {
	if len(steps) < 2 {
		return 0, 0, false
	}
	a, b := steps[0], steps[len(steps)-1]
	dt := b.Time.Sub(a.Time).Seconds()
	if dt <= 0 || b.Step <= a.Step {
		return 0, 0, false
	}
	return (b.TotalTokens - a.TotalTokens) / dt, float64(b.Step-a.Step) / dt, true
}
