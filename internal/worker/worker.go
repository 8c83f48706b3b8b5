package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
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
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/planner"
	"github.com/recur-ml/recur/pkg/allreduce"
	"github.com/recur-ml/recur/pkg/rnn"
)

// WorkerConfig configures a worker process.
type WorkerConfig struct {
	ID          string // unique worker id; required
	Coordinator string // the coordinator's control address (host:port); required
	RingListen  string // allreduce listener; default 127.0.0.1:0
	PeerListen  string // state-transfer listener; default 127.0.0.1:0
	Secret      []byte // cluster key, at least 16 bytes; required
	// Security is the transport security of every connection (nil: mutual
	// TLS with certificates derived from Secret).
	Security *cluster.Security
	// Gossip is a memberlist address to join (the coordinator's or any
	// member's); empty runs without gossip (the coordinator then learns of
	// a dead worker only from the ring's failure reports and timeouts).
	Gossip       string
	GossipListen string // memberlist bind address; default 127.0.0.1:0
	// Advertise is the host peers use to reach this worker's listeners
	// (default: the listener's own host, or this machine's IP when bound to
	// 0.0.0.0).
	Advertise string
	Retry     time.Duration // pause between attempts to reach the coordinator; default 500ms
	// JoinTimeout bounds how long the worker tries to reach its
	// coordinator, at the start and whenever it is lost; Run then fails
	// with ErrCoordinatorUnreachable. Default 10 minutes.
	JoinTimeout time.Duration
	// WarnEvery is how often a wait is reported at Warn level; default 10s.
	WarnEvery time.Duration
	// Collaborators, for embedding and tests; each nil field is built from
	// the addresses above. The worker closes what it is given.
	//
	// RingTransport carries the allreduce instead of the job's
	// cluster.ring_transport on RingListen; its Addr is advertised.
	RingTransport RingTransport
	// PeerListener serves the state-transfer service instead of a TCP
	// listener on PeerListen.
	PeerListener net.Listener
	// Dialer reaches the coordinator and the peers' state services.
	Dialer cluster.Dialer
	// Membership starts this worker's member of the cluster's membership
	// when Gossip is set (nil: memberlist, cluster.StartGossip).
	Membership cluster.StartMembership
	Log        *zap.Logger
}

// ErrRunNotOver reports a worker stopped before its run ended (the run
// was interrupted, or this worker was let go): a supervisor should start
// it again, to rejoin when the coordinator is back.
var ErrRunNotOver = errors.New("stopped before the run ended")

// ErrCoordinatorUnreachable reports that the coordinator did not answer
// within WorkerConfig.JoinTimeout: worth retrying later.
var ErrCoordinatorUnreachable = errors.New("coordinator unreachable")

// Validate reports a missing field.
func (c *WorkerConfig) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("worker: no id")
	case c.Coordinator == "":
		return errors.New("worker: no coordinator address")
	case len(c.Secret) < 16:
		return fmt.Errorf("worker: the cluster key has %d bytes, need at least 16 (recur keygen)", len(c.Secret))
	case c.JoinTimeout < 0 || c.Retry < 0 || c.WarnEvery < 0:
		return errors.New("worker: join timeout, retry and warn intervals must not be negative")
	}
	return nil
}

