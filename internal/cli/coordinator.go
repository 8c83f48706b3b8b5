package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/netutil"

	"github.com/recur-ml/recur/internal/affinity"
	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/coordinator"
	"github.com/recur-ml/recur/internal/dashboard"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/planner"
	"github.com/recur-ml/recur/internal/worker"
)

// jobFlags are the flags that build a job: a config file and overrides.
type jobFlags struct {
	config string
	sets   setFlag
}

func (j *jobFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&j.config, "config", "", "job config file (YAML); defaults apply to what it leaves out")
	fs.Var(&j.sets, "set", "override a config key, e.g. --set model.hidden=128 (repeatable; also env RECUR_MODEL_HIDDEN=128)")
}

func (j *jobFlags) load() (job.Config, error) {
	jc := job.Default()
	if j.config != "" {
		var err error
		if jc, err = job.Load(j.config); err != nil {
			return jc, err
		}
	}
	if err := applyOverrides(&jc, j.sets); err != nil {
		return jc, err
	}
	return jc, jc.Validate()
}

// Coordinator runs `recur coordinator`.
func Coordinator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur coordinator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var jf jobFlags
	jf.register(fs)
	listen := fs.String("listen", "127.0.0.1:7070", "control and state-transfer gRPC address")
	gossip := fs.String("gossip", "127.0.0.1:7946", `memberlist address workers join ("off" disables failure detection by gossip)`)
	dir := fs.String("dir", "runs/recur", "directory of checkpoints, job.json, vocab.json, loss.png")
	metrics := fs.String("metrics", "127.0.0.1:9090", `address of the dashboard (/), Prometheus /metrics and /healthz; plain HTTP, no key needed ("" disables)`)
	advertise := fs.String("advertise", "", "host workers use to reach this coordinator (set it when --listen is 0.0.0.0)")
	fresh := fs.Bool("fresh", false, "ignore existing checkpoints in --dir (the default resumes from the newest good one)")
	initFile := fs.String("init", "", initFlagHelp)
	keyFile := fs.String("key-file", "", "file holding the cluster key (default: env RECUR_CLUSTER_KEY)")
	startWorkers := fs.Int("start-workers", 0, "workers the first step waits for (default: cluster.min_workers)")
	stopTimeout := fs.Duration("stop-timeout", 2*time.Minute, "after SIGINT/SIGTERM, how long to wait for the step in flight and the final checkpoint")
	stall := fs.Duration("stall-timeout", 10*time.Minute, "/healthz fails when no step completes for this long while the run is on (0: never)")
	var lf logFlags
	lf.register(fs)
	var sf securityFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recur coordinator [flags]\n\nRuns the coordinator of a training job: membership, ring generations, learning rate,\nvalidation and checkpoints. Workers join with `recur worker --coordinator ADDR --gossip ADDR`.\n\n"+
			"SIGINT or SIGTERM stops the run at the next step boundary with a final checkpoint (exit %d);\nthe same command resumes it. Exit codes: %s.\n\n", ExitInterrupted, exitCodesHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	jc, err := jf.load()
	if err != nil {
		return err
	}
	var initSt []byte
	if *initFile != "" {
		if initSt, err = initState(jc, *initFile); err != nil {
			return err
		}
	}
	key, err := clusterKey(*keyFile)
	if err != nil {
		return err
	}
	if err := lf.validate(); err != nil {
		return err
	}
	log := lf.logger(stderr)
	defer log.Sync()
	sec, err := sf.security(key, "coordinator", log)
	if err != nil {
		return err
	}
	c, err := coordinator.NewCoordinator(coordinator.CoordinatorConfig{Job: jc, Listen: *listen, Gossip: *gossip, Dir: *dir, Secret: key, Fresh: *fresh, Init: initSt,
		Advertise: *advertise, StartWorkers: *startWorkers, Security: sec, Log: log})
	if err != nil {
		return err
	}
	defer c.Close()
	if *metrics != "" {
		srv, err := serveMetrics(*metrics, c.Metrics.Handler(), dashboard.Handler(c), func() error { return c.Health(*stall, maxFailedSaves) })
		if err != nil {
			return err
		}
		defer srv.Close()
		log.Info("dashboard and metrics", zap.String("dashboard", "http://"+srv.Addr+"/"), zap.String("metrics", "http://"+srv.Addr+"/metrics"))
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		interrupt(c, *stopTimeout, log)
	}
	// Workers learn how the run ended before the coordinator goes.
	c.Linger(context.Background(), 10*time.Second)
	return runOutcome(c, *dir, log)
}

// interrupt stops the run at the next step boundary and waits, saying so
// every 10 s, for the final checkpoint; a second signal or stopTimeout
// ends the wait (the newest saved checkpoint stays).
func interrupt(c *coordinator.Coordinator, stopTimeout time.Duration, log *zap.Logger) {
	log.Warn("interrupted: stopping at the next step boundary with a final checkpoint (signal again to quit at once)",
		zap.Duration("deadline", stopTimeout))
	c.Stop(planner.Interrupted, "interrupted by a signal")
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	deadline := time.NewTimer(stopTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.Done():
			return
		case <-again:
			log.Warn("second signal: quitting without waiting for the final checkpoint")
			return
		case <-deadline.C:
			log.Warn("no final checkpoint within the stop timeout; quitting", zap.Duration("stop_timeout", stopTimeout))
			return
		case <-tick.C:
			log.Warn("waiting for the step in flight to end and the final checkpoint to be saved")
		}
	}
}

