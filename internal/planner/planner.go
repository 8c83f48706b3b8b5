// Package cluster is Recur's distributed training: the coordinator's
// planner (a pure state machine), the coordinator and worker processes, and
// the state they exchange.
// Package planner is the coordinator's decisions as a pure state machine:
// from joins, departures, reports and the time the caller passes in, it
// decides what every worker does next (Plan), which steps complete
// (History), which checkpoints to take, when generations form and how the
// run ends (Outcome), and says what happened as typed events (Events). It
// does no I/O and reads no clock; the coordinator serialises calls.
package planner

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

// Action is what a worker does next.
type Action int

const (
	// Run the step in the generation.
	Run Action = iota
	// Sync fetches the generation's start state from a peer, then reports
	// ready.
	Sync
	// Ready reports that the worker already holds the start state.
	Ready
	// Wait means nothing to do yet; report again shortly.
	Wait
	// Stop ends training.
	Stop
)

var actionNames = [...]string{"run", "sync", "ready", "wait", "stop"}

// String names the action.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Member is one worker of the cluster, or the coordinator as a state
// source (CoordinatorID).
type Member struct {
	ID       string
	RingAddr string
	PeerAddr string
	// Incarnation tells processes with the same ID apart (random per
	// process; empty: unknown).
	Incarnation string
}

// CoordinatorID names the coordinator when it is the source of a state
// (a checkpoint newer than every worker's state).
const CoordinatorID = "coordinator"

// Plan tells one worker what to do.
type Plan struct {
	Action     Action
	Generation uint64
	Members    []Member // the ring, in rank order
	Rank       int
	Step       int64   // the step to run, or the state to hold (Sync/Ready)
	LR         float64 // learning rate of Step
	Validate   bool    // evaluate the state before running Step
	Snapshot   bool    // snapshot the state before running Step (checkpoint)
	SyncFrom   Member  // Sync: where to fetch the state
	Reason     string  // Wait/Stop: why
	Outcome    Outcome // Stop: how the run ended (Ongoing: this worker alone is stopped)
}

// Report is what a worker says when it asks for its next plan.
type Report struct {
	ID         string
	Generation uint64
	StateStep  int64 // updates applied to the worker's state; -1: none
	// StateCRC is a checksum of that state (0: unknown). Two states of the
	// same step may differ (a restarted coordinator re-ran steps from an
	// older checkpoint); a member is ready only with the source's state.
	StateCRC   uint32
	Failed     bool // the step it ran failed; StateStep is unchanged
	Err        string
	FailedPeer string // the id of the ring member the failure blames
	FailedOp   string // what failed with it: "dial", "accept", "send", ...
	Ready      bool   // after Sync/Ready: it holds StateStep and serves it
	// Skipped: the step ran but its update was skipped on every rank (a
	// non-finite loss or gradient); SkipReason says where.
	Skipped    bool
	SkipReason string
	Step       int64
	LossSum    float64
	LossCount  float64
	ValSum     float64
	ValCount   float64
}

// PlannerConfig sets the coordinator's policy.
type Config struct {
	MinWorkers int   // training pauses below this; default 1
	MaxWorkers int   // extra workers wait as spares; default unlimited
	TotalSteps int64 // stop when the state reaches it; 0: no limit
	// CheckpointEvery: snapshot every this many steps, and at every
	// validation step too (so that every validated state can be the best
	// checkpoint); 0: never.
	CheckpointEvery int64
	ValidateEvery   int64         // validate every this many steps; 0: never
	ReadyTimeout    time.Duration // a member that is not ready by then leaves the generation; default 30s
	// RejoinGrace is how long a restarted coordinator waits for the members
	// of the last ring to report the states they hold before it forms a
	// generation without them; default 10s.
	RejoinGrace time.Duration
	// StartWorkers is how many workers the first generation waits for
	// (local mode starts all of its workers before step 1); later ones
	// need only MinWorkers. Default MinWorkers.
	StartWorkers int
	// MaxSkips ends the run as Diverged after this many consecutive
	// skipped steps (non-finite loss or gradient); default 10, negative:
	// never.
	MaxSkips int
	// LR returns the learning rate of a step for a world size; required.
	LR func(step int64, world int) float64
}

