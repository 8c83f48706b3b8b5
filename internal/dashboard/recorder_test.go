package dashboard

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// run feeds a recorder the events of a run: start, two workers, a
// generation, then steps (every 100 ms, 1000 tokens each, loss falling),
// a validation every 10 steps and a checkpoint every 20.
type run struct {
	r      *Recorder
	now    time.Time
	tokens float64
}

func newRun(totalSteps int64) *run {
	u := &run{r: NewRecorder(), now: t0}
	u.event(events.Event{Kind: events.EventStart, Step: -1, TotalSteps: totalSteps, Job: "abc123", Message: "coordinator started"})
	for _, w := range []string{"w1", "w2"} {
		u.event(events.Event{Kind: events.EventJoined, Worker: w, Message: w + " joined"})
	}
	u.event(events.Event{Kind: events.EventGeneration, Generation: 1, Members: 2})
	u.event(events.Event{Kind: events.EventRunning, Generation: 1, Members: 2})
	return u
}

func (u *run) event(e events.Event) {
	e.Time = u.now
	e.Elapsed = u.now.Sub(t0).Seconds()
	u.r.Observe(e)
}

func (u *run) steps(from, to int64) {
	for s := from; s <= to; s++ {
		u.now = u.now.Add(100 * time.Millisecond)
		u.tokens += 1000
		u.event(events.Event{Kind: events.EventStep, Step: s, Generation: 1, Members: 2, Loss: 5 / math.Sqrt(float64(s)), LR: 0.01,
			Tokens: 1000, TotalTokens: u.tokens})
		u.r.Report("w1", s, 0.09, 0.03, 0.01, u.now)
		u.r.Report("w2", s, 0.08, 0.04, 0.02, u.now)
		if s%10 == 0 {
			u.event(events.Event{Kind: events.EventValidation, Step: s, ValLoss: 6 / math.Sqrt(float64(s)), BestValLoss: 6 / math.Sqrt(float64(s))})
		}
		if s%20 == 0 {
			u.event(events.Event{Kind: events.EventCheckpoint, Step: s})
		}
	}
}

func (u *run) status() Status {
	return u.r.Status(Live{Now: u.now, Ring: []string{"w2", "w1"}, Workers: []string{"w1", "w2"}, Task: "charlm"})
}

