package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/cluster/controlpb"
	"github.com/recur-ml/recur/internal/dashboard"
	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/planner"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/checkpoint"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/safetensors"
	"github.com/recur-ml/recur/pkg/schedule"
)

// CoordinatorConfig configures the coordinator process.
type CoordinatorConfig struct {
	Job    job.Config
	Listen string // control and state gRPC address; default 127.0.0.1:7070
	Gossip string // memberlist bind address; default 127.0.0.1:7946; "off" disables
	Dir    string // checkpoint directory; default runs/recur
	// Advertise is the host workers use to reach the coordinator's
	// listeners (default: the listen address's host; set it when listening
	// on 0.0.0.0).
	Advertise string
	Secret    []byte // cluster key, at least 16 bytes; required
	// Security is the transport security of every connection (nil: mutual
	// TLS with certificates derived from Secret).
	Security *cluster.Security
	Fresh    bool // ignore existing checkpoints (by default training resumes)
	// Init is the state of step 0 (cluster.State bytes) a fresh run starts
	// from instead of the seed's initialisation (recur train --init); a
	// run that resumes from a checkpoint ignores it.
	Init []byte
	// RejoinGrace is how long a restarted coordinator waits for the last
	// ring's workers to report before it forms a generation without them;
	// default 10s.
	RejoinGrace time.Duration
	// StartWorkers is how many workers the first generation waits for
	// (default: cluster.min_workers).
	StartWorkers int
	// WarnEvery is how often a wait (too few workers, the last ring's
	// workers, a back-off) is reported at Warn level; default 10s.
	WarnEvery time.Duration
	// Listener, if set, serves the control and state services instead of
	// a TCP listener on Listen (the coordinator closes it).
	Listener net.Listener
	// Dialer reaches the workers' state services (nil: TCP).
	Dialer cluster.Dialer
	// Store keeps the checkpoints (nil: a checkpoint.Store in
	// Dir/checkpoints.db). The coordinator closes it.
	Store Store
	// Membership starts the coordinator's member of the membership
	// unless Gossip is "off" (nil: memberlist, cluster.StartGossip).
	Membership cluster.StartMembership
	// Clock tells the time for budgets, deadlines, stall detection and
	// step times (nil: the system clock).
	Clock Clock
	Log   *zap.Logger
}