func (c *Config) defaults() {
	if c.MinWorkers == 0 {
		c.MinWorkers = 1
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.RejoinGrace == 0 {
		c.RejoinGrace = 10 * time.Second
	}
	if c.MaxSkips == 0 {
		c.MaxSkips = 10
	}
}

// Validate reports an impossible policy.
func (c Config) Validate() error {
	c.defaults()
	switch {
	case c.MinWorkers < 1:
		return fmt.Errorf("cluster: min workers must be at least 1, got %d", c.MinWorkers)
	case c.StartWorkers < 0 || c.MaxWorkers != 0 && c.StartWorkers > c.MaxWorkers:
		return fmt.Errorf("cluster: start workers %d must be in [0, max workers %d]", c.StartWorkers, c.MaxWorkers)
	case c.MaxWorkers != 0 && c.MaxWorkers < c.MinWorkers:
		return fmt.Errorf("cluster: max workers %d is below min workers %d", c.MaxWorkers, c.MinWorkers)
	case c.TotalSteps < 0 || c.CheckpointEvery < 0 || c.ValidateEvery < 0:
		return errors.New("cluster: total steps, checkpoint and validation intervals must not be negative")
	case c.ReadyTimeout < 0 || c.RejoinGrace < 0:
		return errors.New("cluster: ready timeout and rejoin grace must not be negative")
	case c.LR == nil:
		return errors.New("cluster: no learning-rate schedule")
	}
	return nil
}

type phase int

const (
	waiting phase = iota // no generation: too few workers
	forming              // generation chosen, members syncing
	running
	done
)

type worker struct {
	Member
	reported  bool // it has said which state it holds
	order     int  // join order, the rank order of generations
	stateStep int64
	crc       uint32 // checksum of that state (0: unknown)
	gen       uint64 // generation of its last report
	ready     bool
	failed    bool
}

// StepRecord is the outcome of one completed step.
type StepRecord struct {
	Step       int64 // the step that ran (state Step+1 after it)
	Generation uint64
	World      int
	LR         float64
	Loss       float64 // mean loss of the global batch
	Skipped    bool    // the update was skipped (non-finite values)
}

// Outcome is how a run ended.
type Outcome int

const (
	// Ongoing: the run has not ended.
	Ongoing Outcome = iota
	// Finished: the step or time budget was reached (or the run was
	// already finished when the coordinator started).
	Finished
	// Diverged: MaxSkips consecutive steps had non-finite values.
	Diverged
	// Interrupted: an operator stopped the run before its budget; it
	// resumes from the final checkpoint.
	Interrupted
)

var outcomeNames = [...]string{"ongoing", "finished", "diverged", "interrupted"}

// String names the outcome.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Planner decides what every worker does, from joins, departures and
// reports. It does no I/O and reads no clock: callers pass the time. It is
// not safe for concurrent use; the coordinator serialises calls.
type Planner struct {
	cfg        Config
	workers    map[string]*worker
	joins      int
	phase      phase
	gen        uint64
	ring       []string // ids in rank order
	start      int64    // the state the generation starts from
	source     Member
	sourceCRC  uint32 // checksum of the source's state (0: unknown)
	next       int64  // running: the step the ring runs now
	deadline   time.Time
	coordStep  int64 // step of the coordinator's checkpoint; -1: none
	coordPeer  string
	checkpoint []int64 // steps whose snapshot the coordinator should fetch
	lastCkpt   int64
	val        map[int64]*valAgg
	history    []StepRecord
	events     []events.Event
	stopReason string
	stopAsked  string  // stop at the next step boundary, for this reason
	stopAs     Outcome // and with this outcome
	outcome    Outcome
	skips      int    // consecutive skipped steps
	lastSkip   string // why the last one was skipped
	// failStreak counts generations that failed without completing a
	// step; from the second on, forming the next one waits (holdUntil).
	failStreak int
	holdUntil  time.Time
	ended      endedRing // the running generation the current one replaced
	finalFrom  Member    // the worker the final checkpoint is taken from
	// dropped holds the incarnation of each worker dropped as unreachable:
	// that process may not join again (a restarted one may).
	dropped map[string]string
	// unreachable counts, per worker, generations in a row that failed
	// because a ring neighbour could not dial it, and the last one.
	unreachable map[string]dialFailures
	ran         bool // a generation has run: StartWorkers no longer applies
	// expect holds the members of the last ring before a coordinator
	// restart that have not reported yet; no generation forms before they
	// do, leave, or expectUntil passes.
	expect      map[string]bool
	expectUntil time.Time
}

type valAgg struct {
	sum, count float64
	from       map[string]bool
	world      int
}

// NewPlanner returns a planner; coordStep is the step of the newest
// checkpoint the coordinator holds and serves at coordPeer (-1: none).
func New(cfg Config, coordStep int64, coordPeer string) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	p := &Planner{cfg: cfg, workers: map[string]*worker{}, coordStep: coordStep, coordPeer: coordPeer,
		lastCkpt: coordStep, val: map[int64]*valAgg{}}
	if p.budgetSpent(coordStep) {
		p.end(Finished, fmt.Sprintf("already finished: the checkpoint is at step %d of %d", coordStep, cfg.TotalSteps))
	}
	return p, nil
}