func (c *WorkerConfig) defaults() {
	if c.RingListen == "" {
		c.RingListen = "127.0.0.1:0"
	}
	if c.PeerListen == "" {
		c.PeerListen = "127.0.0.1:0"
	}
	if c.GossipListen == "" {
		c.GossipListen = "127.0.0.1:0"
	}
	if c.Retry == 0 {
		c.Retry = 500 * time.Millisecond
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 10 * time.Minute
	}
	if c.WarnEvery == 0 {
		c.WarnEvery = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.Membership == nil {
		c.Membership = cluster.StartGossip
	}
}

// RingTransport is a worker's allreduce endpoint: it dials and accepts
// ring links, and is reachable by the others at Addr.
type RingTransport interface {
	allreduce.Transport
	Addr() string
	Close() error
}

// newRingTransport serves lis with the job's ring transport, secured as
// every other connection (sec: mutual TLS, unless insecure).
func newRingTransport(kind string, lis net.Listener, secret []byte, sec *cluster.Security, m *allreduce.Metrics) (RingTransport, error) {
	if kind == job.RingTCP {
		cfg := allreduce.TCPConfig{Listener: lis, Secret: secret, Metrics: m}
		if !sec.Insecure() {
			cfg.ServerHandshake, cfg.ClientHandshake = sec.HandshakeServer, sec.HandshakeClient
		}
		return allreduce.NewTCPTransport(cfg)
	}
	return allreduce.NewGRPCTransport(allreduce.GRPCConfig{Listener: lis, Secret: secret, Metrics: m,
		ServerCredentials: sec.ServerCredentials(), ClientCredentials: sec.ClientCredentials()})
}

// startRing serves the ring listener with the job's transport, once.
func (w *Worker) startRing(kind string) error {
	w.ringMu.Lock()
	defer w.ringMu.Unlock()
	if w.ringClosed {
		return allreduce.ErrClosed
	}
	if w.ring != nil {
		return nil
	}
	if w.cfg.RingTransport != nil {
		w.ring = w.cfg.RingTransport
		return nil
	}
	tr, err := newRingTransport(kind, w.ringLis, cluster.RingKey(w.cfg.Secret), w.sec, w.Metrics.Ring())
	if err != nil {
		return fmt.Errorf("worker %s: ring transport: %w", w.cfg.ID, err)
	}
	w.ring = tr
	return nil
}

// Worker trains its share of every global batch in the rings the
// coordinator forms.
type Worker struct {
	cfg     WorkerConfig
	ringLis net.Listener
	// ring serves ringLis with the job's transport (cluster.ring_transport)
	// from the first join on; ringMu guards it against Close.
	ringMu     sync.Mutex
	ring       RingTransport
	ringClosed bool
	peerLis    net.Listener
	peer       *grpc.Server
	conn       *grpc.ClientConn
	ctl        controlpb.ControlClient
	// eng is the job's state; Run replaces it when the coordinator's job
	// changes, while the peer server reads it: engMu guards the pointer.
	engMu   sync.Mutex
	eng     *engine
	r       *allreduce.Ring
	gossip  cluster.Membership
	sec     *cluster.Security
	log     *zap.Logger
	stop    context.CancelFunc // ends Run
	stopCtx context.Context
	running sync.WaitGroup
	// brokenGen is the last generation whose ring failed here.
	brokenGen uint64
	// incarnation is random per process: the coordinator tells a restarted
	// process from the one it replaces.
	incarnation string
	// member: the last plan put this worker in a generation and its last
	// action there succeeded (readiness).
	member atomic.Bool
	// Metrics are the worker's Prometheus metrics (serve Metrics.Handler).
	Metrics *Metrics
}

// InGeneration reports whether the worker is a working member of a ring
// generation: its last plan was to sync, get ready or run, and that
// succeeded. Spares, waiting and failed workers are not.
func (w *Worker) InGeneration() bool { return w.member.Load() }

// NewWorker opens the worker's listeners.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	w := &Worker{cfg: cfg, log: cfg.Log.With(zap.String("worker", cfg.ID)), incarnation: newIncarnation(), sec: cfg.Security, Metrics: NewMetrics(cfg.ID)}
	if w.sec == nil {
		var err error
		if w.sec, err = cluster.NewSecurity(cluster.SecurityConfig{Secret: cfg.Secret, Name: "worker " + cfg.ID, Log: cfg.Log}); err != nil {
			return nil, fmt.Errorf("worker %s: %w", cfg.ID, err)
		}
	}
	w.stopCtx, w.stop = context.WithCancel(context.Background())
	var err error
	if cfg.RingTransport == nil {
		if w.ringLis, err = net.Listen("tcp", cfg.RingListen); err != nil {
			return nil, fmt.Errorf("worker %s: ring listener: %w", cfg.ID, err)
		}
	}
	if w.peerLis = cfg.PeerListener; w.peerLis == nil {
		if w.peerLis, err = net.Listen("tcp", cfg.PeerListen); err != nil {
			if w.ringLis != nil {
				w.ringLis.Close()
			}
			return nil, fmt.Errorf("worker %s: peer listener: %w", cfg.ID, err)
		}
	}
	auth := cluster.NewAuthenticator(cfg.Secret)
	adm, opts, err := auth.Admit(w.peerLis, w.sec)
	if err != nil {
		w.peerLis.Close()
		if w.ringLis != nil {
			w.ringLis.Close()
		}
		return nil, fmt.Errorf("worker %s: %w", cfg.ID, err)
	}
	w.peerLis = adm
	w.peer = grpc.NewServer(opts...)
	controlpb.RegisterPeerServer(w.peer, &cluster.StateServer{StateAt: func(step int64) (string, []byte, error) {
		e := w.engine()
		if e == nil {
			return "", nil, errors.New("worker has no state yet")
		}
		b, err := e.stateAt(step)
		return e.hash, b, err
	}})
	go w.peer.Serve(w.peerLis)
	if w.conn, err = cluster.NewClient(cfg.Coordinator, w.sec, cfg.Dialer); err != nil {
		w.Close()
		return nil, fmt.Errorf("worker %s: %w", cfg.ID, err)
	}
	w.ctl = controlpb.NewControlClient(w.conn)
	if cfg.Gossip != "" {
		if w.gossip, err = cfg.Membership(cluster.MembershipConfig{Name: cfg.ID, Bind: cfg.GossipListen, Advertise: cfg.Advertise,
			Secret: cfg.Secret, Meta: w.incarnation, Log: w.log}); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Model returns the model the worker trains (nil before the first
// join). Read it only when Run is not training (before it starts or after
// it returned): a step in progress changes it.
func (w *Worker) Model() *rnn.Model[float32] {
	if e := w.engine(); e != nil {
		return e.model
	}
	return nil
}

// Job returns the job whose state the worker holds, and its hash (false
// before the first join).
func (w *Worker) Job() (job.Config, string, bool) {
	e := w.engine()
	if e == nil {
		return job.Config{}, "", false
	}
	return e.job, e.hash, true
}

// engine returns the current engine (nil before the first join).
func (w *Worker) engine() *engine {
	w.engMu.Lock()
	defer w.engMu.Unlock()
	return w.eng
}

func (w *Worker) setEngine(e *engine) {
	w.engMu.Lock()
	defer w.engMu.Unlock()
	w.eng = e
}

// newIncarnation returns a random token naming this process.
func newIncarnation() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close stops the worker: Run returns, the servers stop, the worker
// leaves the membership.
func (w *Worker) Close() error { return w.close(true) }

// Crash stops the worker as kill -9 would, for fault injection: like
// Close, but it does not leave the membership, so the others must detect
// that it is gone.
func (w *Worker) Crash() error { return w.close(false) }

func (w *Worker) close(leave bool) error {
	w.stop()
	if w.gossip != nil {
		if leave {
			w.gossip.Leave()
		} else {
			w.gossip.Stop()
		}
	}
	if w.peer != nil {
		w.peer.Stop()
	}
	w.ringMu.Lock()
	w.ringClosed = true
	var err error
	switch {
	case w.ring != nil:
		err = w.ring.Close()
	case w.cfg.RingTransport != nil:
		err = w.cfg.RingTransport.Close()
	default:
		err = w.ringLis.Close()
	}
	w.ringMu.Unlock()
	if w.conn != nil {
		w.conn.Close()
	}
	w.running.Wait() // Run owns the ring and the engine until it returns
	if w.r != nil {
		w.r.Close()
	}
	if e := w.engine(); e != nil {
		e.close()
	}
	return err
}

// Run joins the cluster and trains until the coordinator says stop or ctx
// ends.
func (w *Worker) Run(ctx context.Context) error {
	w.running.Add(1)
	defer w.running.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.stopCtx, cancel)
	defer stop()
	if w.gossip != nil {
		go w.keepGossip(ctx)
	}
	if err := w.join(ctx); err != nil {
		return err
	}
	rep := &controlpb.StepReport{WorkerId: w.cfg.ID, StateStep: w.eng.step, StateCrc: w.eng.checksum(), Step: -1}
	w.Metrics.observeState(rep.StateStep, rep.StateCrc)
	var waited time.Duration
	for {
		t0 := time.Now()
		plan, err := w.next(ctx, rep)
		if err != nil {
			return err
		}
		waited = time.Since(t0)
		rep = &controlpb.StepReport{WorkerId: w.cfg.ID, Generation: plan.Generation, Step: -1, WaitSeconds: waited.Seconds()}
		switch plan.Action {
		case controlpb.StepPlan_STOP:
			w.member.Store(false)
			w.log.Info("stop", zap.String("reason", plan.Reason), zap.String("outcome", plan.Outcome), zap.Int64("step", w.eng.step))
			if plan.Outcome == planner.Finished.String() || plan.Outcome == planner.Diverged.String() {
				return nil // the run is over: nothing to retry
			}
			return fmt.Errorf("worker %s: %w: %s (%s)", w.cfg.ID, ErrRunNotOver, plan.Reason, plan.Outcome)
		case controlpb.StepPlan_WAIT:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(w.cfg.Retry):
			}
		case controlpb.StepPlan_SYNC, controlpb.StepPlan_READY:
			if err := w.prepare(ctx, plan); err != nil {
				w.log.Warn("sync failed", zap.Error(err))
				rep.Failed, rep.Error = true, err.Error()
				select { // do not spin if the coordinator insists
				case <-ctx.Done():
				case <-time.After(w.cfg.Retry):
				}
			} else {
				rep.Ready = true
			}
		case controlpb.StepPlan_RUN:
			w.runStep(ctx, plan, rep)
		}
		w.member.Store(plan.Action != controlpb.StepPlan_WAIT && !rep.Failed)
		rep.StateStep, rep.StateCrc = w.eng.step, w.eng.checksum()
		w.Metrics.observeState(rep.StateStep, rep.StateCrc)
	}
}

// join registers with the coordinator (retrying until it answers) and
// builds the engine from the job it sends.
func (w *Worker) join(ctx context.Context) error {
	w.ensureGossip()
	req := &controlpb.JoinRequest{WorkerId: w.cfg.ID, RingAddr: w.ringAddr(), PeerAddr: w.advertised(w.peerLis.Addr().String()),
		Version: cluster.ProtocolVersion, Incarnation: w.incarnation}
	if e := w.engine(); e != nil {
		req.ConfigHash = e.hash
	}
	wait := w.newWait("joining the coordinator at " + w.cfg.Coordinator)
	for {
		rep, err := w.ctl.Join(ctx, req)
		if err == nil {
			// The coordinator is up now: be known to its failure detector at
			// once. A restarted coordinator takes its predecessor's name and
			// address, so this worker's gossip never missed it and would
			// not join again; the new one would learn of this worker only
			// from a periodic push-pull, and miss its death meanwhile.
			w.joinGossip()
			return w.adopt(rep, req)
		}
		if c := status.Code(err); c == codes.PermissionDenied || c == codes.Unauthenticated || c == codes.InvalidArgument {
			return fmt.Errorf("worker %s: join refused: %s", w.cfg.ID, status.Convert(err).Message())
		}
		if err := tlsRefusal(w.cfg.Coordinator, err); err != nil {
			return fmt.Errorf("worker %s: %w", w.cfg.ID, err)
		}
		if err := wait.retry(ctx, err); err != nil {
			return err
		}
	}
}

// adopt takes the job of a join reply: a first join builds the engine; a
// rejoin (the coordinator restarted) keeps the state when the job is the
// same, and drops it for the new job's when it is not, so that no state of
// another job is ever trained on.
func (w *Worker) adopt(rep *controlpb.JoinReply, req *controlpb.JoinRequest) error {
	var jc job.Config
	if err := json.Unmarshal(rep.ConfigJson, &jc); err != nil {
		return fmt.Errorf("worker %s: job from coordinator: %w", w.cfg.ID, err)
	}
	old := w.engine()
	if old != nil && old.job.Cluster.RingTransport != jc.Cluster.RingTransport {
		return fmt.Errorf("worker %s: the coordinator's job uses the %q ring transport, this process serves %q: restart the worker",
			w.cfg.ID, jc.Cluster.RingTransport, old.job.Cluster.RingTransport)
	}
	if old != nil && old.hash == jc.Hash() {
		// Rejoined after a coordinator restart: keep the state, and take
		// the policy a resumed run may change (compression, clip, ...).
		if reflect.DeepEqual(old.job, jc) {
			return nil
		}
		w.log.Info("the coordinator's job changed its policy: adopting it, keeping the state", zap.Int64("step", old.step))
		return old.setPolicy(jc)
	}
	if old != nil {
		w.log.Warn("the coordinator runs another job: dropping this worker's state", zap.String("held_job", old.hash), zap.Int64("held_step", old.step),
			zap.String("new_job", jc.Hash()), zap.String("differs", job.Diff(old.job, jc)))
	}
	if err := w.startRing(jc.Cluster.RingTransport); err != nil {
		return err
	}
	e, err := newEngine(jc)
	if err != nil {
		return fmt.Errorf("worker %s: %w", w.cfg.ID, err)
	}
	if w.r != nil {
		w.r.Close()
		w.r = nil
	}
	w.setEngine(e)
	if old != nil {
		old.close()
	}
	w.log.Info("joined", zap.String("coordinator", w.cfg.Coordinator), zap.String("job", e.hash), zap.String("ring", req.RingAddr), zap.String("ring_transport", jc.Cluster.RingTransport), zap.String("peer", req.PeerAddr),
		zap.String("blas", rnn.BLASBackend+" "+rnn.BLASKernels()))
	return nil
}

// tlsRefusal turns a failed TLS handshake with the coordinator into a
// permanent error saying why (another cluster key or CA, plaintext on one
// side): retrying cannot help. Other errors give nil.
func tlsRefusal(addr string, err error) error {
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unavailable || !strings.Contains(msg, cluster.RefusedMarker) {
		return nil // not a TLS refusal, or one a retry may mend (a connection cut mid-handshake)
	}
	return fmt.Errorf("TLS with the coordinator at %s failed: it holds another cluster key or CA, or runs with --insecure while this process does not (or the reverse): %s", addr, msg)
}

// patience reports a wait at Warn level every WarnEvery and ends it with
// ErrCoordinatorUnreachable after JoinTimeout.
type patience struct {
	w          *Worker
	what       string
	start      time.Time
	lastWarned time.Time
}

func (w *Worker) newWait(what string) *patience {
	return &patience{w: w, what: what, start: time.Now()} // the first failure is reported at once
}

// retry pauses before the next attempt after err; it fails once the
// deadline has passed or ctx ends.
func (wt *patience) retry(ctx context.Context, err error) error {
	w := wt.w
	waited := time.Since(wt.start)
	if waited >= w.cfg.JoinTimeout {
		return fmt.Errorf("worker %s: %w: %s for %v: %v", w.cfg.ID, ErrCoordinatorUnreachable, wt.what, w.cfg.JoinTimeout, err)
	}
	if time.Since(wt.lastWarned) >= w.cfg.WarnEvery {
		wt.lastWarned = time.Now()
		w.log.Warn("waiting: "+wt.what, zap.Duration("waited", waited.Round(time.Second)),
			zap.Duration("gives_up_in", (w.cfg.JoinTimeout-waited).Round(time.Second)), zap.Error(err))
	} else {
		w.log.Debug("coordinator not reachable", zap.Error(err))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(w.cfg.Retry):
		return nil
	}
}

// ensureGossip joins the gossip through the configured address unless the
// coordinator is already among the members (it may have restarted, or not
// have been up at the first attempt).
func (w *Worker) ensureGossip() {
	if w.gossip == nil {
		return
	}
	if _, ok := w.gossip.Coordinator(); ok {
		return
	}
	w.joinGossip()
}

// joinGossip joins the gossip through the configured address (an exchange
// of the member lists with the coordinator's).
func (w *Worker) joinGossip() {
	if w.gossip == nil {
		return
	}
	if err := w.gossip.Join(w.cfg.Gossip); err != nil {
		w.log.Debug("gossip join", zap.Error(err))
	}
}

// keepGossip rejoins the gossip whenever the coordinator is missing from it.
func (w *Worker) keepGossip(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.ensureGossip()
		}
	}
}

