package planner

import (
	"slices"
	"testing"
	"time"
)

func newTestPlanner(t *testing.T, cfg Config, coordStep int64) *Planner {
	t.Helper()
	if cfg.LR == nil {
		cfg.LR = func(step int64, world int) float64 { return 0.1 * float64(world) }
	}
	p, err := New(cfg, coordStep, "coord:1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Unix(1000, 0)

func join(t *testing.T, p *Planner, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := p.Join(Member{ID: id, RingAddr: id + ":r", PeerAddr: id + ":p"}, t0); err != nil {
			t.Fatal(err)
		}
		// A worker's first report says what it holds: a fresh one, step 0.
		if err := p.Report(Report{ID: id, StateStep: 0}, t0); err != nil {
			t.Fatal(err)
		}
	}
}

// must returns the plan of id, failing if the worker would block.
func must(t *testing.T, p *Planner, id string) Plan {
	t.Helper()
	pl, ok := p.Next(id)
	if !ok {
		t.Fatalf("worker %s has no plan", id)
	}
	return pl
}

func report(t *testing.T, p *Planner, r Report) {
	t.Helper()
	if err := p.Report(r, t0); err != nil {
		t.Fatal(err)
	}
}

// ready walks every member of the forming generation to running.
func ready(t *testing.T, p *Planner, ids ...string) {
	t.Helper()
	for _, id := range ids {
		pl := must(t, p, id)
		if pl.Action != Ready && pl.Action != Sync {
			t.Fatalf("worker %s: %v, want ready or sync", id, pl.Action)
		}
		report(t, p, Report{ID: id, Generation: pl.Generation, StateStep: pl.Step, Ready: true})
	}
}

// runStep has every worker complete the step the ring runs.
func runStep(t *testing.T, p *Planner, ids ...string) {
	t.Helper()
	var step int64 = -1
	for _, id := range ids {
		pl := must(t, p, id)
		if pl.Action != Run {
			t.Fatalf("worker %s: %v (%s), want run", id, pl.Action, pl.Reason)
		}
		if step >= 0 && pl.Step != step {
			t.Fatalf("workers run different steps %d and %d", step, pl.Step)
		}
		step = pl.Step
	}
	for _, id := range ids {
		report(t, p, Report{ID: id, Generation: p.Generation(), StateStep: step + 1, Step: step, LossSum: 2, LossCount: 1})
	}
}

func TestPlannerFreshStartRunsSteps(t *testing.T) {
	p := newTestPlanner(t, Config{MinWorkers: 2, TotalSteps: 3}, -1)
	join(t, p, "a")
	if pl := must(t, p, "a"); pl.Action != Wait {
		t.Fatalf("one worker of min 2: %v, want wait", pl.Action)
	}
	join(t, p, "b")
	for _, id := range []string{"a", "b"} {
		report(t, p, Report{ID: id, StateStep: 0})
	}
	ready(t, p, "a", "b")
	pl := must(t, p, "b")
	if pl.Rank != 1 || len(pl.Members) != 2 || pl.Step != 0 || pl.LR != 0.2 {
		t.Fatalf("plan %+v", pl)
	}
	for i := 0; i < 3; i++ {
		runStep(t, p, "a", "b")
	}
	if pl := must(t, p, "a"); pl.Action != Stop {
		t.Fatalf("after 3 steps: %v, want stop", pl.Action)
	}
	if n := len(p.History()); n != 3 {
		t.Fatalf("%d steps recorded, want 3", n)
	}
	if c := p.TakeCheckpoints(); len(c) != 1 || c[0] != 3 {
		t.Fatalf("final checkpoint requests %v, want [3]", c)
	}
}

func TestPlannerWorkerDeathRegroupsAtLastStep(t *testing.T) {
	p := newTestPlanner(t, Config{MinWorkers: 1}, -1)
	join(t, p, "a", "b", "c")
	ready(t, p, "a", "b", "c")
	runStep(t, p, "a", "b", "c")
	runStep(t, p, "a", "b", "c")
	g := p.Generation()
	// c dies while step 2 runs; a and b report the failure.
	p.Leave("c", "", t0)
	for _, id := range []string{"a", "b"} {
		report(t, p, Report{ID: id, Generation: g, StateStep: 2, Failed: true, Step: 2, Err: "peer c"})
	}
	pl := must(t, p, "a")
	if pl.Generation != g+1 || pl.Step != 2 || len(pl.Members) != 2 || pl.Action != Ready {
		t.Fatalf("after the death: %+v", pl)
	}
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	h := p.History()
	for i, r := range h {
		if r.Step != int64(i) {
			t.Fatalf("history %+v: steps not consecutive", h)
		}
	}
}

func TestPlannerJoinerSyncsAtBoundary(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	join(t, p, "c")
	if pl := must(t, p, "c"); pl.Action != Wait {
		t.Fatalf("joiner mid-step: %v, want wait (spare until the boundary)", pl.Action)
	}
	runStep(t, p, "a", "b") // the boundary after step 1 forms the new generation
	pc := must(t, p, "c")
	if pc.Action != Sync || pc.Step != 2 || pc.SyncFrom.ID == "c" || pc.SyncFrom.ID == "" {
		t.Fatalf("joiner plan %+v, want sync of step 2 from a member", pc)
	}
	ready(t, p, "a", "b", "c")
	runStep(t, p, "a", "b", "c")
	if last := p.History()[len(p.History())-1]; last.World != 3 || last.Step != 2 {
		t.Fatalf("last step %+v", last)
	}
}

func TestPlannerPausesBelowMinimum(t *testing.T) {
	p := newTestPlanner(t, Config{MinWorkers: 2}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	p.Leave("b", "", t0)
	if pl := must(t, p, "a"); pl.Action != Wait {
		t.Fatalf("below minimum: %v, want wait", pl.Action)
	}
	join(t, p, "d")
	pl := must(t, p, "d")
	if pl.Action != Sync || pl.Step != 1 || pl.SyncFrom.ID != "a" {
		t.Fatalf("returning worker %+v, want sync of step 1 from a", pl)
	}
}

func TestPlannerResumesFromCoordinatorCheckpoint(t *testing.T) {
	p := newTestPlanner(t, Config{}, 40)
	join(t, p, "a")
	report(t, p, Report{ID: "a", StateStep: 0})
	pl := must(t, p, "a")
	if pl.Action != Sync || pl.Step != 40 || pl.SyncFrom.ID != CoordinatorID {
		t.Fatalf("plan %+v, want sync of step 40 from the coordinator", pl)
	}
	// A worker that kept a newer state wins over the checkpoint.
	p2 := newTestPlanner(t, Config{}, 40)
	join(t, p2, "a", "b")
	report(t, p2, Report{ID: "a", StateStep: 0})
	report(t, p2, Report{ID: "b", StateStep: 45})
	p2.form(t0)
	if pl := must(t, p2, "a"); pl.Action != Sync || pl.Step != 45 || pl.SyncFrom.ID != "b" {
		t.Fatalf("plan %+v, want sync of step 45 from b", pl)
	}
}

func TestPlannerReadyTimeoutDropsLaggard(t *testing.T) {
	p := newTestPlanner(t, Config{ReadyTimeout: time.Second}, -1)
	join(t, p, "a", "b")
	ready(t, p, "a")
	p.Tick(t0.Add(2 * time.Second))
	pl := must(t, p, "a")
	if len(pl.Members) != 1 {
		t.Fatalf("laggard still in the ring: %+v", pl)
	}
}

func TestPlannerCheckpointAndValidationFlags(t *testing.T) {
	p := newTestPlanner(t, Config{CheckpointEvery: 2, ValidateEvery: 2}, -1)
	join(t, p, "a")
	ready(t, p, "a")
	runStep(t, p, "a")
	runStep(t, p, "a")
	pl := must(t, p, "a")
	if !pl.Snapshot || !pl.Validate || pl.Step != 2 {
		t.Fatalf("step 2 plan %+v, want snapshot and validate", pl)
	}
	if c := p.TakeCheckpoints(); len(c) != 1 || c[0] != 2 {
		t.Fatalf("checkpoints %v", c)
	}
	report(t, p, Report{ID: "a", Generation: p.Generation(), StateStep: 3, Step: 2, ValSum: 6, ValCount: 3, LossCount: 1})
	if v, ok := p.Validation(2); !ok || v != 2 {
		t.Fatalf("validation %v %v, want 2", v, ok)
	}
}

func TestPlannerFailedSyncReforms(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	join(t, p, "a", "b")
	report(t, p, Report{ID: "a", StateStep: 7})
	report(t, p, Report{ID: "b", StateStep: 3})
	p.form(t0)
	pb := must(t, p, "b")
	if pb.Action != Sync || pb.Step != 7 || pb.SyncFrom.ID != "a" {
		t.Fatalf("plan %+v, want sync of step 7 from a", pb)
	}
	// b's sync fails: a new generation asks everyone again.
	g := p.Generation()
	report(t, p, Report{ID: "b", Generation: g, StateStep: 3, Failed: true, Err: "state of step 7 requested, holds step 5"})
	if p.Generation() == g {
		t.Fatal("a failed sync did not form a new generation")
	}
	pa := must(t, p, "a")
	if pa.Action != Ready || pa.Step != 7 {
		t.Fatalf("source plan %+v, want ready at 7", pa)
	}
	// a no longer holds 7: its Ready fails with what it holds, and the
	// next generation starts there, not at step 0.
	report(t, p, Report{ID: "a", Generation: p.Generation(), StateStep: 5, Failed: true, Err: "holds step 5"})
	// The second failure in a row backs off before the next generation.
	if pb = must(t, p, "b"); pb.Action != Wait {
		t.Fatalf("plan %+v after two failed generations, want wait (back-off)", pb)
	}
	p.Tick(t0.Add(backoffBase))
	pb = must(t, p, "b")
	if pb.Step != 5 || pb.SyncFrom.ID != "a" {
		t.Fatalf("plan %+v, want sync of step 5 from a", pb)
	}
}

// TestPlannerWaitsForStatesAfterRestart: a restarted coordinator with an
// older checkpoint must not roll back workers that hold a newer state.
func TestPlannerWaitsForStatesAfterRestart(t *testing.T) {
	p := newTestPlanner(t, Config{}, 685)
	for _, id := range []string{"a", "b"} {
		if err := p.Join(Member{ID: id, PeerAddr: id + ":p"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if pl := must(t, p, "a"); pl.Action != Wait {
		t.Fatalf("before any report: %v, want wait", pl.Action)
	}
	report(t, p, Report{ID: "a", StateStep: 688, StateCRC: 7})
	report(t, p, Report{ID: "b", StateStep: 688, StateCRC: 7})
	pl := must(t, p, "b")
	if pl.Step != 688 || pl.Action != Ready {
		t.Fatalf("plan %+v, want ready at step 688 (the workers' state, not the checkpoint's 685)", pl)
	}
}

// TestPlannerGenerationOnlyGrows: after a restart the planner jumps past
// any generation a worker has seen.
func TestPlannerGenerationOnlyGrows(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	join(t, p, "a")
	report(t, p, Report{ID: "a", Generation: 2021, StateStep: 9})
	if pl := must(t, p, "a"); pl.Generation <= 2021 {
		t.Fatalf("generation %d after a worker saw 2021", pl.Generation)
	}
}

// TestPlannerRestartWaitsForLastRing reproduces the soak failure: after a
// coordinator restart, a freshly restarted worker (no state) reported
// first and ran steps from the checkpoint while the others still held a
// newer state. The planner now waits for the last ring's members.
func TestPlannerRestartWaitsForLastRing(t *testing.T) {
	p := newTestPlanner(t, Config{RejoinGrace: 10 * time.Second}, 500)
	p.Expect([]string{"a", "b", "c"}, t0)
	for _, id := range []string{"a", "b", "c"} {
		if err := p.Join(Member{ID: id, PeerAddr: id + ":p"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	report(t, p, Report{ID: "a", StateStep: -1})
	if pl := must(t, p, "a"); pl.Action != Wait {
		t.Fatalf("with b and c not reported: %v, want wait", pl.Action)
	}
	report(t, p, Report{ID: "b", StateStep: 541, Generation: 7})
	if pl := must(t, p, "a"); pl.Action != Wait {
		t.Fatalf("with c not reported: %v, want wait", pl.Action)
	}
	report(t, p, Report{ID: "c", StateStep: 541, Generation: 7})
	pl := must(t, p, "a")
	if pl.Action != Sync || pl.Step != 541 || pl.SyncFrom.ID != "b" {
		t.Fatalf("plan %+v, want a sync of step 541 from b", pl)
	}
	ready(t, p, "a", "b", "c")
	runStep(t, p, "a", "b", "c")
	if h := p.History(); len(h) != 1 || h[0].Step != 541 {
		t.Fatalf("history %+v, want step 541", h)
	}
}

// TestPlannerRestartGraceEnds: a member of the last ring that never comes
// back holds training up for RejoinGrace at most, or until it is known to
// be gone.
func TestPlannerRestartGraceEnds(t *testing.T) {
	for _, gone := range []bool{false, true} {
		p := newTestPlanner(t, Config{RejoinGrace: 5 * time.Second}, 500)
		p.Expect([]string{"a", "b"}, t0)
		if err := p.Join(Member{ID: "a", PeerAddr: "a:p"}, t0); err != nil {
			t.Fatal(err)
		}
		report(t, p, Report{ID: "a", StateStep: 520})
		p.Tick(t0.Add(4 * time.Second))
		if pl := must(t, p, "a"); pl.Action != Wait {
			t.Fatalf("within the grace: %v, want wait", pl.Action)
		}
		if gone {
			p.Leave("b", "", t0.Add(4*time.Second))
		} else {
			p.Tick(t0.Add(5 * time.Second))
		}
		if pl := must(t, p, "a"); pl.Action != Ready || pl.Step != 520 {
			t.Fatalf("gone=%v: plan %+v, want ready at 520", gone, pl)
		}
	}
}

// TestPlannerNewerStateReforms: a worker that shows a newer state than the
// running ring's (it reported late) makes the planner start again from it
// rather than run the same steps twice.
func TestPlannerNewerStateReforms(t *testing.T) {
	p := newTestPlanner(t, Config{}, 500)
	if err := p.Join(Member{ID: "a", PeerAddr: "a:p"}, t0); err != nil {
		t.Fatal(err)
	}
	report(t, p, Report{ID: "a", StateStep: -1})
	ready(t, p, "a") // a syncs the checkpoint of step 500
	if err := p.Join(Member{ID: "b", PeerAddr: "b:p"}, t0); err != nil {
		t.Fatal(err)
	}
	report(t, p, Report{ID: "b", StateStep: 541, Generation: 3})
	pl := must(t, p, "a")
	if pl.Action != Sync || pl.Step != 541 || pl.SyncFrom.ID != "b" {
		t.Fatalf("plan %+v, want a sync of step 541 from b", pl)
	}
}

// TestPlannerIncarnations: a late departure notice of a replaced process
// does not remove its successor; the same process joining again keeps its
// place in the ring.
func TestPlannerIncarnations(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	for _, id := range []string{"a", "b"} {
		if err := p.Join(Member{ID: id, PeerAddr: id + ":p", Incarnation: id + "1"}, t0); err != nil {
			t.Fatal(err)
		}
		report(t, p, Report{ID: id, StateStep: 0})
	}
	ready(t, p, "a", "b")
	runStep(t, p, "a", "b")
	gen := p.Generation()
	// a joins again from the same process (say, after a coordinator
	// hiccup): nothing changes.
	if err := p.Join(Member{ID: "a", PeerAddr: "a:p", Incarnation: "a1"}, t0); err != nil {
		t.Fatal(err)
	}
	if p.Generation() != gen {
		t.Fatalf("the same process joining again broke generation %d", gen)
	}
	// b restarts: a new incarnation breaks the generation.
	if err := p.Join(Member{ID: "b", PeerAddr: "b:p2", Incarnation: "b2"}, t0); err != nil {
		t.Fatal(err)
	}
	// The old b's departure is noticed late: ignored.
	p.Leave("b", "b1", t0)
	if _, ok := p.workers["b"]; !ok {
		t.Fatal("a late departure of the replaced process removed its successor")
	}
	p.Leave("b", "b2", t0)
	if _, ok := p.workers["b"]; ok {
		t.Fatal("the departure of the current process was ignored")
	}
}

// TestPlannerForgetExpected: workers of the last ring that the gossip does
// not know are no longer awaited, one by one.
func TestPlannerForgetExpected(t *testing.T) {
	p := newTestPlanner(t, Config{RejoinGrace: time.Minute}, 100)
	p.Expect([]string{"a", "b", "c"}, t0)
	if err := p.Join(Member{ID: "a", PeerAddr: "a:p"}, t0); err != nil {
		t.Fatal(err)
	}
	report(t, p, Report{ID: "a", StateStep: 120})
	p.Forget("b", t0)
	if pl := must(t, p, "a"); pl.Action != Wait {
		t.Fatalf("with c still awaited: %v, want wait", pl.Action)
	}
	if got := p.Expected(); len(got) != 1 || got[0] != "c" {
		t.Fatalf("expected %v, want [c]", got)
	}
	p.Forget("c", t0)
	if pl := must(t, p, "a"); pl.Action != Ready || pl.Step != 120 {
		t.Fatalf("plan %+v, want ready at 120", pl)
	}
}

// TestPlannerSameStepOtherHistorySyncs: a worker holding the generation's
// start step but of another history (its checksum differs from the
// source's) fetches the state instead of joining with different weights.
func TestPlannerSameStepOtherHistorySyncs(t *testing.T) {
	p := newTestPlanner(t, Config{}, -1)
	for _, id := range []string{"a", "b", "c"} {
		if err := p.Join(Member{ID: id, PeerAddr: id + ":p"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	report(t, p, Report{ID: "a", StateStep: 510, StateCRC: 11})
	report(t, p, Report{ID: "b", StateStep: 510, StateCRC: 22}) // same step, other weights
	report(t, p, Report{ID: "c", StateStep: 510, StateCRC: 11})
	pa, pb, pc := must(t, p, "a"), must(t, p, "b"), must(t, p, "c")
	if pa.Action != Ready || pa.SyncFrom.ID != "" && pa.Action == Sync {
		t.Fatalf("source a: %+v, want ready", pa)
	}
	if pb.Action != Sync || pb.SyncFrom.ID != "a" {
		t.Fatalf("b with another history: %+v, want a sync from a", pb)
	}
	if pc.Action != Ready {
		t.Fatalf("c with the source's checksum: %+v, want ready", pc)
	}
}

// Every validation step is snapshotted when checkpoints are on, so the
// state each validation measured can be kept as the best checkpoint;
// with checkpoints off, none is.
func TestPlannerSnapshotsValidatedStates(t *testing.T) {
	for _, tt := range []struct {
		name      string
		ckpt, val int64
		wantCkpts []int64
	}{
		{"checkpoints between validations", 4, 10, []int64{4, 8, 10, 12, 16, 20}},
		{"validation a multiple", 5, 10, []int64{5, 10, 15, 20}},
		{"checkpoints off", 0, 10, nil},
		{"no validation", 7, 0, []int64{7, 14}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPlanner(t, Config{CheckpointEvery: tt.ckpt, ValidateEvery: tt.val}, -1)
			join(t, p, "a")
			ready(t, p, "a")
			var got []int64
			for range 21 { // the plans of steps 0-20
				pl := must(t, p, "a")
				taken := p.TakeCheckpoints()
				if pl.Snapshot != (len(taken) == 1 && taken[0] == pl.Step) {
					t.Fatalf("step %d: snapshot %v, checkpoints asked %v", pl.Step, pl.Snapshot, taken)
				}
				got = append(got, taken...)
				report(t, p, Report{ID: "a", Generation: p.Generation(), StateStep: pl.Step + 1, Step: pl.Step, LossSum: 2, LossCount: 1})
			}
			if !slices.Equal(got, tt.wantCkpts) {
				t.Fatalf("checkpoints at %v, want %v", got, tt.wantCkpts)
			}
		})
	}
}