// budgetSpent reports whether a state at step has used the step budget.
func (p *Planner) budgetSpent(step int64) bool {
	return p.cfg.TotalSteps > 0 && step >= p.cfg.TotalSteps
}

// end finishes the run with outcome o. A finished or interrupted run
// keeps the newest state anyone holds: a checkpoint of it is asked for
// (FinalSource says from whom). A diverged one keeps its last checkpoint.
func (p *Planner) end(o Outcome, reason string) {
	if o != Diverged {
		p.queueFinal()
	}
	p.phase, p.outcome, p.stopReason = done, o, reason
	p.ring = nil
	// The coordinator publishes the outcome itself once the final
	// checkpoint is saved; this is the moment it was decided.
	p.event(events.Event{Kind: events.EventInfo, Step: p.Step()}, fmt.Sprintf("training %s: %s", o, reason))
}

// queueFinal asks for a checkpoint of the newest state a worker reported,
// when it is newer than the last one taken.
func (p *Planner) queueFinal() {
	var src *worker
	for _, w := range p.workers {
		if w.reported && w.stateStep > p.lastCkpt && (src == nil || w.stateStep > src.stateStep || w.stateStep == src.stateStep && w.order < src.order) {
			src = w
		}
	}
	if src == nil {
		return
	}
	p.checkpoint = append(p.checkpoint, src.stateStep)
	p.lastCkpt = src.stateStep
	p.finalFrom = src.Member
}

// FinalSource returns the worker whose state the final checkpoint is
// taken from (false: none was asked for).
func (p *Planner) FinalSource() (Member, bool) { return p.finalFrom, p.finalFrom.ID != "" }

// Outcome returns how the run ended (Ongoing while it runs) and why.
func (p *Planner) Outcome() (Outcome, string) { return p.outcome, p.stopReason }

// Member returns the registered worker id (false: not a member).
func (p *Planner) Member(id string) (Member, bool) {
	w, ok := p.workers[id]
	if !ok {
		return Member{}, false
	}
	return w.Member, true
}

// Workers returns the ids of every registered worker, sorted.
func (p *Planner) Workers() []string {
	return slices.Sorted(maps.Keys(p.workers))
}

// Ring returns the ids of the current ring in rank order (nil between
// generations).
func (p *Planner) Ring() []string { return slices.Clone(p.ring) }

// InRing reports whether id is a member of the current ring.
func (p *Planner) InRing(id string) bool { return p.inRing(id) }

// Done reports whether the run has ended.
func (p *Planner) Done() bool { return p.phase == done }

// CheckpointsPending reports whether checkpoints were asked for that
// TakeCheckpoints has not returned yet.
func (p *Planner) CheckpointsPending() bool { return len(p.checkpoint) > 0 }

// Generation returns the current generation number.
func (p *Planner) Generation() uint64 { return p.gen }

// Members returns the current ring.
func (p *Planner) Members() []Member {
	out := make([]Member, 0, len(p.ring))
	for _, id := range p.ring {
		if w, ok := p.workers[id]; ok {
			out = append(out, w.Member)
		}
	}
	return out
}

// Step returns the step the ring runs now (or starts from).
func (p *Planner) Step() int64 {
	if p.phase == running {
		return p.next
	}
	return p.start
}

// SetCheckpoint records that the coordinator now holds and serves the
// checkpoint of step: if every worker loses its state, training goes on
// from there.
func (p *Planner) SetCheckpoint(step int64) {
	p.coordStep = max(p.coordStep, step)
}

// SetGeneration raises the generation counter (after a restart, so new
// generations never reuse an old number).
func (p *Planner) SetGeneration(g uint64) {
	p.gen = max(p.gen, g)
}

// Expect tells a restarted planner which workers formed the last ring
// before the restart: no generation forms until each of them has reported
// the state it holds (one of them may hold a newer state than every other
// worker and the checkpoint), has left, or RejoinGrace has passed.
func (p *Planner) Expect(ids []string, now time.Time) {
	p.expect = map[string]bool{}
	for _, id := range ids {
		if w, ok := p.workers[id]; !ok || !w.reported {
			p.expect[id] = true
		}
	}
	p.expectUntil = now.Add(p.cfg.RejoinGrace)
	if len(p.expect) == 0 {
		p.expect = nil
	}
}

// Forget stops waiting for id, a member of the last ring known to be gone
// (absent from the gossip membership, say); a generation forms once no
// other is awaited.
func (p *Planner) Forget(id string, now time.Time) {
	if !p.expect[id] {
		return
	}
	p.event(events.Event{Kind: events.EventInfo, Worker: id}, fmt.Sprintf("worker %s of the last ring is not in the cluster; not waiting for it", id))
	if p.expected(id) && p.phase == waiting {
		p.form(now)
	}
}

// awaiting reports whether members of the last ring are still expected.
func (p *Planner) awaiting(now time.Time) bool {
	return len(p.expect) > 0 && now.Before(p.expectUntil)
}

