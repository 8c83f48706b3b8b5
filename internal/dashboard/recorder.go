package dashboard

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

// MaxPoints bounds the points of each curve of a Status: a curve that
// reaches it merges its points in pairs, so once it has held MaxPoints/2
// points it never holds fewer.
const MaxPoints = 400

// Bounds of what a Recorder keeps, and so of a Status: none grows with
// the run's length.
const (
	maxGenerations = 20
	maxCheckpoints = 20
	maxLines       = 30
	maxMembers     = 256  // members listed in a Status
	maxReports     = 1024 // workers whose step reports are kept
	maxRate        = 128  // step samples kept for the throughput
	// rateWindow is the wall time over which tokens/s, steps/s and the
	// ETA are measured (as recur train's progress line does).
	rateWindow = 20 * time.Second
	// rateGap spaces the samples of the rate window.
	rateGap = 250 * time.Millisecond
	// tpsInterval is the least wall time one point of the tokens/s
	// curve covers: a step time alone is too noisy to draw.
	tpsInterval = time.Second
	// reportWeight is the weight of a new report in the moving averages
	// of a worker's step, ring and wait times.
	reportWeight = 0.2
)

// Recorder folds a run's status events (and the workers' step reports)
// into what the dashboard shows, in bounded memory: a pure state machine
// with no I/O and no clock of its own (every time comes from an event or
// the caller). It is not safe for concurrent use: the coordinator calls it
// under its own lock.
type Recorder struct {
	state, message, job string
	processes           int
	totalSteps          int64
	minutes             float64
	last                events.Event // the newest event (its time and the run's elapsed time)
	lastStep            events.Event
	val                 events.Event
	hasVal              bool
	generation          uint64
	world               int
	workers             map[string]bool // joined and not left, in this coordinator process

	train, valCurve, lr, tps series
	rate                     []events.Event // step samples of the last rateWindow
	tpsFrom                  events.Event   // where the open tokens/s sample starts
	hasTpsFrom               bool

	gens         []Generation
	gensTotal    int
	ckpts        []Checkpoint
	ckptsTotal   int
	ckptFailures int
	lines        []Line
	reports      map[string]*report
}

// report is what a worker's step reports said, smoothed.
type report struct {
	step, steps         int64
	stepS, ringS, waitS float64
	at                  time.Time
}

// NewRecorder returns a Recorder of a run with no events yet.
func NewRecorder() *Recorder {
	return &Recorder{workers: map[string]bool{}, reports: map[string]*report{},
		train: newSeries(MaxPoints), valCurve: newSeries(MaxPoints), lr: newSeries(MaxPoints), tps: newSeries(MaxPoints)}
}

// Observe takes the run's next status event (stamped: with its time and
// the run's elapsed time). Feeding it the run's history (metrics.jsonl)
// first gives the curves of the whole run.
func (r *Recorder) Observe(e events.Event) {
	r.last = e
	switch e.Kind {
	case events.EventStart:
		r.state, r.message, r.job = "starting", e.Message, e.Job
		r.processes++
		r.totalSteps, r.minutes = e.TotalSteps, e.Minutes
		clear(r.workers)
		r.resetRates() // the wall time between processes is no training
	case events.EventWaiting:
		r.state, r.message = "waiting", e.Message
	case events.EventGeneration:
		r.state, r.message = "forming", ""
		r.generation, r.world = e.Generation, e.Members
		r.gens = appendBounded(r.gens, Generation{Generation: e.Generation, Step: e.Step, Members: e.Members, Time: e.Time}, maxGenerations)
		r.gensTotal++
	case events.EventRunning:
		r.state, r.message = "running", ""
	case events.EventStep:
		r.step(e)
	case events.EventValidation:
		r.val, r.hasVal = e, true
		r.valCurve.add(e.Step, e.ValLoss, 1)
	case events.EventCheckpoint:
		r.ckpts = appendBounded(r.ckpts, Checkpoint{Step: e.Step, Time: e.Time}, maxCheckpoints)
		r.ckptsTotal++
	case events.EventCheckpointFailed:
		r.ckptFailures++
	case events.EventJoined:
		r.workers[e.Worker] = true
	case events.EventLeft:
		delete(r.workers, e.Worker)
		delete(r.reports, e.Worker)
	}
	if e.Kind.Ends() {
		r.state, r.message = string(e.Kind), e.Message
	}
	switch e.Kind {
	case events.EventStep, events.EventValidation, events.EventCheckpoint, events.EventRunning:
	default:
		r.lines = appendBounded(r.lines, Line{Time: e.Time, Kind: string(e.Kind), Step: e.Step, Text: e.String()}, maxLines)
	}
}