// next reports and waits for the next plan, riding out coordinator
// restarts: it retries while the coordinator is away and joins again when
// the coordinator no longer knows it.
func (w *Worker) next(ctx context.Context, rep *controlpb.StepReport) (*controlpb.StepPlan, error) {
	var wait *patience
	for {
		plan, err := w.ctl.Step(ctx, rep)
		if err == nil {
			return plan, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch status.Code(err) {
		case codes.FailedPrecondition:
			if err := w.join(ctx); err != nil {
				return nil, err
			}
			// The join may have replaced the state (another job): report
			// what this process holds now.
			rep.StateStep, rep.StateCrc = w.eng.step, w.eng.checksum()
			continue
		case codes.Unauthenticated, codes.PermissionDenied:
			return nil, fmt.Errorf("worker %s: %s", w.cfg.ID, status.Convert(err).Message())
		}
		if err := tlsRefusal(w.cfg.Coordinator, err); err != nil {
			return nil, fmt.Errorf("worker %s: %w", w.cfg.ID, err)
		}
		if wait == nil {
			wait = w.newWait("the coordinator at " + w.cfg.Coordinator + " stopped answering")
		}
		if err := wait.retry(ctx, err); err != nil {
			return nil, err
		}
	}
}

// Addrs returns the addresses the worker advertises: its ring endpoint
// and its state-transfer service.
func (w *Worker) Addrs() (ring, peer string) {
	return w.ringAddr(), w.advertised(w.peerLis.Addr().String())
}

// ringAddr is the address ring neighbours dial.
func (w *Worker) ringAddr() string {
	if w.cfg.RingTransport != nil {
		return w.cfg.RingTransport.Addr()
	}
	return w.advertised(w.ringLis.Addr().String())
}

// advertised is the address peers dial for a listener bound to addr: addr
// itself, or, when it is bound to every interface (0.0.0.0, ::), the same
// port on this machine's IP, so a worker in a container can listen on
// 0.0.0.0 and still be reachable by the others. --advertise overrides the
// host.
func (w *Worker) advertised(addr string) string {
	if w.cfg.Advertise != "" {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			return net.JoinHostPort(w.cfg.Advertise, port)
		}
		return addr
	}
	return cluster.Reachable(addr, w.gossipIP())
}