// expected removes id from the expected members; it returns true when that
// was the last one.
func (p *Planner) expected(id string) bool {
	if !p.expect[id] {
		return false
	}
	delete(p.expect, id)
	return len(p.expect) == 0
}

// Join registers a worker. A worker that joins again under the same id is a
// new member when it is another process (another incarnation); the same
// process joining again (after a coordinator restart) keeps its place.
func (p *Planner) Join(m Member, now time.Time) error {
	if m.ID == "" || m.ID == CoordinatorID {
		return fmt.Errorf("cluster: invalid worker id %q", m.ID)
	}
	if inc, ok := p.dropped[m.ID]; ok && (inc == "" || inc == m.Incarnation) {
		return fmt.Errorf("cluster: worker %s was dropped: its ring neighbours could not reach it; restart it with an address they can reach (--advertise, --ring-listen)", m.ID)
	}
	if w, ok := p.workers[m.ID]; ok && m.Incarnation != "" && w.Incarnation == m.Incarnation {
		w.Member = m
		return nil
	}
	if w, ok := p.workers[m.ID]; ok && p.inRing(m.ID) {
		// A restarted worker lost its state: the generation is broken.
		w.Member = m
		w.stateStep = -1
		p.event(events.Event{Kind: events.EventJoined, Worker: m.ID, Generation: p.gen}, fmt.Sprintf("worker %s rejoined; generation %d is broken", m.ID, p.gen))
		p.regroup(now)
		return nil
	}
	p.joins++
	p.workers[m.ID] = &worker{Member: m, order: p.joins, stateStep: -1}
	p.event(events.Event{Kind: events.EventJoined, Worker: m.ID}, fmt.Sprintf("worker %s joined", m.ID))
	return nil // it becomes a candidate once it reports the state it holds
}

// Leave removes a worker (dead, partitioned, or gone). If it was in the
// ring, the generation is over. A departure of another incarnation than the
// registered one (a late notice about a process that was replaced) is
// ignored; an empty incarnation matches any.
func (p *Planner) Leave(id, incarnation string, now time.Time) {
	if p.expect[id] {
		p.event(events.Event{Kind: events.EventLeft, Worker: id}, fmt.Sprintf("worker %s of the last ring is gone", id))
		if p.expected(id) && p.phase == waiting {
			p.form(now)
		}
	}
	w, ok := p.workers[id]
	if !ok {
		return
	}
	if incarnation != "" && w.Incarnation != "" && incarnation != w.Incarnation {
		p.event(events.Event{Kind: events.EventInfo, Worker: id}, fmt.Sprintf("departure of an earlier process of worker %s ignored", id))
		return
	}
	delete(p.workers, id)
	p.event(events.Event{Kind: events.EventLeft, Worker: id}, fmt.Sprintf("worker %s left", id))
	if p.inRing(id) {
		p.regroup(now)
	}
}

func (p *Planner) inRing(id string) bool { return slices.Contains(p.ring, id) }

// event records e with its text for people.
func (p *Planner) event(e events.Event, text string) {
	e.Message = text
	p.events = append(p.events, e)
}

// Events returns and clears what happened since the last call: the
// caller publishes them (status stream, logs).
func (p *Planner) Events() []events.Event {
	e := p.events
	p.events = nil
	return e
}

// History returns the completed steps in order.
func (p *Planner) History() []StepRecord { return p.history }

// TakeCheckpoints returns and clears the steps whose snapshots the
// coordinator should fetch (from Members()[0]).
func (p *Planner) TakeCheckpoints() []int64 {
	c := p.checkpoint
	p.checkpoint = nil
	return c
}

