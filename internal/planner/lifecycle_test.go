package planner

import (
	"strings"
	"testing"
	"time"
)

// A run whose checkpoint already reached the step budget trains no
// further step (rerunning `recur train --steps 3` used to end at 4, 5, ...).
func TestPlannerFinishedRunDoesNotTrainAgain(t *testing.T) {
	p := newTestPlanner(t, Config{TotalSteps: 3}, 3)
	if o, reason := p.Outcome(); o != Finished || !strings.Contains(reason, "already finished") {
		t.Fatalf("outcome %v (%s), want finished at start", o, reason)
	}
	join(t, p, "a")
	if pl := must(t, p, "a"); pl.Action != Stop {
		t.Fatalf("plan %+v, want stop", pl)
	}
	if c := p.TakeCheckpoints(); len(c) != 0 {
		t.Fatalf("checkpoints %v asked of a finished run", c)
	}

	// No checkpoint, but a worker holds the final state: no step either.
	p = newTestPlanner(t, Config{TotalSteps: 3}, -1)
	if err := p.Join(Member{ID: "a"}, t0); err != nil {
		t.Fatal(err)
	}
	report(t, p, Report{ID: "a", StateStep: 3})
	if o, _ := p.Outcome(); o != Finished {
		t.Fatalf("outcome %v, want finished", o)
	}
	if pl := must(t, p, "a"); pl.Action != Stop {
		t.Fatalf("plan %+v, want stop", pl)
	}
}

// skipStep has every worker complete the running step with its update
// skipped (non-finite values).
func skipStep(t *testing.T, p *Planner, ids ...string) {
	t.Helper()
	step := must(t, p, ids[0]).Step
	for _, id := range ids {
		report(t, p, Report{ID: id, Generation: p.Generation(), StateStep: step + 1, Step: step, Skipped: true,
			SkipReason: `optim: non-finite gradient: parameter "rnn.weight_hh_l0", element 3 is NaN`})
	}
}