// gossipIP is the IP memberlist advertises for this worker (it picks a
// private IP when bound to 0.0.0.0), nil without gossip.
func (w *Worker) gossipIP() net.IP {
	if w.gossip != nil {
		if ip := w.gossip.LocalIP(); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			return ip
		}
	}
	return nil
}

// prepare brings the state to plan.Step (fetching it when told) and keeps
// a snapshot so peers can fetch it too.
func (w *Worker) prepare(ctx context.Context, plan *controlpb.StepPlan) error {
	if plan.Action == controlpb.StepPlan_SYNC {
		t0 := time.Now()
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		b, err := cluster.FetchState(fctx, w.cfg.Dialer, plan.SyncFrom, w.sec, plan.Step, w.eng.hash)
		cancel()
		if err != nil {
			return err
		}
		if err := w.eng.load(b); err != nil {
			return err
		}
		w.Metrics.observeSync(time.Since(t0))
		w.log.Info("synced", zap.Int64("step", plan.Step), zap.String("from", plan.SyncFrom), zap.Int("bytes", len(b)), zap.Duration("took", time.Since(t0)))
	}
	if w.eng.step != plan.Step {
		return fmt.Errorf("holds step %d, generation %d starts at %d", w.eng.step, plan.Generation, plan.Step)
	}
	return w.eng.snapshot()
}