// step takes a step event.
func (r *Recorder) step(e events.Event) {
	if r.lastStep.Kind != "" && e.Step <= r.lastStep.Step {
		// A run resumed from an older state repeats steps: the curves
		// show the steps as they are now.
		r.train.truncate(e.Step)
		r.lr.truncate(e.Step)
		r.tps.truncate(e.Step)
		r.valCurve.truncate(e.Step)
		r.resetRates()
	}
	if !ended(r.state) {
		r.state, r.message = "running", ""
	}
	r.lastStep = e
	r.generation, r.world = max(r.generation, e.Generation), e.Members
	if !e.Skipped {
		r.train.add(e.Step, e.Loss, 1)
	}
	r.lr.add(e.Step, e.LR, 1)

	n := len(r.rate)
	if n >= 2 && e.Time.Sub(r.rate[n-2].Time) < rateGap {
		r.rate[n-1] = e
	} else {
		r.rate = append(r.rate, e)
	}
	for len(r.rate) > 2 && (e.Time.Sub(r.rate[1].Time) > rateWindow || len(r.rate) > maxRate) {
		r.rate = r.rate[1:]
	}

	if !r.hasTpsFrom {
		r.tpsFrom, r.hasTpsFrom = e, true
		return
	}
	if dt := e.Time.Sub(r.tpsFrom.Time); dt >= tpsInterval {
		r.tps.add(e.Step, (e.TotalTokens-r.tpsFrom.TotalTokens)/dt.Seconds(), dt.Seconds())
		r.tpsFrom = e
	}
}

func (r *Recorder) resetRates() {
	r.rate = r.rate[:0]
	r.hasTpsFrom = false
}

// Report takes a worker's step report: the steps completed after it, its wall time
// (compute and allreduce), the allreduce's part and the time it was
// blocked on the coordinator before it, at time now.
func (r *Recorder) Report(id string, step int64, stepSeconds, allreduceSeconds, waitSeconds float64, now time.Time) {
	w, ok := r.reports[id]
	if !ok {
		if len(r.reports) >= maxReports {
			return
		}
		w = &report{stepS: stepSeconds, ringS: allreduceSeconds, waitS: waitSeconds}
		r.reports[id] = w
	}
	ema := func(avg *float64, x float64) {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			*avg += reportWeight * (x - *avg)
		}
	}
	ema(&w.stepS, stepSeconds)
	ema(&w.ringS, allreduceSeconds)
	ema(&w.waitS, waitSeconds)
	w.step, w.at = step, now
	w.steps++
}

// Live is what the coordinator knows now beside the status stream.
type Live struct {
	Now     time.Time
	Ring    []string // the current ring's members, in rank order
	Workers []string // every worker the coordinator knows
	Waiting string   // what it waits for ("" when nothing)
	Task    string   // the job's task kind
}

// Status is the dashboard's view of the run at l.Now.
func (r *Recorder) Status(l Live) Status {
	s := Status{Version: FormatVersion, Time: l.Now, State: cmp.Or(r.state, "starting"), Message: r.message, Job: r.job, Task: l.Task,
		Processes: r.processes, Step: r.lastStep.Step, TotalSteps: r.totalSteps, Minutes: r.minutes, Elapsed: r.last.Elapsed,
		TotalTokens: r.lastStep.TotalTokens, LR: r.lastStep.LR, Loss: r.lastStep.Loss, Generation: r.generation, World: r.world,
		Workers: len(r.workers), Members: r.members(l),
		Series:      Series{Train: r.train.points(), Val: r.valCurve.points(), LR: r.lr.points(), TokensPerSecond: r.tps.points()},
		Generations: slices.Clone(r.gens), GenerationsTotal: r.gensTotal,
		Checkpoints: slices.Clone(r.ckpts), CheckpointsTotal: r.ckptsTotal, CheckpointFailures: r.ckptFailures,
		Events: slices.Clone(r.lines)}
	if s.TotalSteps >= 1e9 {
		s.TotalSteps = 0 // local mode's stand-in for "no step budget"
	}
	over := ended(s.State)
	if !over {
		s.Waiting = l.Waiting
		if r.last.Kind != "" && l.Now.After(r.last.Time) {
			s.Elapsed += l.Now.Sub(r.last.Time).Seconds()
		}
	}
	if r.hasVal {
		v, b := r.val.ValLoss, r.val.BestValLoss
		s.ValLoss, s.ValStep, s.BestValLoss = &v, r.val.Step, &b
	}
	if tps, sps, ok := events.Throughput(r.rate); ok && !over {
		s.TokensPerSecond, s.StepsPerSecond = tps, sps
		if eta, ok := r.eta(s.Step, s.Elapsed, sps); ok {
			s.ETA = &eta
		}
	}
	if s.Generations == nil {
		s.Generations = []Generation{}
	}
	if s.Checkpoints == nil {
		s.Checkpoints = []Checkpoint{}
	}
	if s.Events == nil {
		s.Events = []Line{}
	}
	return finite(s)
}