// A run whose steps keep being skipped ends as diverged instead of
// re-forming generations forever; a good step in between resets the count.
func TestPlannerDivergesAfterConsecutiveSkips(t *testing.T) {
	p := newTestPlanner(t, Config{MaxSkips: 3, CheckpointEvery: 100}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a", "b")
	skipStep(t, p, "a", "b")
	skipStep(t, p, "a", "b")
	runStep(t, p, "a", "b")
	gen := p.Generation()
	skipStep(t, p, "a", "b")
	skipStep(t, p, "a", "b")
	if o, _ := p.Outcome(); o != Ongoing || p.Generation() != gen {
		t.Fatalf("outcome %v, generation %d after 2 skips in a row, want ongoing in generation %d", o, p.Generation(), gen)
	}
	skipStep(t, p, "a", "b")
	o, reason := p.Outcome()
	if o != Diverged || !strings.Contains(reason, "3 consecutive steps up to step 5") || !strings.Contains(reason, "rnn.weight_hh_l0") {
		t.Fatalf("outcome %v (%s), want diverged at step 5 naming the parameter", o, reason)
	}
	if pl := must(t, p, "a"); pl.Action != Stop {
		t.Fatalf("plan %+v, want stop", pl)
	}
	if c := p.TakeCheckpoints(); len(c) != 0 {
		t.Fatalf("a diverged state was checkpointed at %v", c)
	}
	h := p.History()
	if len(h) != 6 || !h[5].Skipped || h[2].Skipped {
		t.Fatalf("history %+v, want 6 steps with the skips marked", h)
	}
}

// Generations that keep failing before completing a step re-form ever
// more slowly (a livelock re-formed 1,808 generations in 20 s); the first
// failure re-forms at once, and a completed step resets the back-off.
func TestPlannerBacksOffRepeatedFailures(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a", "b")
	now := t0
	fail := func() {
		t.Helper()
		step := must(t, p, "a").Step
		if err := p.Report(Report{ID: "a", Generation: p.Generation(), StateStep: step, Step: step, Failed: true, Err: "boom"}, now); err != nil {
			t.Fatal(err)
		}
	}
	fail()
	if pl := must(t, p, "a"); pl.Action != Ready {
		t.Fatalf("plan %+v after one failure, want ready at once", pl)
	}
	var waits []time.Duration
	for range 4 {
		ready(t, p, "a", "b")
		fail()
		if pl := must(t, p, "a"); pl.Action != Wait || !strings.Contains(pl.Reason, "backing off") {
			t.Fatalf("plan %+v after repeated failures, want a back-off wait", pl)
		}
		if r := p.WaitReason(); !strings.Contains(r, "backing off") {
			t.Fatalf("wait reason %q", r)
		}
		d := p.holdUntil.Sub(now)
		waits = append(waits, d)
		p.Tick(now.Add(d - time.Millisecond))
		if pl := must(t, p, "a"); pl.Action != Wait {
			t.Fatalf("plan %+v before the back-off ended", pl)
		}
		now = now.Add(d)
		p.Tick(now)
		if pl := must(t, p, "a"); pl.Action != Ready {
			t.Fatalf("plan %+v after the back-off, want ready", pl)
		}
	}
	for i, d := range waits {
		if want := backoffBase << i; d != want {
			t.Fatalf("back-offs %v, want doubling from %v", waits, backoffBase)
		}
	}
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	fail()
	if pl := must(t, p, "a"); pl.Action != Ready {
		t.Fatalf("plan %+v after a completed step and one failure, want ready at once", pl)
	}
}

// An operator's stop ends the run at the next step boundary with a final
// checkpoint of that step and the Interrupted outcome; with no ring
// running it ends at once; a ring that breaks after the request ends it.
func TestPlannerStopRequest(t *testing.T) {
	p := newTestPlanner(t, Config{TotalSteps: 100}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	p.RequestStop(Interrupted, "interrupted by a signal")
	if pl := must(t, p, "a"); pl.Action != Run || pl.Step != 1 {
		t.Fatalf("plan %+v, want the step in flight to run", pl)
	}
	runStep(t, p, "a", "b")
	if o, reason := p.Outcome(); o != Interrupted || reason != "interrupted by a signal" {
		t.Fatalf("outcome %v (%s), want interrupted", o, reason)
	}
	if c := p.TakeCheckpoints(); len(c) != 1 || c[0] != 2 {
		t.Fatalf("checkpoints %v, want the final one at step 2", c)
	}

	p = newTestPlanner(t, Config{MinWorkers: 2}, -1)
	join(t, p, "a")
	p.RequestStop(Interrupted, "signal")
	if o, _ := p.Outcome(); o != Interrupted {
		t.Fatalf("outcome %v while waiting for workers, want interrupted at once", o)
	}

	p = newTestPlanner(t, Config{}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a", "b")
	p.RequestStop(Interrupted, "signal")
	p.Leave("b", "", t0)
	if o, _ := p.Outcome(); o != Interrupted {
		t.Fatalf("outcome %v after the ring broke, want interrupted", o)
	}
}

// Local mode's first step waits for all its workers; later generations
// need only the minimum.
func TestPlannerStartWorkers(t *testing.T) {
	p := newTestPlanner(t, Config{StartWorkers: 3}, -1)
	join(t, p, "a", "b")
	if pl := must(t, p, "a"); pl.Action != Wait || !strings.Contains(pl.Reason, "waiting for 3") {
		t.Fatalf("plan %+v with 2 of 3 start workers, want wait", pl)
	}
	join(t, p, "c")
	ready(t, p, "a", "b", "c")
	runStep(t, p, "a", "b", "c")
	p.Leave("c", "", t0)
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
}

// A member leaves just after the allreduce of a step: the others complete
// it and report after the ring was ended. The step ran once; it is
// recorded once, and the next generation starts after it.
func TestPlannerRecordsAStepCompletedAfterTheRingEnded(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	join(t, p, "a", "b", "c")
	ready(t, p, "a", "b", "c")
	runStep(t, p, "a", "b", "c")
	old := p.Generation()
	p.Leave("c", "", t0) // mid-step 1, after its allreduce
	for _, id := range []string{"a", "b"} {
		report(t, p, Report{ID: id, Generation: old, StateStep: 2, Step: 1, LossSum: 3, LossCount: 1})
	}
	h := p.History()
	if len(h) != 2 || h[1].Step != 1 || h[1].Generation != old || h[1].Loss != 3 {
		t.Fatalf("history %+v, want step 1 of generation %d recorded once", h, old)
	}
	if pl := must(t, p, "a"); pl.Step != 2 {
		t.Fatalf("plan %+v, want the next generation to start at step 2", pl)
	}
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	for i, r := range p.History() {
		if r.Step != int64(i) {
			t.Fatalf("history %+v: entry %d is step %d", p.History(), i, r.Step)
		}
	}
}

// A worker whose ring neighbour cannot dial it (an address others cannot
// reach) is dropped after two generations in a row fail so; the healthy
// neighbour it blames for not accepting stays.
func TestPlannerDropsAnUnreachableWorker(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	join(t, p, "a", "b", "c")
	now := t0
	for round := range 2 {
		ready(t, p, "a", "b", "c")
		g := p.Generation()
		// b dials c and fails; c, which nobody reaches, blames b for not
		// connecting.
		if err := p.Report(Report{ID: "c", Generation: g, StateStep: 0, Step: 0, Failed: true, Err: "accept timeout", FailedPeer: "b", FailedOp: "accept"}, now); err != nil {
			t.Fatal(err)
		}
		// b's report comes after c's ended the generation: it is stale,
		// and still counts against c.
		if err := p.Report(Report{ID: "b", Generation: g, StateStep: 0, Step: 0, Failed: true, Err: "dial c: i/o timeout", FailedPeer: "c", FailedOp: "dial"}, now); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if _, ok := p.Member("c"); !ok {
				t.Fatal("c dropped after one failed dial")
			}
			now = now.Add(time.Second) // past the back-off, before the ready timeout
			p.Tick(now)
		}
	}
	if _, ok := p.Member("c"); ok {
		t.Fatal("c, unreachable twice, is still a member")
	}
	// The same process may not join again (it would break every
	// generation); a restarted one may.
	if err := p.Join(Member{ID: "c", RingAddr: "c:r", PeerAddr: "c:p"}, now); err == nil || !strings.Contains(err.Error(), "could not reach it") {
		t.Fatalf("the dropped worker joined again: %v", err)
	}
	now = now.Add(time.Second)
	p.Tick(now)
	if ring := p.Ring(); len(ring) != 2 || ring[0] != "a" || ring[1] != "b" {
		t.Fatalf("ring %v, want [a b]", ring)
	}
}

// A stop asked during the last step does not turn a finished run into an
// interrupted one.
func TestPlannerBudgetWinsOverAStop(t *testing.T) {
	p := newTestPlanner(t, Config{TotalSteps: 2}, -1)
	join(t, p, "a")
	ready(t, p, "a")
	runStep(t, p, "a")
	p.RequestStop(Interrupted, "signal")
	runStep(t, p, "a")
	if o, _ := p.Outcome(); o != Finished {
		t.Fatalf("outcome %v, want finished: the budget was reached", o)
	}
}

// A stop while a generation forms (a member just left) still checkpoints
// the newest state a worker holds, from that worker.
func TestPlannerStopBetweenGenerationsKeepsTheNewestState(t *testing.T) {
	p := newTestPlanner(t, Config{CheckpointEvery: 5}, -1)
	join(t, p, "a", "b", "c")
	ready(t, p, "a", "b", "c")
	for range 7 {
		runStep(t, p, "a", "b", "c")
	}
	p.TakeCheckpoints() // the one at 5
	p.Leave("c", "", t0)
	p.RequestStop(Interrupted, "signal")
	if o, _ := p.Outcome(); o != Interrupted {
		t.Fatalf("outcome %v", o)
	}
	if c := p.TakeCheckpoints(); len(c) != 1 || c[0] != 7 {
		t.Fatalf("checkpoints %v, want the newest state, step 7", c)
	}
	if m, ok := p.FinalSource(); !ok || (m.ID != "a" && m.ID != "b") {
		t.Fatalf("final checkpoint from %+v, want a worker holding step 7", m)
	}
}