// runStep runs one step of plan, filling rep.
func (w *Worker) runStep(ctx context.Context, plan *controlpb.StepPlan, rep *controlpb.StepReport) {
	rep.Step = plan.Step
	fail := func(err error, _ string) {
		w.Metrics.observeFailedStep()
		rep.Failed, rep.Error = true, err.Error()
		var pe *allreduce.PeerError
		if errors.As(err, &pe) && pe.Rank >= 0 {
			rep.FailedPeer, rep.FailedOp = pe.ID, pe.Op
		}
		w.log.Warn("step failed", zap.Int64("step", plan.Step), zap.Uint64("generation", plan.Generation), zap.Error(err))
	}
	if w.eng.step != plan.Step {
		fail(fmt.Errorf("holds step %d, plan runs %d", w.eng.step, plan.Step), "")
		return
	}
	if err := w.ensureRing(ctx, plan); err != nil {
		var pe *allreduce.PeerError
		peer := ""
		if errors.As(err, &pe) {
			peer = pe.Error()
		}
		fail(err, peer)
		return
	}
	if plan.Snapshot {
		if err := w.eng.snapshot(); err != nil {
			fail(err, "")
			return
		}
	}
	if plan.Validate {
		t0 := time.Now()
		s, c, n, err := w.eng.validate(int(plan.ValBatches))
		if err != nil {
			fail(err, "")
			return
		}
		rep.ValLossSum, rep.ValCount = s, c
		rep.ValSeconds, rep.ValBatches = time.Since(t0).Seconds(), int32(n)
	}
	t0 := time.Now()
	res, err := w.eng.run(ctx, w.r, plan.Lr)
	if err != nil {
		var pe *allreduce.PeerError
		peer := ""
		if errors.As(err, &pe) {
			peer = pe.Error()
		}
		w.r.Close()
		w.r = nil
		w.brokenGen = plan.Generation
		fail(err, peer)
		return
	}
	rep.LossSum, rep.LossCount = res.lossSum, res.count
	rep.Skipped, rep.SkipReason = res.skipped, res.skipReason
	if res.skipped {
		w.log.Warn("step skipped: non-finite values", zap.Int64("step", plan.Step), zap.String("where", res.skipReason))
	}
	took := time.Since(t0)
	w.Metrics.observeStep(res, took)
	w.Metrics.observeBuckets(res.calls)
	rep.StepSeconds = took.Seconds()
	rep.AllreduceSeconds = res.allreduce.Seconds()
	rep.Busbw = res.busbw
}