func TestEmptyRun(t *testing.T) {
	s := NewRecorder().Status(Live{Now: t0})
	if s.State != "starting" || s.Step != 0 || s.ETA != nil || s.ValLoss != nil {
		t.Fatalf("empty run: %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	// The page reads lists without checking for null.
	for _, key := range []string{`"members":[]`, `"train":[]`, `"val":[]`, `"lr":[]`, `"tokens_per_second":[]`,
		`"generations":[]`, `"checkpoints":[]`, `"events":[]`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("empty run's JSON lacks %s: %s", key, b)
		}
	}
}

func TestRunningRun(t *testing.T) {
	u := newRun(200)
	u.steps(1, 100)
	s := u.status()
	if s.State != "running" || s.Step != 100 || s.TotalSteps != 200 || s.Job != "abc123" || s.Task != "charlm" {
		t.Fatalf("state %q step %d of %d job %q task %q", s.State, s.Step, s.TotalSteps, s.Job, s.Task)
	}
	if len(s.Series.Train) != 100 || len(s.Series.LR) != 100 || len(s.Series.Val) != 10 {
		t.Fatalf("curves: %d train, %d lr, %d val points; want 100, 100, 10", len(s.Series.Train), len(s.Series.LR), len(s.Series.Val))
	}
	// 1000 tokens every 100 ms, measured over the last 20 s of wall time.
	if math.Abs(s.TokensPerSecond-10000) > 1 || math.Abs(s.StepsPerSecond-10) > 1e-3 {
		t.Fatalf("throughput %v tokens/s, %v steps/s; want 10000, 10", s.TokensPerSecond, s.StepsPerSecond)
	}
	if n := len(s.Series.TokensPerSecond); n < 8 || n > 10 {
		t.Fatalf("%d tokens/s points over 10 s at one a second", n)
	}
	for _, p := range s.Series.TokensPerSecond {
		if math.Abs(p[1]-10000) > 1 {
			t.Fatalf("tokens/s point %v, want 10000", p)
		}
	}
	if s.ETA == nil || math.Abs(*s.ETA-10) > 1e-6 {
		t.Fatalf("ETA %v, want 10 s (100 steps at 10 steps/s)", s.ETA)
	}
	if s.ValLoss == nil || s.ValStep != 100 || *s.ValLoss != 0.6 {
		t.Fatalf("validation %v at %d", s.ValLoss, s.ValStep)
	}
	if s.CheckpointsTotal != 5 || len(s.Checkpoints) != 5 || s.Checkpoints[4].Step != 100 {
		t.Fatalf("checkpoints %d: %v", s.CheckpointsTotal, s.Checkpoints)
	}
	if s.Generation != 1 || s.World != 2 || s.Workers != 2 || s.GenerationsTotal != 1 {
		t.Fatalf("generation %d world %d workers %d generations %d", s.Generation, s.World, s.Workers, s.GenerationsTotal)
	}
	if len(s.Members) != 2 || s.Members[0].ID != "w2" || s.Members[0].Rank != 0 || s.Members[1].ID != "w1" || s.Members[1].Rank != 1 {
		t.Fatalf("members %+v, want w2 then w1 in rank order", s.Members)
	}
	w1 := s.Members[1]
	if w1.Step != 100 || w1.Steps != 100 || math.Abs(w1.StepSeconds-0.09) > 1e-9 || math.Abs(w1.AllreduceSeconds-0.03) > 1e-9 ||
		math.Abs(w1.WaitSeconds-0.01) > 1e-9 || w1.ReportAge != 0 {
		t.Fatalf("w1: %+v", w1)
	}
	for _, l := range s.Events {
		if l.Kind == string(events.EventStep) || l.Kind == string(events.EventCheckpoint) {
			t.Fatalf("routine event %v in the list of events", l)
		}
	}

	u.now = u.now.Add(5 * time.Second)
	if s := u.status(); math.Abs(s.Elapsed-15) > 1e-9 || s.Members[1].ReportAge != 5 {
		t.Fatalf("5 s later: elapsed %v (want 15), report age %v (want 5)", s.Elapsed, s.Members[1].ReportAge)
	}

	u.event(events.Event{Kind: events.EventFinished, Step: 100, Message: "budget reached"})
	s = u.status()
	if s.State != "finished" || s.Message != "budget reached" || s.ETA != nil || s.TokensPerSecond != 0 {
		t.Fatalf("after the end: state %q message %q ETA %v tokens/s %v", s.State, s.Message, s.ETA, s.TokensPerSecond)
	}
	if last := s.Events[len(s.Events)-1]; last.Kind != "finished" || last.Text != "budget reached" {
		t.Fatalf("last event %+v", last)
	}
}

func TestStatesFollowTheStream(t *testing.T) {
	r := NewRecorder()
	for _, c := range []struct {
		e     events.Event
		state string
	}{
		{events.Event{Kind: events.EventStart}, "starting"},
		{events.Event{Kind: events.EventWaiting, Message: "1 of 2 workers"}, "waiting"},
		{events.Event{Kind: events.EventGeneration, Generation: 3}, "forming"},
		{events.Event{Kind: events.EventRunning}, "running"},
		{events.Event{Kind: events.EventFailed, Message: "w1 failed"}, "running"},
		{events.Event{Kind: events.EventDiverged, Message: "10 skipped steps"}, "diverged"},
		{events.Event{Kind: events.EventStep, Step: 1}, "diverged"},
		{events.Event{Kind: events.EventStart}, "starting"},
		{events.Event{Kind: events.EventInterrupted}, "interrupted"},
	} {
		r.Observe(c.e)
		if s := r.Status(Live{Now: t0, Waiting: "x"}); s.State != c.state {
			t.Fatalf("after %s: state %q, want %q", c.e.Kind, s.State, c.state)
		} else if (s.Waiting == "") != ended(c.state) {
			t.Fatalf("state %s: waiting %q", c.state, s.Waiting)
		}
	}
}

// A second coordinator process resumed from an older checkpoint: the
// curves show the steps as trained now, and the hour between the two
// processes is no throughput.
func TestResumedRun(t *testing.T) {
	u := newRun(0)
	u.steps(1, 100)
	u.now = u.now.Add(time.Hour)
	u.event(events.Event{Kind: events.EventStart, Step: 80})
	u.steps(81, 120)
	s := u.status()
	if s.Processes != 2 || s.Step != 120 || s.TotalSteps != 0 {
		t.Fatalf("processes %d step %d total %d", s.Processes, s.Step, s.TotalSteps)
	}
	if len(s.Series.Train) != 120 || len(s.Series.Val) != 12 {
		t.Fatalf("%d train and %d val points, want 120 and 12", len(s.Series.Train), len(s.Series.Val))
	}
	for _, c := range [][]Point{s.Series.Train, s.Series.Val, s.Series.LR, s.Series.TokensPerSecond} {
		for i := 1; i < len(c); i++ {
			if c[i][0] <= c[i-1][0] {
				t.Fatalf("steps out of order: %v then %v", c[i-1], c[i])
			}
		}
	}
	for _, p := range s.Series.TokensPerSecond {
		if math.Abs(p[1]-10000) > 1 {
			t.Fatalf("tokens/s point %v across the restart, want 10000", p)
		}
	}
}

func TestDepartedWorkersLeaveTheTable(t *testing.T) {
	u := newRun(0)
	u.steps(1, 3)
	u.event(events.Event{Kind: events.EventLeft, Worker: "w1"})
	s := u.r.Status(Live{Now: u.now, Ring: []string{"w2"}, Workers: []string{"w2", "w3"}})
	if s.Workers != 1 || len(s.Members) != 2 || s.Members[0].ID != "w2" || s.Members[1].ID != "w3" || s.Members[1].Rank != -1 ||
		s.Members[1].Step != -1 || s.Members[1].ReportAge != -1 {
		t.Fatalf("workers %d members %+v", s.Workers, s.Members)
	}
	if _, ok := u.r.reports["w1"]; ok {
		t.Fatal("the report of a worker that left is kept")
	}
}

// A long run's status stays small and keeps the whole run's shape.
func TestLongHistoryIsBounded(t *testing.T) {
	const steps = 1_000_000
	r := NewRecorder()
	now := t0
	r.Observe(events.Event{Kind: events.EventStart, Time: now, TotalSteps: steps})
	var gen uint64
	for s := int64(1); s <= steps; s++ {
		now = now.Add(10 * time.Millisecond)
		if s%5000 == 1 {
			gen++
			id := fmt.Sprintf("worker-%d", gen)
			r.Observe(events.Event{Kind: events.EventJoined, Time: now, Worker: id, Message: id + " joined"})
			r.Observe(events.Event{Kind: events.EventGeneration, Time: now, Generation: gen, Members: 2})
			r.Report(id, s, 0.01, 0.002, 0.001, now)
		}
		r.Observe(events.Event{Kind: events.EventStep, Time: now, Step: s, Loss: 5 / math.Sqrt(float64(s)), LR: 1e-3, TotalTokens: float64(s) * 512})
		if s%100 == 0 {
			r.Observe(events.Event{Kind: events.EventValidation, Time: now, Step: s, ValLoss: 6 / math.Sqrt(float64(s))})
		}
		if s%500 == 0 {
			r.Observe(events.Event{Kind: events.EventCheckpoint, Time: now, Step: s})
		}
	}
	workers := make([]string, 0, gen)
	for i := range gen {
		workers = append(workers, fmt.Sprintf("worker-%d", i+1))
	}
	st := r.Status(Live{Now: now, Workers: workers})
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 160<<10 {
		t.Fatalf("the status of a run of %d steps is %d bytes", steps, len(b))
	}
	t.Logf("status of %d steps: %d bytes, %d train points", steps, len(b), len(st.Series.Train))
	for name, c := range map[string][]Point{"train": st.Series.Train, "val": st.Series.Val, "lr": st.Series.LR, "tokens/s": st.Series.TokensPerSecond} {
		if len(c) > MaxPoints || len(c) < MaxPoints/4 {
			t.Errorf("%s: %d points", name, len(c))
		}
		if c[0][0] > steps/100 || c[len(c)-1][0] < steps-steps/100 {
			t.Errorf("%s spans steps %v..%v, want the whole run 1..%d", name, c[0][0], c[len(c)-1][0], steps)
		}
	}
	if first, last := st.Series.Train[0][3], st.Series.Train[len(st.Series.Train)-1][1]; first != 5 || last > 0.006 {
		t.Errorf("the loss curve runs from %v to %v, want 5 to 0.005", first, last)
	}
	if len(st.Generations) != maxGenerations || st.GenerationsTotal != int(gen) || len(st.Checkpoints) != maxCheckpoints ||
		st.CheckpointsTotal != steps/500 || len(st.Events) != maxLines || len(st.Members) != int(gen) {
		t.Errorf("lists: %d generations of %d, %d checkpoints of %d, %d events, %d members", len(st.Generations), st.GenerationsTotal,
			len(st.Checkpoints), st.CheckpointsTotal, len(st.Events), len(st.Members))
	}
	if len(r.rate) > maxRate {
		t.Errorf("%d rate samples kept", len(r.rate))
	}
}

func TestMembersAreBounded(t *testing.T) {
	r := NewRecorder()
	var ids []string
	for i := range maxReports + 10 {
		id := fmt.Sprintf("w%04d", i)
		ids = append(ids, id)
		r.Report(id, 1, 1, 0.5, 0.1, t0)
	}
	if len(r.reports) != maxReports {
		t.Fatalf("%d reports kept, want at most %d", len(r.reports), maxReports)
	}
	if s := r.Status(Live{Now: t0, Workers: ids}); len(s.Members) != maxMembers {
		t.Fatalf("%d members listed, want %d", len(s.Members), maxMembers)
	}
}

// Status events from a file (metrics.jsonl) never make a status that
// cannot be encoded or that grows beyond its bounds.
func FuzzRecorder(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-01-02T03:04:05Z","kind":"start","step":-1,"total_steps":10}
{"seq":2,"time":"2026-01-02T03:04:06Z","kind":"step","step":1,"loss":1e308,"total_tokens":1e308}
{"seq":3,"time":"2026-01-02T03:04:07Z","kind":"step","step":2,"loss":-1e308,"total_tokens":-1e308}
{"seq":4,"time":"2026-01-02T03:04:05Z","kind":"step","step":1,"lr":1e308}
{"seq":5,"time":"2026-01-02T03:04:08Z","kind":"validation","step":-9223372036854775808,"val_loss":1e308}
{"seq":6,"kind":"finished","message":"done"}`))
	f.Add([]byte(`{"kind":"left","worker":"w"}` + "\n" + `{"kind":"step","step":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _, _ := events.ReadEvents(strings.NewReader(string(b)))
		r := NewRecorder()
		for i, e := range evs {
			r.Observe(e)
			r.Report(e.Worker, e.Step, e.StepSeconds, e.AllreduceSeconds, e.Loss, e.Time)
			if i%7 == 0 {
				s := r.Status(Live{Now: e.Time, Workers: []string{e.Worker}})
				if _, err := json.Marshal(s); err != nil {
					t.Fatalf("status after %d events does not encode: %v", i+1, err)
				}
			}
		}
		s := r.Status(Live{Now: t0})
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("status does not encode: %v", err)
		}
		if len(s.Series.Train) > MaxPoints || len(s.Events) > maxLines {
			t.Fatalf("unbounded: %d points, %d events", len(s.Series.Train), len(s.Events))
		}
	})
}

// BenchmarkObserveStep is what the coordinator spends on the dashboard
// per step: a step event and two workers' reports.
func BenchmarkObserveStep(b *testing.B) {
	r := NewRecorder()
	now := t0
	r.Observe(events.Event{Kind: events.EventStart, Time: now})
	b.ReportAllocs()
	for i := range b.N {
		now = now.Add(10 * time.Millisecond)
		s := int64(i + 1)
		r.Observe(events.Event{Kind: events.EventStep, Time: now, Step: s, Loss: 1, LR: 1e-3, TotalTokens: float64(s) * 512})
		r.Report("w1", s, 0.01, 0.002, 0.001, now)
		r.Report("w2", s, 0.01, 0.002, 0.001, now)
	}
}