// Report records a worker's report. It returns an error for a worker the
// planner does not know (it must Join first).
func (p *Planner) Report(r Report, now time.Time) error {
	w, ok := p.workers[r.ID]
	if !ok {
		return fmt.Errorf("cluster: worker %q is not a member; join first", r.ID)
	}
	if r.Generation > p.gen {
		// A worker has seen a newer generation than this planner (a
		// restarted coordinator): generations must only grow, because ring
		// transports refuse older ones. Jump past it.
		p.gen = r.Generation
		if p.phase == forming || p.phase == running {
			p.form(now)
		}
	}
	w.gen = r.Generation
	w.stateStep, w.crc = r.StateStep, r.StateCRC
	if !w.reported {
		w.reported = true
		p.expected(r.ID)
		if p.phase == forming || p.phase == waiting && !p.awaiting(now) {
			p.form(now) // nothing runs yet: include it at once
		}
	}
	p.lateStep(r)
	if p.newer(r) {
		// The generation works on an older state than this worker holds
		// (a restarted coordinator formed it before this worker reported):
		// its steps would be run twice. Start again from the newest state.
		p.event(events.Event{Kind: events.EventInfo, Worker: r.ID, Step: r.StateStep}, fmt.Sprintf("worker %s holds step %d, newer than generation %d's step %d", r.ID, r.StateStep, p.gen, p.Step()))
		p.form(now)
	}
	if r.ValCount > 0 {
		p.addVal(r)
	}
	if r.Failed && p.dialFailed(r, now) {
		return nil // the unreachable member was dropped; the next generation forms
	}
	if r.Generation != p.gen || !p.inRing(r.ID) {
		return nil // a stale report: the worker will get the current plan
	}
	switch {
	case r.Failed && p.phase == forming:
		// A sync failed: the source may not hold the start state any more,
		// or not serve it yet. Form the generation anew: every member,
		// the source too, is asked again and reports what it really holds
		// (a source that lost the state fails its Ready and says so).
		p.event(events.Event{Kind: events.EventFailed, Worker: r.ID, Step: p.start, Generation: r.Generation}, fmt.Sprintf("worker %s: sync of step %d from %s failed in generation %d: %s", r.ID, p.start, p.source.ID, r.Generation, r.Err))
		p.failed(now)
	case r.Failed:
		w.failed = true
		p.event(events.Event{Kind: events.EventFailed, Worker: r.ID, Step: r.Step, Generation: r.Generation}, fmt.Sprintf("worker %s: step %d failed in generation %d: %s", r.ID, r.Step, r.Generation, r.Err))
		if p.phase == running {
			p.failed(now)
		}
	case p.phase == forming && r.Ready && r.StateStep == p.start:
		w.ready = true
		p.maybeStart()
	case p.phase == running && r.StateStep == p.next+1:
		p.advance(r, now)
	case p.phase == running && r.StateStep != p.next:
		p.event(events.Event{Kind: events.EventInfo, Worker: r.ID, Step: r.StateStep}, fmt.Sprintf("worker %s holds step %d while the ring runs %d", r.ID, r.StateStep, p.next))
		p.regroup(now)
	}
	return nil
}

// maxUnreachable is how many generations in a row may fail because a
// member's ring neighbour cannot dial it before that member is dropped:
// it advertises an address others cannot reach, and keeping it would
// fail every generation (and get its healthy neighbours blamed for not
// accepting).
const maxUnreachable = 2

// dialFailed counts a failure to dial the ring member r names; the second
// generation in a row that fails so drops that member. It reports whether
// it dropped one (and formed the next generation).
func (p *Planner) dialFailed(r Report, now time.Time) bool {
	peer, ok := p.workers[r.FailedPeer]
	if r.FailedOp != "dial" || !ok || r.FailedPeer == r.ID {
		return false
	}
	if p.unreachable == nil {
		p.unreachable = map[string]dialFailures{}
	}
	d := p.unreachable[r.FailedPeer]
	if r.Generation <= d.gen {
		return false // this generation's failure is counted already
	}
	d = dialFailures{n: d.n + 1, gen: r.Generation}
	p.unreachable[r.FailedPeer] = d
	n := d.n
	if n < maxUnreachable {
		return false
	}
	delete(p.unreachable, r.FailedPeer)
	delete(p.workers, r.FailedPeer)
	if p.dropped == nil {
		p.dropped = map[string]string{}
	}
	p.dropped[r.FailedPeer] = peer.Incarnation
	p.event(events.Event{Kind: events.EventLeft, Worker: r.FailedPeer, Generation: p.gen},
		fmt.Sprintf("worker %s dropped: its ring neighbour %s could not dial it at %s in %d generations in a row; check the address it advertises (--advertise)",
			r.FailedPeer, r.ID, peer.RingAddr, n))
	p.failed(now)
	return true
}

// dialFailures counts generations that failed dialling one worker.
type dialFailures struct {
	n   int
	gen uint64 // the last one counted
}

// endedRing is the running generation that a new one replaced, and the
// step it was running.
type endedRing struct {
	gen   uint64
	step  int64
	world int
}

// lateStep records the step an ended ring was running when a member
// reports it completed: the allreduce finished on every rank before the
// ring was ended (a member left just after it), so the step ran once and
// the next generation starts after it (newer). Without this the step
// would be trained but missing from the history and the status stream.
func (p *Planner) lateStep(r Report) {
	e := p.ended
	if e.gen == 0 || r.Generation != e.gen || r.Generation == p.gen || r.Failed || r.Step != e.step || r.StateStep != e.step+1 {
		return
	}
	if n := len(p.history); n > 0 && p.history[n-1].Step >= e.step {
		return
	}
	p.ended = endedRing{}
	rec := StepRecord{Step: e.step, Generation: e.gen, World: e.world, LR: p.cfg.LR(e.step, e.world), Skipped: r.Skipped}
	if r.LossCount > 0 {
		rec.Loss = r.LossSum / r.LossCount
	}
	p.history = append(p.history, rec)
	p.event(events.Event{Kind: events.EventInfo, Step: e.step, Generation: e.gen, Worker: r.ID},
		fmt.Sprintf("worker %s completed step %d of generation %d after the ring was ended", r.ID, e.step, e.gen))
}