// runOutcome logs how the run ended and returns the error that gives the
// process its exit code.
func runOutcome(c *coordinator.Coordinator, dir string, log *zap.Logger) error {
	o, reason, ckpt := c.Outcome()
	switch o {
	case planner.Finished:
		log.Info("training complete", zap.String("reason", reason), zap.Int64("checkpoint", ckpt), zap.String("dir", dir))
		return nil
	case planner.Diverged:
		return fmt.Errorf("%w: %s; the newest checkpoint (the last good state) is step %d in %s", cluster.ErrDiverged, reason, ckpt, dir)
	}
	return fmt.Errorf("%w (%s); the newest checkpoint is step %d in %s: run the same command to resume", cluster.ErrInterrupted, reason, ckpt, dir)
}

// maxFailedSaves checkpoint saves failing in a row make the coordinator
// unhealthy: the run goes on, but nothing it learns is kept.
const maxFailedSaves = 3

// maxHTTPConns bounds the connections open to a metrics address, which
// needs no key: beyond it, new connections wait to be accepted.
const maxHTTPConns = 64

// serveMetrics serves metrics (nil: none) at /metrics, the dashboard
// (nil: none) at / and health at /healthz: 200 "ok", or 503 with the
// reason. Nothing here needs the cluster key, so connections, request
// headers and the time a request may take are bounded.
func serveMetrics(addr string, metrics, dash http.Handler, health func() error) (*http.Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	if dash != nil {
		mux.Handle("/", dash)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: lis.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	go srv.Serve(netutil.LimitListener(lis, maxHTTPConns))
	return srv, nil
}

// Worker runs `recur worker`.
func Worker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "unique worker id (default: host name and process id)")
	coord := fs.String("coordinator", "127.0.0.1:7070", "the coordinator's control address")
	gossip := fs.String("gossip", "127.0.0.1:7946", `memberlist address to join: the coordinator's or any member's ("" for none)`)
	ringListen := fs.String("ring-listen", "127.0.0.1:0", "allreduce listener address")
	peerListen := fs.String("peer-listen", "127.0.0.1:0", "state-transfer listener address")
	gossipListen := fs.String("gossip-listen", "127.0.0.1:0", "memberlist bind address")
	advertise := fs.String("advertise", "", "host peers use to reach this worker (default: the listen host, or this machine's IP for 0.0.0.0)")
	keyFile := fs.String("key-file", "", "file holding the cluster key (default: env RECUR_CLUSTER_KEY)")
	cpus := fs.String("cpus", os.Getenv("RECUR_WORKER_CPUS"), `pin the worker to these CPUs, e.g. "0" or "2-3" (default: not pinned; env RECUR_WORKER_CPUS)`)
	joinTimeout := fs.Duration("join-timeout", 10*time.Minute, "give up (exit 75) when the coordinator does not answer for this long")
	health := fs.String("health", "", `serve /healthz here: 200 while the worker works in a ring generation, else 503 (readiness; "" disables)`)
	metrics := fs.String("metrics", "", `serve Prometheus /metrics (and /healthz) here: step, compute and allreduce times, the wait on each ring neighbour, bytes ("" disables)`)
	metricsOptional := fs.Bool("metrics-optional", false, "when --metrics cannot listen (its port taken), warn and train on without it instead of exiting (recur train sets it: it picks the ports before the workers start)")
	var lf logFlags
	lf.register(fs)
	var sf securityFlags
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recur worker [flags]\n\nJoins a coordinator, receives the job and trains its share of every global batch.\n"+
			"It exits 0 when the coordinator says the job is over. Exit codes: %s.\n\n", exitCodesHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	key, err := clusterKey(*keyFile)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = defaultID()
	}
	if *joinTimeout <= 0 {
		return fmt.Errorf("%w: worker --join-timeout must be positive, got %v", errUsage, *joinTimeout)
	}
	if err := lf.validate(); err != nil {
		return err
	}
	log := lf.logger(stderr)
	defer log.Sync()
	if *cpus != "" {
		set, err := affinity.Parse(*cpus)
		if err == nil {
			err = affinity.Pin(set)
		}
		if err != nil {
			return fmt.Errorf("worker --cpus: %w", err)
		}
		log.Info("pinned", zap.String("cpus", affinity.Format(set)))
	}
	sec, err := sf.security(key, "worker "+*id, log)
	if err != nil {
		return err
	}
	w, err := worker.NewWorker(worker.WorkerConfig{ID: *id, Coordinator: *coord, Gossip: *gossip, RingListen: *ringListen,
		PeerListen: *peerListen, GossipListen: *gossipListen, Advertise: *advertise, Secret: key, Security: sec, JoinTimeout: *joinTimeout, Log: log})
	if err != nil {
		return err
	}
	defer w.Close()
	ready := func() error {
		if !w.InGeneration() {
			return errors.New("not working in a ring generation")
		}
		return nil
	}
	if *metrics != "" {
		srv, err := serveMetrics(*metrics, w.Metrics.Handler(), nil, ready)
		switch {
		case err != nil && *metricsOptional:
			log.Warn("worker metrics not served: training goes on without them", zap.String("address", *metrics), zap.Error(err))
		case err != nil:
			return err
		default:
			defer srv.Close()
			log.Info("metrics", zap.String("url", "http://"+srv.Addr+"/metrics"))
		}
	}
	if *health != "" && *health != *metrics {
		srv, err := serveMetrics(*health, nil, nil, ready)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	err = w.Run(ctx)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return fmt.Errorf("worker %s: %w by a signal", *id, cluster.ErrInterrupted)
	}
	return err
}