func (c *CoordinatorConfig) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7070"
	}
	if c.Gossip == "" {
		c.Gossip = "127.0.0.1:7946"
	}
	if c.Dir == "" {
		c.Dir = "runs/recur"
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.WarnEvery == 0 {
		c.WarnEvery = 10 * time.Second
	}
	if c.Membership == nil {
		c.Membership = cluster.StartGossip
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
}

// Store is where the coordinator keeps checkpoints: *checkpoint.Store, or
// anything that behaves like it (tests inject faults).
type Store interface {
	Save(ctx context.Context, c *checkpoint.Checkpoint) error
	Latest(ctx context.Context) (*checkpoint.Checkpoint, checkpoint.Report, error)
	Best(ctx context.Context) (*checkpoint.Checkpoint, checkpoint.Report, error)
	Close() error
}

// Clock tells the coordinator the time.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (c *Coordinator) now() time.Time                  { return c.clock.Now() }
func (c *Coordinator) since(t time.Time) time.Duration { return c.clock.Now().Sub(t) }

// Coordinator owns the plan of a training run: membership, generations,
// the learning rate of each step, validation and checkpoints.
type Coordinator struct {
	controlpb.UnimplementedControlServer
	cfg     CoordinatorConfig
	log     *zap.Logger
	store   Store
	sched   *schedule.Schedule
	lis     net.Listener
	srv     *grpc.Server
	auth    *cluster.Authenticator
	sec     *cluster.Security
	gossip  cluster.Membership
	clock   Clock
	Metrics *Metrics

	mu       sync.Mutex
	p        *planner.Planner
	changed  chan struct{}
	ckptBlob []byte // the newest checkpoint's state, served to workers (under mu)
	ckptStep int64
	finished chan struct{}
	once     sync.Once
	bestVal  float64 // the lowest validation loss of the run
	bestStep int64   // the step it was measured at (0: none yet)
	// resumedBest is the store's best checkpoint at start, for the start event.
	resumedBest bestCheckpoint
	sinceBest   int // validations since the best one (train.early_stop)
	started     time.Time
	// elapsedBefore is the training time of earlier coordinator processes
	// of this run, read from the checkpoint resumed: time budgets count
	// the whole run.
	elapsedBefore time.Duration
	finishing     bool            // a finish is under way (under mu)
	lastStep      time.Time       // when the last step completed (or the start)
	expecting     atomic.Bool     // the last ring's workers are awaited (watch reads the gossip)
	stepWall      float64         // wall seconds per step, moving average
	told          map[string]bool // workers sent a Stop plan
	valSample     int             // validation batches per periodic validation (0: not sized yet)
	status        *events.Log
	totalTokens   float64        // global tokens trained in the run, over every process
	validated     map[int64]bool // steps whose validation this process recorded
	lastWait      string         // the last wait reason published
	ended         bool           // the outcome event is published: nothing follows it
	failedSaves   int            // checkpoint saves that failed in a row
	stats         Stats
	savedGen      uint64
	curve         lossCurve
	saving        sync.WaitGroup
	saveMu        sync.Mutex     // one checkpoint save at a time, in step order
	fetched       atomic.Int64   // the newest step whose state was fetched for a checkpoint
	watchers      sync.WaitGroup // Watch calls in progress
	pendingFinal  int64
	crcs          map[stateKey]stateSeen
	closed        chan struct{} // closed by Close
	closeOnce     sync.Once
	recoveries    []string // store recoveries not yet in the status stream (under mu)
	checked       int      // state checksums compared
	diverged      int      // and found different
	dashMu        sync.Mutex
	dash          *dashboard.Recorder // what the dashboard shows (under dashMu)
}

// NewCoordinator opens the checkpoint store (resuming from its newest good
// checkpoint unless Fresh), and starts serving.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	cfg.defaults()
	if err := cfg.Job.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Secret) < 16 {
		return nil, fmt.Errorf("coordinator: the cluster key has %d bytes, need at least 16 (recur keygen)", len(cfg.Secret))
	}
	sec := cfg.Security
	if sec == nil {
		var err error
		if sec, err = cluster.NewSecurity(cluster.SecurityConfig{Secret: cfg.Secret, Name: "coordinator", Log: cfg.Log}); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
	}
	c := &Coordinator{cfg: cfg, log: cfg.Log.With(zap.String("role", "coordinator")), changed: make(chan struct{}),
		finished: make(chan struct{}), closed: make(chan struct{}), ckptStep: -1, clock: cfg.Clock, started: cfg.Clock.Now(), lastStep: cfg.Clock.Now(), validated: map[int64]bool{}, told: map[string]bool{}, curve: newLossCurve(), bestVal: math.Inf(1), Metrics: NewMetrics(), sec: sec}
	var err error
	if c.sched, err = schedule.New(cfg.Job.Schedule); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if c.store = cfg.Store; c.store == nil {
		path := filepath.Join(cfg.Dir, "checkpoints.db")
		if cfg.Fresh {
			// The earlier run's checkpoints are set aside, not mixed with
			// this run's (a restart would resume the newest of either).
			if moved, err := setAside(path); err != nil {
				return nil, fmt.Errorf("coordinator: --fresh: %w", err)
			} else if moved != "" {
				c.log.Warn("--fresh: the earlier run's checkpoints are set aside", zap.String("moved_to", moved))
			}
		}
		if c.store, err = openOwnStore(path, c.log, c.recovered); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
	}
	if err := c.resume(); err != nil {
		c.store.Close()
		return nil, err
	}
	if err := c.checkData(); err != nil {
		c.store.Close()
		return nil, err
	}
	if c.status, err = events.OpenLog(filepath.Join(cfg.Dir, events.MetricsFile)); err != nil {
		c.store.Close()
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	history := readHistory(filepath.Join(cfg.Dir, events.MetricsFile), c.log)
	c.curve = curveFromHistory(history)
	c.dash = dashboard.NewRecorder()
	for _, e := range history {
		c.dash.Observe(e)
	}
	pc := planner.Config{MinWorkers: cfg.Job.Cluster.MinWorkers, MaxWorkers: cfg.Job.Cluster.MaxWorkers,
		TotalSteps: cfg.Job.Train.Steps, CheckpointEvery: cfg.Job.Train.CheckpointEvery,
		ValidateEvery: cfg.Job.Train.ValidateEvery, ReadyTimeout: 10 * time.Second, RejoinGrace: cfg.RejoinGrace,
		MaxSkips: cfg.Job.Train.MaxSkippedSteps, StartWorkers: cfg.StartWorkers,
		LR: func(step int64, world int) float64 { return c.sched.LR(int(step), world) }}
	if c.lis = cfg.Listener; c.lis == nil {
		c.lis, err = net.Listen("tcp", cfg.Listen)
	}
	if err != nil {
		c.store.Close()
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	if c.p, err = planner.New(pc, c.ckptStep, c.advertised()); err != nil {
		c.Close()
		return nil, err
	}
	if n := cfg.Job.Train.EarlyStop; n > 0 && c.sinceBest >= n {
		c.p.RequestStop(planner.Finished, fmt.Sprintf("already finished: early stop (train.early_stop %d) after %d validations without a better one than %.4f (step %d)",
			n, c.sinceBest, c.bestVal, c.bestStep))
	}
	if m := cfg.Job.Train.Minutes; m > 0 && c.elapsedBefore.Minutes() >= m {
		c.p.RequestStop(planner.Finished, fmt.Sprintf("already finished: the time budget of %g minutes was spent (%v trained)", m, c.elapsedBefore.Round(time.Second)))
	}
	gen, ring := c.loadGeneration()
	c.p.SetGeneration(gen)
	if len(ring) > 0 {
		// The workers of the last ring may hold a newer state than the
		// checkpoint: let them report before a generation forms.
		c.p.Expect(ring, c.now())
		c.expecting.Store(true)
	}
	c.auth = cluster.NewAuthenticator(cfg.Secret)
	c.Metrics.registerRejected(c.auth)
	c.Metrics.registerSecurity(c.sec)
	adm, opts, err := c.auth.Admit(c.lis, c.sec)
	if err != nil {
		c.lis.Close()
		c.Close()
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	c.lis = adm
	c.srv = grpc.NewServer(opts...)
	controlpb.RegisterControlServer(c.srv, c)
	jobHash := cfg.Job.Hash()
	controlpb.RegisterPeerServer(c.srv, &cluster.StateServer{StateAt: func(step int64) (string, []byte, error) {
		b, err := c.stateAt(step)
		return jobHash, b, err
	}})
	go c.srv.Serve(c.lis)
	if cfg.Gossip != "off" {
		if c.gossip, err = cfg.Membership(cluster.MembershipConfig{Name: planner.CoordinatorID, Bind: cfg.Gossip, Advertise: cfg.Advertise,
			Secret: cfg.Secret, Meta: c.advertised(), Gone: c.memberGone, Log: c.log}); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.log.Info("listening", zap.String("control", c.Addr()), zap.String("gossip", c.GossipAddr()),
		zap.Int64("resume_step", c.ckptStep), zap.String("dir", cfg.Dir))
	startEv := events.Event{Kind: events.EventStart, Step: c.ckptStep, TotalSteps: cfg.Job.Train.Steps, Minutes: cfg.Job.Train.Minutes, Job: cfg.Job.Hash(),
		Message: fmt.Sprintf("coordinator started in %s, resuming from step %d", cfg.Dir, max(c.ckptStep, 0))}
	c.resumedBest.mark(&startEv)
	c.publish(startEv)
	c.publishRecoveries()
	c.mu.Lock()
	c.broadcast() // publishes what the planner decided at start
	c.mu.Unlock()
	c.Metrics.resumeStep.Set(float64(c.ckptStep))
	c.Metrics.startTime.Set(float64(c.started.UnixNano()) / 1e9)
	go c.watch()
	if o, reason := c.p.Outcome(); o != planner.Ongoing {
		c.log.Info("nothing to train", zap.String("outcome", o.String()), zap.String("reason", reason))
		c.mu.Lock()
		c.finishIfIdle()
		c.mu.Unlock()
	}
	return c, nil
}

// Periodic validation is a sample: the first valBatches validation
// batches, the same each time, sized so that validating costs at most
// valShare of the training time; the full validation set is for `recur
// eval` (and the end of local mode). train.val_windows, when set, fixes
// the sample instead.
const (
	valShare         = 0.02
	firstValBatches  = 8 // until the first validation is timed
	maxSampleBatches = 1 << 20
)

// valBatches is the sample size of the next validation; the caller holds
// c.mu.
func (c *Coordinator) valBatches() int {
	switch {
	case c.cfg.Job.Train.ValWindows > 0:
		return c.cfg.Job.Train.ValWindows
	case c.valSample > 0:
		return c.valSample
	}
	return firstValBatches
}

// calibrateValidation sizes the validation sample from the first timed
// validation: valShare of validate_every steps' wall time, divided by the
// time a batch took. The caller holds c.mu.
func (c *Coordinator) calibrateValidation(rep *controlpb.StepReport) {
	if c.valSample > 0 || c.cfg.Job.Train.ValWindows > 0 || rep.ValBatches <= 0 || rep.ValSeconds <= 0 || c.stepWall <= 0 {
		return
	}
	perBatch := rep.ValSeconds / float64(rep.ValBatches)
	budget := valShare * float64(c.cfg.Job.Train.ValidateEvery) * c.stepWall
	c.valSample = int(min(max(budget/perBatch, 1), maxSampleBatches))
	c.log.Info("validation sample sized", zap.Int("batches", c.valSample), zap.Float64("seconds_per_batch", perBatch),
		zap.Float64("step_seconds", c.stepWall), zap.Float64("share_of_training", valShare))
}

// Files beside the checkpoint store that hold copies of its newest and
// best checkpoints, for readers while the coordinator holds the store.
const (
	LatestCheckpointFile = "latest.ckpt"
	BestCheckpointFile   = "best.ckpt"
)

// exportCheckpoint copies a saved checkpoint to latest.ckpt, and to
// best.ckpt when it is the store's best: eval, sample, export and predict
// read them while the coordinator holds the store. A failed copy is
// logged; the store has the checkpoint. It returns the store's best.
func (c *Coordinator) exportCheckpoint(ctx context.Context, ck *checkpoint.Checkpoint) bestCheckpoint {
	if err := checkpoint.WriteFile(filepath.Join(c.cfg.Dir, LatestCheckpointFile), ck); err != nil {
		c.log.Warn("copying the checkpoint for readers", zap.Uint64("step", ck.Step), zap.Error(err))
	}
	best := c.storeBest(ctx)
	if !best.ok || best.step != int64(ck.Step) {
		return best
	}
	if err := checkpoint.WriteFile(filepath.Join(c.cfg.Dir, BestCheckpointFile), ck); err != nil {
		c.log.Warn("copying the best checkpoint for readers", zap.Uint64("step", ck.Step), zap.Error(err))
	}
	return best
}

// bestCheckpoint is the store's best checkpoint (the lowest validation
// loss: what eval, sample, export and predict use by default).
type bestCheckpoint struct {
	step int64
	loss float64
	ok   bool // false: no checkpoint has a validation loss
}

// storeBest reads the store's best checkpoint.
func (c *Coordinator) storeBest(ctx context.Context) bestCheckpoint {
	b, _, err := c.store.Best(ctx)
	if err != nil {
		if !errors.Is(err, checkpoint.ErrNoCheckpoint) {
			c.log.Warn("reading the best checkpoint", zap.Error(err))
		}
		return bestCheckpoint{}
	}
	v, ok := b.Metrics[checkpoint.DefaultOptions().BestMetric]
	return bestCheckpoint{step: int64(b.Step), loss: v, ok: ok}
}

// mark puts the best checkpoint into a checkpoint or start event.
func (b bestCheckpoint) mark(e *events.Event) {
	if b.ok {
		e.BestStep, e.BestValLoss = b.step, b.loss
	}
}

// publish stamps e with the run's elapsed time and sends it to the status
// stream; the caller holds c.mu.
func (c *Coordinator) publish(e events.Event) {
	if c.ended {
		return // the outcome is the stream's last event
	}
	c.ended = e.Kind.Ends()
	e.Elapsed = c.elapsed().Seconds()
	e, err := c.status.Publish(e)
	if err != nil {
		c.log.Warn("status history not written; the run goes on", zap.Error(err))
	}
	c.record(e)
}

// publishLocked is publish for a caller that does not hold c.mu.
func (c *Coordinator) publishLocked(e events.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.publish(e)
}

// Watch streams the status events (the Control service's Watch call).
func (c *Coordinator) Watch(req *controlpb.WatchRequest, stream controlpb.Control_WatchServer) error {
	c.watchers.Add(1)
	defer c.watchers.Done()
	after := req.AfterSeq
	for {
		evs, changed, closed := c.status.Since(after)
		for _, e := range evs {
			if err := stream.Send(cluster.EventToProto(e)); err != nil {
				return err
			}
			after = e.Seq
			if e.Kind.Ends() {
				return nil
			}
		}
		if req.NoFollow {
			return nil
		}
		if closed {
			return status.Error(codes.Unavailable, "the coordinator is shutting down")
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// Linger waits, after Done, until every known worker has been told the
// run is over (or max passes; a run that ended before any worker came
// waits max for late ones), so that workers exit with the outcome rather
// than retry a coordinator that is gone.
func (c *Coordinator) Linger(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c.mu.Lock()
		all := len(c.told) > 0
		for _, id := range c.p.Workers() {
			all = all && c.told[id]
		}
		c.mu.Unlock()
		if all {
			time.Sleep(200 * time.Millisecond) // for the last replies to go out
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Health reports why the coordinator is unhealthy (nil: healthy): no
// step completed for stall while the run is on, or maxFailedSaves
// checkpoint saves failed in a row. A run that ended is healthy.
func (c *Coordinator) Health(stall time.Duration, maxFailedSaves int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, _ := c.p.Outcome(); o != planner.Ongoing {
		return nil
	}
	if maxFailedSaves > 0 && c.failedSaves >= maxFailedSaves {
		return fmt.Errorf("the last %d checkpoint saves failed", c.failedSaves)
	}
	if since := c.since(c.lastStep); stall > 0 && since > stall {
		reason := c.p.WaitReason()
		if reason == "" {
			reason = fmt.Sprintf("generation %d at step %d", c.p.Generation(), c.p.Step())
		}
		return fmt.Errorf("no step completed for %v (%s)", since.Round(time.Second), reason)
	}
	return nil
}

// Outcome says how the run ended (Ongoing until Done is closed), why, and
// the step of the newest checkpoint saved (-1: none).
func (c *Coordinator) Outcome() (planner.Outcome, string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, reason := c.p.Outcome()
	return o, reason, c.ckptStep
}

// planner.Stop ends the run early with outcome o (Interrupted for an operator's
// signal): at the next step boundary, with a final checkpoint of that
// step, or at once when no generation is running. Done is closed when
// the final checkpoint is saved.
func (c *Coordinator) Stop(o planner.Outcome, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.p.RequestStop(o, reason)
	c.broadcast()
	c.finishIfIdle()
}

// finishIfIdle finishes a run that ended without a final checkpoint to
// fetch (nothing ran, or a stop came between generations): no worker's
// planner.Stop plan would finish it if none is connected. The caller holds c.mu.
func (c *Coordinator) finishIfIdle() {
	if o, _ := c.p.Outcome(); o == planner.Ongoing || c.finishing || c.p.CheckpointsPending() || c.pendingFinal > 0 {
		return
	}
	c.finishing = true
	go c.finish(context.Background(), "")
}

// elapsed is the run's training time so far, over every coordinator
// process; the caller holds c.mu.
func (c *Coordinator) elapsed() time.Duration { return c.elapsedBefore + c.since(c.started) }

// gossipSettle is how long after a restart the gossip membership is taken
// as complete: live workers rejoin it within about a second, or are learnt
// at the next push-pull exchange (every 5 s). Live workers report to the
// control service well before that anyway.
const gossipSettle = 6 * time.Second

// watch applies the planner's deadlines as time passes (a back-off or
// the rejoin grace ends even when no worker reports), ends the wait for
// the last ring's workers early once the gossip has settled (a worker
// absent from it is gone: a whole cluster that was restarted comes back
// with new worker ids), and says at Warn level, every WarnEvery, what a
// waiting coordinator waits for.
func (c *Coordinator) watch() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var since, warned time.Time
	for {
		select {
		case <-c.finished:
			return
		case <-c.closed:
			return
		case now := <-t.C:
			// Read the gossip before taking c.mu: memberlist calls
			// memberGone (which takes c.mu) while holding its own lock.
			var alive map[string]bool
			if c.gossip != nil && c.expecting.Load() && now.Sub(c.started) >= gossipSettle {
				alive = c.gossip.Members()
			}
			c.mu.Lock()
			if alive != nil {
				for _, id := range c.p.Expected() {
					if !alive[id] {
						c.p.Forget(id, now)
					}
				}
			}
			c.p.Tick(now)
			c.broadcast()
			c.expecting.Store(len(c.p.Expected()) > 0)
			reason := c.p.WaitReason()
			c.mu.Unlock()
			switch {
			case reason == "":
				since = time.Time{}
			case since.IsZero():
				since, warned = now, now
			case now.Sub(warned) >= c.cfg.WarnEvery:
				warned = now
				c.log.Warn("waiting: "+reason, zap.Duration("waited", now.Sub(since).Round(time.Second)))
			}
		}
	}
}

// advertised is the control address workers dial (and sync from, when
// the coordinator serves its checkpoint): --advertise's host, else the
// listener's address, with this machine's IP for a listener bound to
// every interface.
func (c *Coordinator) advertised() string {
	if c.cfg.Advertise == "" {
		return cluster.Reachable(c.lis.Addr().String(), nil)
	}
	_, port, _ := net.SplitHostPort(c.lis.Addr().String())
	return net.JoinHostPort(c.cfg.Advertise, port)
}

// Addr returns the control address.
func (c *Coordinator) Addr() string { return c.lis.Addr().String() }

// GossipAddr returns the memberlist address workers join ("" when off).
func (c *Coordinator) GossipAddr() string {
	if c.gossip == nil {
		return ""
	}
	return c.gossip.Addr()
}

// Done is closed when training is complete.
func (c *Coordinator) Done() <-chan struct{} { return c.finished }

// History returns the completed steps.
func (c *Coordinator) History() []planner.StepRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]planner.StepRecord(nil), c.p.History()...)
}

// Stats sums the workers' step reports: where their time went.
type Stats struct {
	Reports          int     // step reports (one per worker per step)
	StepSeconds      float64 // compute and allreduce, summed over reports
	AllreduceSeconds float64 // in the allreduce
	WaitSeconds      float64 // blocked on the coordinator between steps
	Tokens           float64 // global tokens, summed over reports
}

// Stats returns the summed step reports so far.
func (c *Coordinator) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close stops serving and closes the store.
func (c *Coordinator) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	if c.gossip != nil {
		c.gossip.Leave()
	}
	var serr error
	if c.status != nil {
		// Watchers get the last events before the server stops.
		serr = c.status.Close()
		drained := make(chan struct{})
		go func() { c.watchers.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(time.Second):
		}
	}
	if c.srv != nil {
		c.srv.Stop()
	}
	c.saving.Wait()
	if err := c.store.Close(); err != nil {
		return err
	}
	return serr
}

// resume loads the newest good checkpoint unless Fresh.
func (c *Coordinator) resume() error {
	jobPath := filepath.Join(c.cfg.Dir, "job.json")
	ck, rep, err := c.store.Latest(context.Background())
	if c.cfg.Fresh { // the copies of an earlier run's checkpoints go too
		os.Remove(filepath.Join(c.cfg.Dir, LatestCheckpointFile))
		os.Remove(filepath.Join(c.cfg.Dir, BestCheckpointFile))
	}
	if errors.Is(err, checkpoint.ErrNoCheckpoint) && !c.cfg.Fresh {
		if step, ok := savedBefore(c.cfg.Dir); ok {
			// The history says checkpoints were saved here: the store
			// was lost, and starting over silently would retrain.
			return fmt.Errorf("coordinator: %s holds no checkpoint, but its history (%s) records one of step %d: the checkpoint store was deleted or replaced; restore %s (or its backup), or start over with --fresh",
				c.cfg.Dir, events.MetricsFile, step, filepath.Join(c.cfg.Dir, "checkpoints.db"))
		}
	}
	if errors.Is(err, checkpoint.ErrNoCheckpoint) || c.cfg.Fresh {
		if c.cfg.Init != nil { // served to the workers as the state of step 0
			c.ckptBlob, c.ckptStep = c.cfg.Init, 0
		}
		b, err := json.MarshalIndent(c.cfg.Job, "", "  ")
		if err != nil {
			return fmt.Errorf("coordinator: job.json: %w", err)
		}
		return writeFileAtomic(jobPath, b)
	}
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if len(rep.Skipped) > 0 || rep.Recovery != nil {
		c.log.Warn("damaged checkpoints skipped", zap.String("report", rep.String()))
	}
	if c.cfg.Init != nil {
		c.log.Warn("the initial weights are ignored: the run resumes from its checkpoint (use --fresh to start over from them)", zap.Uint64("step", ck.Step))
	}
	if ck.ConfigHash != c.cfg.Job.Hash() {
		msg := "its configuration differs"
		if b, err := os.ReadFile(jobPath); err == nil {
			var old job.Config
			if json.Unmarshal(b, &old) == nil {
				if d := job.Diff(old, c.cfg.Job); d != "" {
					msg = "config field " + d
				}
			}
		}
		return fmt.Errorf("coordinator: checkpoint of step %d in %s belongs to another job (%s); use a new directory or --fresh", ck.Step, c.cfg.Dir, msg)
	}
	st := cluster.State{Step: int64(ck.Step), Params: ck.Params, Optim: ck.Optimizer, Carry: floatsFromBytes(ck.Hidden)}
	if c.ckptBlob, err = st.MarshalBinary(); err != nil {
		return err
	}
	c.ckptStep = int64(ck.Step)
	if v, ok := ck.Metrics["best_val_loss"]; ok {
		c.bestVal = v
	}
	if v, ok := ck.Metrics["best_val_step"]; ok && v > 0 {
		c.bestStep = int64(v)
	}
	if v, ok := ck.Metrics["total_tokens"]; ok && v > 0 {
		c.totalTokens = v
	}
	if v, ok := ck.Metrics["validations_since_best"]; ok && v >= 0 {
		c.sinceBest = int(v)
	}
	if v, ok := ck.Metrics["elapsed_seconds"]; ok && v > 0 {
		c.elapsedBefore = time.Duration(v * float64(time.Second))
	}
	if len(ck.Schedule) > 0 {
		if err := c.sched.UnmarshalBinary(ck.Schedule); err != nil {
			return fmt.Errorf("coordinator: checkpoint of step %d: schedule state: %w", ck.Step, err)
		}
	}
	c.resumedBest = c.storeBest(context.Background())
	if _, err := os.Stat(filepath.Join(c.cfg.Dir, LatestCheckpointFile)); err != nil {
		c.exportCheckpoint(context.Background(), ck) // a run from before the copies existed
	}
	c.log.Info("resuming from checkpoint", zap.Uint64("step", ck.Step), zap.Duration("trained_before", c.elapsedBefore.Round(time.Second)),
		zap.Float64("lr_factor", c.sched.Factor()))
	return nil
}

// checkData opens the job's data once: it must exist, parse, and fit the
// batch. A text corpus's vocabulary is saved beside the checkpoints for
// sampling and evaluation; a forecast's columns and row split are logged.
func (c *Coordinator) checkData() error {
	vocab, err := task.Check(c.cfg.Job)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if c.cfg.Job.Task.Kind == job.TaskForecast {
		d, err := task.DescribeForecast(c.cfg.Job)
		if err != nil {
			return fmt.Errorf("coordinator: %w", err)
		}
		c.log.Info("forecast data", zap.Strings("inputs", d.Inputs), zap.Strings("targets", d.Targets), zap.Strings("not_read", d.Unread),
			zap.String("training_rows", rowRange(0, d.ValStart)), zap.String("validation_rows", rowRange(d.ValStart, d.TestStart)),
			zap.String("test_rows", rowRange(d.TestStart, d.Rows)), zap.String("residual", c.cfg.Job.Data.Residual))
	}
	if vocab == nil {
		return nil
	}
	return writeFileAtomic(filepath.Join(c.cfg.Dir, "vocab.json"), vocab)
}

// rowRange names rows [lo, hi) as "lo-last".
func rowRange(lo, hi int) string { return fmt.Sprintf("%d-%d", lo, hi-1) }

// ringRecord is the last generation and its members, persisted beside the
// checkpoints so that a restarted coordinator never reuses a generation
// number and knows which workers to wait for.
type ringRecord struct {
	Generation uint64   `json:"generation"`
	Members    []string `json:"members"`
}

// loadGeneration returns the generation to continue after (the last one,
// plus room for any the predecessor formed without saving) and the last
// ring's members.
func (c *Coordinator) loadGeneration() (uint64, []string) {
	b, err := os.ReadFile(filepath.Join(c.cfg.Dir, "generation"))
	if err != nil {
		return 0, nil
	}
	var rec ringRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		// Before the ring was recorded, the file held the number alone.
		g, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			c.log.Warn("unreadable generation record; continuing without it", zap.Error(err))
			return 1000, nil
		}
		return g + 1000, nil
	}
	return rec.Generation + 1000, rec.Members
}

// stateAt serves the newest checkpoint: the one the coordinator resumed
// from or has saved since.
func (c *Coordinator) stateAt(step int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ckptBlob == nil || step != c.ckptStep {
		return nil, fmt.Errorf("the coordinator holds the checkpoint of step %d, not %d", c.ckptStep, step)
	}
	return c.ckptBlob, nil
}

// broadcast wakes every waiting Step call; the caller holds c.mu.
func (c *Coordinator) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
	for _, e := range c.p.Events() {
		if e.Kind == events.EventRunning {
			c.lastStep = c.now() // step times count from here, not from a wait
		}
		c.log.Info(e.Message)
		c.publish(e)
	}
	if r := c.p.WaitReason(); r != c.lastWait {
		c.lastWait = r
		if r != "" {
			c.publish(events.Event{Kind: events.EventWaiting, Message: r})
		}
	}
	c.finishIfIdle()
	c.Metrics.members.Set(float64(len(c.p.Members())))
	if g := c.p.Generation(); g != c.savedGen && len(c.p.Ring()) > 0 {
		// Persisted only when it changes: a restart must never reuse it.
		c.savedGen = g
		c.Metrics.generation.Set(float64(g))
		b, _ := json.Marshal(ringRecord{Generation: g, Members: c.p.Ring()})
		if err := writeFileAtomic(filepath.Join(c.cfg.Dir, "generation"), b); err != nil {
			c.log.Warn("saving the generation", zap.Error(err))
		}
	}
}