// newer reports whether r shows a state newer than the one the current
// generation starts from (forming) or works on (running), other than the
// step the ring itself just completed.
func (p *Planner) newer(r Report) bool {
	switch p.phase {
	case forming:
		return r.StateStep > p.start
	case running:
		own := r.Generation == p.gen && p.inRing(r.ID)
		return !own && r.StateStep > p.next
	}
	return false
}

// addVal sums the validation shares of the state r.Step.
func (p *Planner) addVal(r Report) {
	a, ok := p.val[r.Step]
	if !ok {
		a = &valAgg{from: map[string]bool{}, world: len(p.ring)}
		p.val[r.Step] = a
	}
	if a.from[r.ID] {
		return
	}
	a.from[r.ID] = true
	a.sum += r.ValSum
	a.count += r.ValCount
}

// Validation returns the validation loss of the state at step when every
// member of the ring has reported its share.
func (p *Planner) Validation(step int64) (float64, bool) {
	a, ok := p.val[step]
	if !ok || len(a.from) < a.world || a.count == 0 {
		return 0, false
	}
	return a.sum / a.count, true
}

// snapshotDue reports whether the state before step p.next is to be
// checkpointed: every CheckpointEvery steps, and at every validation step
// when checkpoints are on, so that the state each validation measured can
// be kept as the best. Not twice for one step, and not while steps are
// being skipped (a diverging run keeps its last good checkpoint).
func (p *Planner) snapshotDue() bool {
	c, v, n := p.cfg.CheckpointEvery, p.cfg.ValidateEvery, p.next
	if c <= 0 || n <= 0 || n <= p.lastCkpt || p.skips != 0 {
		return false
	}
	return n%c == 0 || v > 0 && n%v == 0
}

// advance moves the ring past a completed step.
func (p *Planner) advance(r Report, now time.Time) {
	rec := StepRecord{Step: p.next, Generation: p.gen, World: len(p.ring), LR: p.cfg.LR(p.next, len(p.ring)), Skipped: r.Skipped}
	if r.LossCount > 0 {
		rec.Loss = r.LossSum / r.LossCount
	}
	p.history = append(p.history, rec)
	p.next++
	p.failStreak = 0
	p.unreachable = nil
	if r.Skipped {
		p.skips++
		p.lastSkip = r.SkipReason
		p.event(events.Event{Kind: events.EventInfo, Step: rec.Step}, fmt.Sprintf("step %d skipped on every rank (%d in a row): %s", rec.Step, p.skips, r.SkipReason))
	} else {
		p.skips = 0
	}
	if p.cfg.MaxSkips > 0 && p.skips >= p.cfg.MaxSkips {
		// No final checkpoint: the newest saved one is the last good state.
		p.end(Diverged, fmt.Sprintf("%d consecutive steps up to step %d had non-finite values; the last: %s", p.skips, rec.Step, p.lastSkip))
		return
	}
	if p.budgetSpent(p.next) || p.stopAsked != "" {
		o, reason := Finished, fmt.Sprintf("reached %d steps", p.cfg.TotalSteps)
		if p.stopAsked != "" && !p.budgetSpent(p.next) { // a reached budget wins over a stop
			o, reason = p.stopAs, p.stopAsked
		}
		p.end(o, reason)
		return
	}
	if p.changePending() {
		p.event(events.Event{Kind: events.EventInfo, Step: p.next}, fmt.Sprintf("membership changed at step %d", p.next))
		p.form(now)
	}
}

// changePending reports whether the ring should change at the next step
// boundary: a spare worker can join, or a member is gone.
func (p *Planner) changePending() bool {
	cands := p.candidates()
	if len(cands) != len(p.ring) {
		return true
	}
	for i, id := range cands {
		if p.ring[i] != id {
			return true
		}
	}
	return false
}

// candidates returns the workers of the next generation in join order:
// those that have reported the state they hold, so that a restarted
// coordinator starts from the newest state, not from an older checkpoint.
// Workers beyond MaxWorkers stay spares.
func (p *Planner) candidates() []string {
	ws := make([]*worker, 0, len(p.workers))
	for _, w := range p.workers {
		if w.reported { // after a restart, wait to learn what each holds
			ws = append(ws, w)
		}
	}
	slices.SortFunc(ws, func(a, b *worker) int { return a.order - b.order })
	var ids []string
	for _, w := range ws {
		if p.cfg.MaxWorkers > 0 && len(ids) == p.cfg.MaxWorkers {
			break
		}
		ids = append(ids, w.ID)
	}
	return ids
}