// members lists the ring in rank order, then the other known workers by
// id, with their reports; reports of workers no longer known are dropped.
func (r *Recorder) members(l Live) []Member {
	known := map[string]bool{}
	for _, id := range l.Ring {
		known[id] = true
	}
	for _, id := range l.Workers {
		known[id] = true
	}
	for id := range r.reports {
		if !known[id] {
			delete(r.reports, id)
		}
	}
	out := make([]Member, 0, min(len(known), maxMembers))
	add := func(id string, rank int) {
		if len(out) >= maxMembers {
			return
		}
		m := Member{ID: id, Rank: rank, Step: -1, ReportAge: -1}
		if w, ok := r.reports[id]; ok {
			m.Step, m.Steps, m.StepSeconds, m.AllreduceSeconds, m.WaitSeconds = w.step, w.steps, w.stepS, w.ringS, w.waitS
			m.ReportAge = max(l.Now.Sub(w.at).Seconds(), 0)
		}
		out = append(out, m)
	}
	inRing := map[string]bool{}
	for i, id := range l.Ring {
		if !inRing[id] {
			inRing[id] = true
			add(id, i)
		}
	}
	others := make([]string, 0, len(known))
	for id := range known {
		if !inRing[id] {
			others = append(others, id)
		}
	}
	slices.Sort(others)
	for _, id := range others {
		add(id, -1)
	}
	return out
}

// eta is the wall time left in seconds: by the step budget at the recent
// rate, or by the time budget, whichever ends first.
func (r *Recorder) eta(step int64, elapsed, stepsPerSec float64) (float64, bool) {
	var left float64
	ok := false
	if r.totalSteps > 0 && r.totalSteps < 1e9 && stepsPerSec > 0 {
		left, ok = float64(r.totalSteps-step)/stepsPerSec, true
	}
	if r.minutes > 0 {
		if byTime := r.minutes*60 - elapsed; !ok || byTime < left {
			left, ok = byTime, true
		}
	}
	return max(left, 0), ok
}

// ended reports whether a run's state is an outcome.
func ended(state string) bool { return events.EventKind(state).Ends() }

// appendBounded appends v to s, dropping the oldest element when s holds
// n already.
func appendBounded[T any](s []T, v T, n int) []T {
	if len(s) < n {
		return append(s, v)
	}
	copy(s, s[1:])
	s[len(s)-1] = v
	return s
}

// finite replaces the non-finite numbers of s (which JSON cannot hold) by
// 0; curve points with one are dropped.
func finite(s Status) Status {
	for _, p := range []*float64{&s.Minutes, &s.Elapsed, &s.TokensPerSecond, &s.StepsPerSecond, &s.TotalTokens, &s.LR, &s.Loss} {
		*p = orZero(*p)
	}
	for _, p := range []**float64{&s.ETA, &s.ValLoss, &s.BestValLoss} {
		if *p != nil && (math.IsNaN(**p) || math.IsInf(**p, 0)) {
			*p = nil
		}
	}
	for i := range s.Members {
		m := &s.Members[i]
		m.StepSeconds, m.AllreduceSeconds, m.WaitSeconds = orZero(m.StepSeconds), orZero(m.AllreduceSeconds), orZero(m.WaitSeconds)
	}
	for _, c := range []*[]Point{&s.Series.Train, &s.Series.Val, &s.Series.LR, &s.Series.TokensPerSecond} {
		*c = slices.DeleteFunc(*c, func(p Point) bool {
			return slices.ContainsFunc(p[:], func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) })
		})
	}
	return s
}

func orZero(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