// ensureRing joins the plan's ring generation if not already in it.
func (w *Worker) ensureRing(ctx context.Context, plan *controlpb.StepPlan) error {
	if w.r != nil && w.r.Generation() == plan.Generation {
		if err := w.r.Err(); err != nil {
			// A ring is formed once per generation: a broken one means
			// the generation is over; the coordinator forms the next.
			w.r.Close()
			w.r = nil
			w.brokenGen = plan.Generation
			return err
		}
		return nil
	}
	if w.brokenGen == plan.Generation {
		return fmt.Errorf("the ring of generation %d already failed here", plan.Generation)
	}
	if w.r != nil {
		w.r.Close()
		w.r = nil
	}
	members := make([]allreduce.Member, len(plan.Members))
	for i, m := range plan.Members {
		members[i] = allreduce.Member{ID: m.Id, Addr: m.RingAddr}
	}
	timeout := time.Duration(w.eng.job.Cluster.AllreduceTimeoutMS) * time.Millisecond
	r, err := allreduce.New(ctx, allreduce.Config{Rank: int(plan.Rank), Members: members, Generation: plan.Generation, Timeout: timeout,
		Metrics: w.Metrics.Ring()}, w.ring)
	if err != nil {
		return err
	}
	w.r = r
	w.Metrics.observeRing(plan.Generation, int(plan.Rank), len(plan.Members))
	return w.eng.setRing(int(plan.Rank), len(plan.Members))
}