// memberGone is memberlist's report of a dead or departed worker; meta is
// the departed process's incarnation. Memberlist calls it holding its own
// lock, so it hands over to a goroutine: c.mu is never taken inside a
// memberlist callback (watch reads the membership).
func (c *Coordinator) memberGone(id, meta string) {
	if id == planner.CoordinatorID {
		return
	}
	go func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.p.Leave(id, meta, c.now())
		c.broadcast()
	}()
}

// Join registers a worker.
func (c *Coordinator) Join(ctx context.Context, req *controlpb.JoinRequest) (*controlpb.JoinReply, error) {
	if req.Version != cluster.ProtocolVersion {
		return nil, status.Errorf(codes.InvalidArgument, "worker %s speaks %q, the coordinator %q", req.WorkerId, req.Version, cluster.ProtocolVersion)
	}
	b, err := json.Marshal(c.cfg.Job)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := c.checkAdvertised(req); err != nil {
		return nil, err
	}
	if h := c.cfg.Job.Hash(); req.ConfigHash != "" && req.ConfigHash != h {
		c.log.Warn("worker holds the state of another job; it drops it and syncs", zap.String("worker", req.WorkerId),
			zap.String("its_job", req.ConfigHash), zap.String("this_job", h))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.p.Join(planner.Member{ID: req.WorkerId, RingAddr: req.RingAddr, PeerAddr: req.PeerAddr, Incarnation: req.Incarnation}, c.now()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	c.broadcast()
	return &controlpb.JoinReply{ConfigJson: b, Cluster: "recur"}, nil
}

// checkAdvertised refuses a worker that advertises a loopback address to
// a coordinator that others reach over the network: its ring neighbours
// would dial themselves.
func (c *Coordinator) checkAdvertised(req *controlpb.JoinRequest) error {
	if isLoopback(c.advertised()) {
		return nil
	}
	for _, a := range []struct{ what, addr string }{{"ring", req.RingAddr}, {"peer", req.PeerAddr}} {
		if isLoopback(a.addr) {
			c.log.Warn("refused a worker that advertises a loopback address", zap.String("worker", req.WorkerId), zap.String(a.what, a.addr))
			return status.Errorf(codes.InvalidArgument, "worker %s advertises the loopback %s address %s, which other machines cannot reach; "+
				"listen on a reachable address or set --advertise", req.WorkerId, a.what, a.addr)
		}
	}
	return nil
}

// isLoopback reports whether host:port names a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Step records a report and returns the worker's next plan when there is one.
func (c *Coordinator) Step(ctx context.Context, rep *controlpb.StepReport) (*controlpb.StepPlan, error) {
	now := c.now()
	c.mu.Lock()
	r := planner.Report{ID: rep.WorkerId, Generation: rep.Generation, StateStep: rep.StateStep, StateCRC: rep.StateCrc, Failed: rep.Failed, Err: rep.Error,
		FailedPeer: rep.FailedPeer, FailedOp: rep.FailedOp, Ready: rep.Ready, Step: rep.Step, LossSum: rep.LossSum, LossCount: rep.LossCount,
		ValSum: rep.ValLossSum, ValCount: rep.ValCount, Skipped: rep.Skipped, SkipReason: rep.SkipReason}
	before := len(c.p.History())
	if err := c.p.Report(r, now); err != nil {
		c.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	c.p.Tick(now) // deadlines pass even while every worker is told to wait (after the report: a late ready still counts)
	c.observe(rep, before)
	c.checkState(rep)
	c.broadcast()
	for {
		if _, ok := c.p.Member(rep.WorkerId); !ok {
			// Removed while it waited (its departure was detected, or it
			// was not ready in time): it must join again.
			c.mu.Unlock()
			return nil, status.Errorf(codes.FailedPrecondition, "worker %s was removed from the cluster; join again", rep.WorkerId)
		}
		plan, ok := c.p.Next(rep.WorkerId)
		if ok {
			c.startCheckpoints(plan)
			stop := plan.Action == planner.Stop
			start := stop && !c.finishing
			if start {
				c.finishing = true
			}
			if stop {
				c.told[rep.WorkerId] = true
			}
			c.mu.Unlock()
			if start {
				c.finish(ctx, rep.WorkerId)
			} else if stop {
				// Every worker stays until the final checkpoint is saved:
				// it may be fetched from any of them.
				select {
				case <-c.finished:
				case <-ctx.Done():
				}
			}
			return c.toProto(plan), nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		c.mu.Lock()
		c.p.Tick(c.now())
	}
}

// observe updates metrics, validation and the schedule after a report.
func (c *Coordinator) observe(rep *controlpb.StepReport, before int) {
	if rep.StepSeconds > 0 {
		c.stats.Reports++
		c.stats.StepSeconds += rep.StepSeconds
		c.stats.AllreduceSeconds += rep.AllreduceSeconds
		c.stats.WaitSeconds += rep.WaitSeconds
		c.stats.Tokens += rep.LossCount
		c.recordReport(rep)
	}
	h := c.p.History()
	if m := c.cfg.Job.Train.Minutes; m > 0 && c.elapsed().Minutes() >= m {
		c.p.RequestStop(planner.Finished, fmt.Sprintf("time budget of %g minutes spent", m))
	}
	if len(h) > before {
		now := c.now()
		if dt := now.Sub(c.lastStep).Seconds() / float64(len(h)-before); c.stepWall == 0 {
			c.stepWall = dt
		} else {
			c.stepWall = 0.9*c.stepWall + 0.1*dt
		}
		c.lastStep = now
	}
	for _, rec := range h[before:] {
		c.totalTokens += rep.LossCount
		c.publish(events.Event{Kind: events.EventStep, Step: rec.Step + 1, Generation: rec.Generation, Members: rec.World, Loss: rec.Loss, LR: rec.LR,
			Tokens: rep.LossCount, TotalTokens: c.totalTokens, StepSeconds: rep.StepSeconds, AllreduceSeconds: rep.AllreduceSeconds,
			StateCRC: rep.StateCrc, Skipped: rec.Skipped})
		if !rec.Skipped {
			c.curve.addTrain(rec.Step+1, rec.Loss)
		}
		c.Metrics.step.Set(float64(rec.Step + 1))
		c.Metrics.loss.Set(rec.Loss)
		c.Metrics.lr.Set(rec.LR)
		if rep.StepSeconds > 0 {
			c.Metrics.stepSeconds.Set(rep.StepSeconds)
			c.Metrics.tokensPerSec.Set(rep.LossCount / rep.StepSeconds)
			c.Metrics.allreduceSeconds.Set(rep.AllreduceSeconds)
			c.Metrics.busbw.Set(rep.Busbw)
		}
		if rec.Step%20 == 0 || c.p.Done() && rec.Step == h[len(h)-1].Step {
			c.log.Info("step", zap.Int64("step", rec.Step+1), zap.Float64("loss", round4(rec.Loss)), zap.Float64("lr", rec.LR),
				zap.Int("world", rec.World), zap.Uint64("generation", rec.Generation), zap.Float64("tokens", rep.LossCount),
				zap.Float64("tokens_per_s", math.Round(rep.LossCount/math.Max(rep.StepSeconds, 1e-9))),
				zap.Float64("allreduce_share", round4(rep.AllreduceSeconds/math.Max(rep.StepSeconds, 1e-9))))
		}
	}
	if rep.ValCount > 0 {
		c.calibrateValidation(rep)
		if v, ok := c.p.Validation(rep.Step); ok && !c.validated[rep.Step] {
			c.validated[rep.Step] = true
			c.curve.addVal(rep.Step, v)
			c.Metrics.valLoss.Set(v)
			if _, err := c.sched.Observe(int(rep.Step), v); err != nil {
				c.log.Warn("schedule", zap.Error(err))
			}
			if v < c.bestVal {
				c.bestVal, c.bestStep, c.sinceBest = v, rep.Step, 0
			} else {
				c.sinceBest++
			}
			if n := c.cfg.Job.Train.EarlyStop; n > 0 && c.sinceBest >= n {
				c.p.RequestStop(planner.Finished, fmt.Sprintf("early stop (train.early_stop %d): the validation loss has not improved on %.4f (step %d) in %d validations",
					n, c.bestVal, c.bestStep, c.sinceBest))
			}
			c.log.Info("validation", zap.Int64("step", rep.Step), zap.Float64("val_loss", round4(v)), zap.Float64("best", round4(c.bestVal)))
			c.publish(events.Event{Kind: events.EventValidation, Step: rep.Step, ValLoss: v, BestValLoss: c.bestVal})
		}
	}
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// stateKey names a state: a step within a generation.
type stateKey struct {
	gen  uint64
	step int64
}

// stateSeen is the first checksum reported for a state, and by whom.
type stateSeen struct {
	crc uint32
	id  string
}

// checkState compares the checksum of the reported state with the other
// members' of the same generation and step: every member must hold
// identical weights. A mismatch is logged as an error and counted
// (recur_state_divergences_total); training goes on, since no member can
// tell which copy is right. The caller holds c.mu.
func (c *Coordinator) checkState(rep *controlpb.StepReport) {
	if rep.StateCrc == 0 || rep.StateStep < 0 || rep.Failed || rep.Generation != c.p.Generation() || !c.p.InRing(rep.WorkerId) {
		return
	}
	if c.crcs == nil {
		c.crcs = map[stateKey]stateSeen{}
	}
	k := stateKey{rep.Generation, rep.StateStep}
	seen, ok := c.crcs[k]
	if !ok {
		c.crcs[k] = stateSeen{rep.StateCrc, rep.WorkerId}
		for old := range c.crcs {
			if old.gen != k.gen || old.step < k.step-50 {
				delete(c.crcs, old)
			}
		}
		return
	}
	c.Metrics.stateChecks.Inc()
	c.checked++
	if seen.crc != rep.StateCrc {
		c.Metrics.divergences.Inc()
		c.diverged++
		c.publish(events.Event{Kind: events.EventDivergence, Step: rep.StateStep, Generation: rep.Generation, Worker: rep.WorkerId,
			Message: fmt.Sprintf("worker %s holds crc %08x, worker %s %08x", seen.id, seen.crc, rep.WorkerId, rep.StateCrc)})
		c.log.Error("divergence: members hold different weights", zap.Int64("step", rep.StateStep), zap.Uint64("generation", rep.Generation),
			zap.String("worker", seen.id), zap.String("crc", fmt.Sprintf("%08x", seen.crc)),
			zap.String("other_worker", rep.WorkerId), zap.String("other_crc", fmt.Sprintf("%08x", rep.StateCrc)))
	}
}

// startCheckpoints fetches the snapshots the planner asked for from rank 0.
func (c *Coordinator) startCheckpoints(plan planner.Plan) {
	for _, step := range c.p.TakeCheckpoints() {
		if plan.Action == planner.Stop || len(plan.Members) == 0 {
			c.pendingFinal = step
			continue
		}
		from := plan.Members[0]
		c.saving.Add(1)
		go func() {
			defer c.saving.Done()
			c.checkpointFrom(context.Background(), from.PeerAddr, step, false)
		}()
	}
}

// finish saves the final checkpoint from the reporting worker (its state
// is the final one and it waits in this call), once.
func (c *Coordinator) finish(ctx context.Context, id string) {
	c.once.Do(func() {
		c.mu.Lock()
		step := c.pendingFinal
		m, ok := c.p.FinalSource() // the worker holding the newest state
		if !ok {
			m, _ = c.p.Member(id)
		}
		peer := m.PeerAddr
		c.mu.Unlock()
		if step > 0 && peer != "" {
			c.checkpointFrom(ctx, peer, step, true)
		}
		c.saving.Wait()
		c.writeCurve()
		c.mu.Lock()
		c.log.Info("state checks", zap.Int("compared", c.checked), zap.Int("divergences", c.diverged))
		o, reason := c.p.Outcome()
		c.publish(events.Event{Kind: cluster.OutcomeEvent(o), Step: max(c.ckptStep, 0), StateChecks: int64(c.checked), Divergences: int64(c.diverged),
			Message: fmt.Sprintf("%s; newest checkpoint: step %d", reason, c.ckptStep)})
		c.mu.Unlock()
		close(c.finished)
	})
}

// checkpointFrom fetches the state of step from a worker and saves it;
// the final one is validated first when no validation of that step was
// recorded, so that the curve ends with it and the best checkpoint can be
// the final one.
func (c *Coordinator) checkpointFrom(ctx context.Context, addr string, step int64, final bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := c.now()
	b, err := cluster.FetchState(ctx, c.cfg.Dialer, addr, c.sec, step, c.cfg.Job.Hash())
	if err != nil {
		c.log.Warn("checkpoint fetch failed", zap.Int64("step", step), zap.Error(err))
		return
	}
	var st cluster.State
	if err := st.UnmarshalBinary(b); err != nil {
		c.log.Warn("checkpoint state damaged in transfer", zap.Int64("step", step), zap.Error(err))
		return
	}
	if final {
		c.validateFinal(&st)
	}
	if err := checkFinite(&st); err != nil {
		// The update of the step before overflowed: such weights are no
		// checkpoint to resume from, and the newest good one stays.
		c.mu.Lock()
		newest := c.ckptStep
		c.mu.Unlock()
		msg := fmt.Sprintf("the state of step %d is not saved: %v; the newest checkpoint stays step %d", step, err, newest)
		c.log.Warn("checkpoint refused: non-finite state", zap.Int64("step", step), zap.Error(err), zap.Int64("newest_checkpoint", newest))
		c.publishLocked(events.Event{Kind: events.EventCheckpointFailed, Step: step, Message: msg})
		return
	}
	for { // the newest good state fetched: older ones waiting to be saved give way to it
		f := c.fetched.Load()
		if st.Step <= f || c.fetched.CompareAndSwap(f, st.Step) {
			break
		}
	}
	val, validated := c.ownValidation(ctx, st.Step, !final)
	c.mu.Lock()
	metrics := map[string]float64{"best_val_loss": c.bestVal, "best_val_step": float64(c.bestStep), "elapsed_seconds": c.elapsed().Seconds(),
		"validations_since_best": float64(c.sinceBest), "total_tokens": c.totalTokens}
	if c.curve.hasTrain {
		metrics["train_loss"] = c.curve.lastTrain
	}
	if validated {
		// The store picks the best checkpoint by it: only the validation
		// of this very state, never an older one's.
		metrics["val_loss"] = val
	}
	c.mu.Unlock()
	for k, v := range metrics {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			delete(metrics, k)
		}
	}
	sched, err := c.sched.MarshalBinary()
	if err != nil {
		c.log.Warn("checkpoint: schedule state", zap.Int64("step", step), zap.Error(err))
		return
	}
	ck := &checkpoint.Checkpoint{Step: uint64(st.Step), Params: st.Params, Optimizer: st.Optim, Hidden: floatsToBytes(st.Carry),
		ConfigHash: c.cfg.Job.Hash(), Metrics: metrics, Schedule: sched, WallTime: c.now()}
	// Fetches run concurrently, saves one at a time in step order: the
	// store drops checkpoints newer than the one it saves (a run that went
	// back), so an older state arriving late would delete the newer one.
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	newest := c.ckptStep
	c.mu.Unlock()
	c.mu.Lock()
	bestVal := c.bestVal
	c.mu.Unlock()
	if skipSave(st.Step, newest, st.Step < c.fetched.Load(), val, validated, bestVal) {
		c.log.Info("checkpoint skipped: a newer one is saved or waiting", zap.Int64("step", st.Step), zap.Int64("saved", newest), zap.Int64("fetched", c.fetched.Load()))
		return
	}
	if err := c.store.Save(ctx, ck); err != nil {
		c.mu.Lock()
		c.failedSaves++
		n := c.failedSaves
		c.mu.Unlock()
		c.Metrics.failedSaves.Inc()
		c.log.Warn("checkpoint save failed", zap.Int64("step", step), zap.Int("failed_in_a_row", n), zap.Error(err))
		c.publishLocked(events.Event{Kind: events.EventCheckpointFailed, Step: step, Message: err.Error()})
		return
	}
	c.Metrics.checkpoints.Inc()
	best := c.exportCheckpoint(ctx, ck)
	c.mu.Lock()
	c.failedSaves = 0
	if st.Step > c.ckptStep {
		// Serve it: should every worker lose its state, training goes on
		// from here rather than from the checkpoint it resumed from.
		c.ckptBlob, c.ckptStep = b, st.Step
		c.p.SetCheckpoint(st.Step)
	}
	c.mu.Unlock()
	c.log.Info("checkpoint", zap.Int64("step", st.Step), zap.Int("bytes", len(b)), zap.Duration("took", c.since(t0)))
	e := events.Event{Kind: events.EventCheckpoint, Step: st.Step}
	if validated {
		e.ValLoss = val
	}
	best.mark(&e)
	c.publishLocked(e)
	c.writeCurve()
}

func (c *Coordinator) toProto(p planner.Plan) *controlpb.StepPlan {
	out := &controlpb.StepPlan{Action: controlpb.StepPlan_Action(p.Action), Generation: p.Generation, Rank: int32(p.Rank),
		Step: p.Step, Lr: p.LR, Validate: p.Validate, Snapshot: p.Snapshot, SyncFrom: p.SyncFrom.PeerAddr, Reason: p.Reason}
	if p.Action == planner.Stop && p.Outcome != planner.Ongoing {
		out.Outcome = p.Outcome.String()
	}
	if p.Validate {
		out.ValBatches = int32(c.valBatches())
	}
	for _, m := range p.Members {
		out.Members = append(out.Members, &controlpb.Member{Id: m.ID, RingAddr: m.RingAddr, PeerAddr: m.PeerAddr})
	}
	return out
}

// recovered counts and reports a checkpoint store restored from its
// backup (the status stream is not open yet at start: the event follows
// once it is).
func (c *Coordinator) recovered(rec *checkpoint.Recovery) {
	c.Metrics.storeRecoveries.Inc()
	c.mu.Lock()
	c.recoveries = append(c.recoveries, rec.String())
	c.mu.Unlock()
	if c.status != nil {
		c.publishRecoveries()
	}
}

// publishRecoveries puts the pending recovery reports in the status stream.
func (c *Coordinator) publishRecoveries() {
	c.mu.Lock()
	pending := c.recoveries
	c.recoveries = nil
	c.mu.Unlock()
	for _, r := range pending {
		c.publishLocked(events.Event{Kind: events.EventInfo, Message: "checkpoint store: " + r})
	}
}

// skipSave reports whether the checkpoint of step is not saved: one
// newer (saved) is saved, and the store would drop it; or one newer is on
// its way (newer) while this one is not the best validated state so far
// (val, validated, against bestVal). Saves slower than checkpoint_every
// steps would queue up: the newest state is saved, the ones it
// supersedes are not, save the best (--checkpoint best).
func skipSave(step, saved int64, newer bool, val float64, validated bool, bestVal float64) bool {
	return step < saved || newer && !(validated && val <= bestVal)
}

// ownValidation returns the validation loss of the state of step, which
// its checkpoint carries (the store picks the best checkpoint by it).
// When wait is set and the plan validates step, it waits for it: workers
// snapshot a state, then validate it, then run the step, and report the
// validation with the step, so the snapshot is often fetched first. The
// wait ends when the validation is recorded, endGrace after the run has
// ended (the other ranks' reports of the last step may still come), or
// with ctx; it says at Warn level, every WarnEvery, what it waits for.
// Without it the checkpoint has no validation loss and cannot be the
// best. It waits on the wall clock, as the fetch's deadline does: it
// waits for messages, not for training time.
func (c *Coordinator) ownValidation(ctx context.Context, step int64, wait bool) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.cfg.Job.Train.ValidateEvery
	wait = wait && e > 0 && step > 0 && step%e == 0
	start := time.Now()
	warned := start
	var ended time.Time
	for wait && !c.validated[step] {
		if h := c.p.History(); len(h) > 0 && h[len(h)-1].Step >= step {
			// The step ran and its reports came without a validation (an
			// empty validation set): none will come.
			break
		}
		if o, _ := c.p.Outcome(); o != planner.Ongoing {
			if ended.IsZero() {
				ended = time.Now()
			} else if time.Since(ended) > endGrace {
				c.log.Warn("checkpoint saved without a validation loss: the run ended before its validation was reported", zap.Int64("step", step))
				break
			}
		}
		if now := time.Now(); now.Sub(warned) >= c.cfg.WarnEvery {
			warned = now
			c.log.Warn("the checkpoint waits for the validation of its step (workers report it after running the step)",
				zap.Int64("step", step), zap.Duration("waited", now.Sub(start).Round(time.Second)), zap.Duration("deadline", time.Until(deadlineOf(ctx)).Round(time.Second)))
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		case <-c.closed:
		case <-time.After(250 * time.Millisecond):
		}
		c.mu.Lock()
		if ctx.Err() != nil || c.isClosed() {
			c.log.Warn("checkpoint saved without a validation loss: its validation was not reported in time", zap.Int64("step", step), zap.Error(ctx.Err()))
			break
		}
	}
	if !c.validated[step] {
		return 0, false
	}
	v, ok := c.curve.val[step]
	return v, ok && !math.IsNaN(v) && !math.IsInf(v, 0)
}

// deadlineOf is ctx's deadline, or now when it has none.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now()
}

// endGrace is how long a checkpoint waits for the validation of its step
// once the run has ended: the reports of the last step come at once from
// workers that are still there.
const endGrace = 5 * time.Second

// isClosed reports whether Close was called.
func (c *Coordinator) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// validateFinal validates the final state on the same sample as the
// periodic validations (the workers have stopped: the coordinator does it
// itself) and records it as they are recorded.
func (c *Coordinator) validateFinal(st *cluster.State) {
	c.mu.Lock()
	skip := c.cfg.Job.Train.ValidateEvery == 0 || c.validated[st.Step]
	batches := c.valBatches()
	c.mu.Unlock()
	if skip {
		return
	}
	v, err := validateState(c.cfg.Job, st, batches)
	if err != nil {
		c.log.Warn("the final validation failed", zap.Int64("step", st.Step), zap.Error(err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.validated[st.Step] = true
	c.curve.addVal(st.Step, v)
	c.Metrics.valLoss.Set(v)
	if v < c.bestVal {
		c.bestVal, c.bestStep, c.sinceBest = v, st.Step, 0
	}
	c.log.Info("validation", zap.Int64("step", st.Step), zap.Float64("val_loss", round4(v)), zap.Float64("best", round4(c.bestVal)), zap.Bool("final", true))
	c.publish(events.Event{Kind: events.EventValidation, Step: st.Step, ValLoss: v, BestValLoss: c.bestVal})
}

// validateState is the validation loss of st's parameters on the first
// batches of the job's validation set (all when batches is 0).
func validateState(jc job.Config, st *cluster.State, batches int) (float64, error) {
	t, err := task.Open(jc)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	mc, err := t.ModelConfig()
	if err != nil {
		return 0, err
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		return 0, err
	}
	if err := m.UnmarshalBinary(st.Params); err != nil {
		return 0, err
	}
	sum, count, _, err := t.Validate(m, 0, 1, batches)
	if err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, errors.New("the validation set is empty")
	}
	return sum / count, nil
}

// savedBefore returns the step of the newest checkpoint the run
// directory's history records as saved since the run last started from
// scratch.
func savedBefore(dir string) (int64, bool) {
	evs, _, err := events.ReadEventsFile(filepath.Join(dir, events.MetricsFile))
	if err != nil {
		return 0, false
	}
	step, ok := int64(-1), false
	for _, e := range evs {
		switch {
		case e.Kind == events.EventStart && e.Step < 0: // a start from scratch
			step, ok = -1, false
		case e.Kind == events.EventCheckpoint && e.Step > step:
			step, ok = e.Step, true
		}
	}
	return step, ok
}

// setAside renames the store at path and its backup to path.old-TIME
// (and .bak beside it), returning the new name ("" when there was none).
func setAside(path string) (string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	to := path + ".old-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(path, to); err != nil {
		return "", err
	}
	if err := os.Rename(path+".bak", to+".bak"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return to, err
	}
	return to, nil
}

// checkFinite reports a non-finite value in a state's parameters or
// carried states, naming the tensor.
func checkFinite(st *cluster.State) error {
	f, err := safetensors.Read(bytes.NewReader(st.Params))
	if err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := f.Tensors[name]
		if t.DType != safetensors.F32 {
			continue
		}
		v, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("parameter %s: %w", name, err)
		}
		if i := firstNonFinite(v); i >= 0 {
			return fmt.Errorf("parameter %s holds %v at index %d", name, v[i], i)
		}
	}
	if i := firstNonFinite(st.Carry); i >= 0 {
		return fmt.Errorf("the carried state holds %v at index %d", st.Carry[i], i)
	}
	return nil
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN or ±Inf
			return i
		}
	}
	return -1
}

// writeFileAtomic replaces path with b: a reader sees the old or the new
// content, never a torn or empty file, and so does a crash. The bytes go
// to a temporary file in the same directory (unique, so two writers do not
// share it), which is synced and renamed over path; the directory is
// synced too, for the rename to survive a crash.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := writeSyncClose(f, b); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}

func writeSyncClose(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func floatsToBytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func floatsFromBytes(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}