// regroup ends the running generation and forms a new one.
func (p *Planner) regroup(now time.Time) {
	if p.phase == done {
		return
	}
	p.form(now)
}

// Backoff bounds: the second generation in a row that fails before
// completing a step waits backoffBase, each further one twice as long, up
// to backoffMax. A single failure (a worker died) re-forms at once.
const (
	backoffBase = 250 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// failed ends the generation after a failure; generations that keep
// failing before they complete a step re-form ever more slowly.
func (p *Planner) failed(now time.Time) {
	if p.phase == done {
		return
	}
	p.failStreak++
	if p.failStreak >= 2 {
		d := backoffBase << min(p.failStreak-2, 10)
		p.holdUntil = now.Add(min(d, backoffMax))
	}
	p.form(now)
}

// form starts a new generation from the current workers, or waits.
func (p *Planner) form(now time.Time) {
	if p.phase == running {
		// Its members may still complete the step in flight (a member
		// left after the allreduce): lateStep records it.
		p.ended = endedRing{gen: p.gen, step: p.next, world: len(p.ring)}
	}
	if p.awaiting(now) {
		if p.phase != waiting {
			p.event(events.Event{Kind: events.EventWaiting}, fmt.Sprintf("waiting up to %v for the last ring's workers %v to report", p.expectUntil.Sub(now).Round(time.Second), p.Expected()))
		}
		p.phase = waiting
		p.ring = nil
		return
	}
	p.expect = nil
	if p.stopAsked != "" {
		// A stop was asked while the ring ran and the ring broke before
		// the step boundary: there is nothing left to wait for.
		p.end(p.stopAs, p.stopAsked)
		return
	}
	cands := p.candidates()
	if len(cands) < p.need() {
		if p.phase != waiting {
			p.event(events.Event{Kind: events.EventWaiting}, fmt.Sprintf("%d worker(s), below the minimum of %d: training paused", len(cands), p.need()))
		}
		p.phase = waiting
		p.ring = nil
		return
	}
	// Start from the newest state anyone holds, spares included (they
	// serve their state too).
	start, src, crc := p.coordStep, Member{ID: CoordinatorID, PeerAddr: p.coordPeer}, uint32(0)
	for _, w := range p.workers {
		if w.reported && (w.stateStep > start || w.stateStep == start && src.ID != CoordinatorID && w.order < p.workers[src.ID].order) {
			start, src, crc = w.stateStep, w.Member, w.crc
		}
	}
	if start < 0 {
		start, src = 0, Member{}
	}
	if p.budgetSpent(start) {
		p.end(Finished, fmt.Sprintf("already finished: a state of step %d of %d exists", start, p.cfg.TotalSteps))
		return
	}
	if !now.Before(p.holdUntil) {
		p.holdUntil = time.Time{}
	} else {
		if p.phase != waiting {
			p.event(events.Event{Kind: events.EventWaiting}, fmt.Sprintf("%d generations in a row failed before completing a step; forming the next in %v", p.failStreak, p.holdUntil.Sub(now).Round(time.Millisecond)))
		}
		p.phase = waiting
		p.ring = nil
		return
	}
	p.gen++
	p.ring = cands
	p.start = start
	p.source, p.sourceCRC = src, crc
	p.phase = forming
	p.deadline = now.Add(p.cfg.ReadyTimeout)
	for _, id := range cands {
		w := p.workers[id]
		w.ready, w.failed = false, false
	}
	p.event(events.Event{Kind: events.EventGeneration, Generation: p.gen, Members: len(cands), Step: start}, fmt.Sprintf("generation %d: %d worker(s) %v from step %d", p.gen, len(cands), cands, start))
}

// holdsStart reports whether worker id already holds the state the forming
// generation starts from: it is the source, or there is no source (a fresh
// start), or it holds the same step with the source's checksum. A state of
// the same step but of another history (or of unknown checksum, against
// the coordinator's checkpoint) is fetched again.
func (p *Planner) holdsStart(id string, w *worker) bool {
	switch {
	case p.source.ID == "" || id == p.source.ID:
		return true
	case w.stateStep != p.start:
		return false
	}
	return p.sourceCRC != 0 && w.crc == p.sourceCRC
}

// maybeStart moves a formed generation to running once all are ready.
func (p *Planner) maybeStart() {
	for _, id := range p.ring {
		if !p.workers[id].ready {
			return
		}
	}
	p.phase = running
	p.ran = true
	p.next = p.start
	p.event(events.Event{Kind: events.EventRunning, Generation: p.gen, Members: len(p.ring), Step: p.next}, fmt.Sprintf("generation %d running at step %d", p.gen, p.next))
}

// RequestStop ends training at the next step boundary with outcome o (a
// time budget: Finished; an operator's signal: Interrupted), with a final
// checkpoint. When no generation is running there is no step boundary to
// wait for: the run ends at once.
func (p *Planner) RequestStop(o Outcome, reason string) {
	if p.phase == done {
		return
	}
	if p.stopAsked == "" {
		p.stopAsked, p.stopAs = reason, o
	}
	if p.phase != running {
		p.end(o, reason)
	}
}

// need is the number of workers a generation needs now.
func (p *Planner) need() int {
	if !p.ran {
		return max(p.cfg.MinWorkers, p.cfg.StartWorkers)
	}
	return p.cfg.MinWorkers
}

// WaitReason says what the planner waits for before it can form a
// generation ("" when it is not waiting), for the periodic Warn line.
func (p *Planner) WaitReason() string {
	if p.phase != waiting {
		return ""
	}
	switch {
	case !p.holdUntil.IsZero():
		return fmt.Sprintf("%d generations failed in a row; backing off", p.failStreak)
	case len(p.expect) > 0:
		return fmt.Sprintf("waiting for the last ring's workers %v to report", p.Expected())
	}
	n := 0
	for _, w := range p.workers {
		if w.reported {
			n++
		}
	}
	key := "cluster.min_workers"
	if !p.ran && p.cfg.StartWorkers > p.cfg.MinWorkers {
		key = "the start's worker count"
	}
	return fmt.Sprintf("%d worker(s) ready, waiting for %d (%s)", n, p.need(), key)
}

// Expected returns the members of the last ring still awaited, sorted.
func (p *Planner) Expected() []string {
	ids := make([]string, 0, len(p.expect))
	for id := range p.expect {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Tick applies deadlines: members not ready in time leave the generation,
// and a restarted coordinator stops waiting for the last ring's members
// after RejoinGrace.
func (p *Planner) Tick(now time.Time) {
	if p.phase == waiting && len(p.expect) > 0 && !now.Before(p.expectUntil) {
		p.event(events.Event{Kind: events.EventInfo}, fmt.Sprintf("workers %v of the last ring did not report within %v", p.Expected(), p.cfg.RejoinGrace))
		p.expect = nil
		p.form(now)
		return
	}
	if p.phase == waiting && !p.holdUntil.IsZero() && !now.Before(p.holdUntil) && !p.awaiting(now) {
		p.holdUntil = time.Time{}
		p.form(now)
		return
	}
	if p.phase != forming || now.Before(p.deadline) {
		return
	}
	var late []string
	for _, id := range p.ring {
		if !p.workers[id].ready {
			late = append(late, id)
		}
	}
	for _, id := range late {
		p.event(events.Event{Kind: events.EventLeft, Worker: id, Generation: p.gen}, fmt.Sprintf("worker %s was not ready in %v; it leaves generation %d", id, p.cfg.ReadyTimeout, p.gen))
		delete(p.workers, id)
	}
	p.form(now)
}

// Next returns the plan of worker id, or false when the worker must wait for
// something to change (call again after the next Report, Join, Leave or
// Tick).
func (p *Planner) Next(id string) (Plan, bool) {
	w, ok := p.workers[id]
	if !ok {
		return Plan{Action: Stop, Reason: "not a member of the cluster"}, true
	}
	switch p.phase {
	case done:
		return Plan{Action: Stop, Generation: p.gen, Step: p.next, Reason: p.stopReason, Outcome: p.outcome}, true
	case waiting:
		return Plan{Action: Wait, Reason: p.WaitReason()}, true
	}
	rank := slices.Index(p.ring, id)
	if rank < 0 {
		return Plan{Action: Wait, Generation: p.gen, Reason: "spare worker: the ring is full"}, true
	}
	base := Plan{Generation: p.gen, Members: p.Members(), Rank: rank}
	switch p.phase {
	case forming:
		if w.gen == p.gen && w.ready {
			return Plan{}, false // wait for the others
		}
		base.Step = p.start
		if p.holdsStart(id, w) {
			base.Action = Ready
		} else {
			base.Action, base.SyncFrom = Sync, p.source
		}
		return base, true
	case running:
		if w.gen != p.gen || w.stateStep != p.next {
			return Plan{}, false
		}
		base.Action, base.Step = Run, p.next
		base.LR = p.cfg.LR(p.next, len(p.ring))
		if e := p.cfg.ValidateEvery; e > 0 && p.next%e == 0 && p.next > 0 {
			base.Validate = true
		}
		if p.snapshotDue() {
			p.checkpoint = append(p.checkpoint, p.next)
			p.lastCkpt = p.next
		}
		base.Snapshot = p.next == p.lastCkpt
		return base, true
	}
	return Plan{}, false
}
