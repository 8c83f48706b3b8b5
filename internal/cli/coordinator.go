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
	"time"

	"go.uber.org/zap"

	"github.com/recur-ml/recur/internal/affinity"
	"github.com/recur-ml/recur/internal/cluster"
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

func (j *jobFlags) load() (cluster.JobConfig, error) {
	job := cluster.DefaultJob()
	if j.config != "" {
		var err error
		if job, err = cluster.LoadJob(j.config); err != nil {
			return job, err
		}
	}
	if err := applyOverrides(&job, j.sets); err != nil {
		return job, err
	}
	return job, job.Validate()
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
	metrics := fs.String("metrics", "127.0.0.1:9090", `Prometheus /metrics and /healthz address ("" disables)`)
	advertise := fs.String("advertise", "", "host workers use to reach this coordinator (set it when --listen is 0.0.0.0)")
	fresh := fs.Bool("fresh", false, "ignore existing checkpoints in --dir (the default resumes from the newest good one)")
	keyFile := fs.String("key-file", "", "file holding the cluster key (default: env RECUR_CLUSTER_KEY)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recur coordinator [flags]\n\nRuns the coordinator of a training job: membership, ring generations, learning rate,\nvalidation and checkpoints. Workers join with `recur worker --coordinator ADDR --gossip ADDR`.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	job, err := jf.load()
	if err != nil {
		return err
	}
	key, err := clusterKey(*keyFile)
	if err != nil {
		return err
	}
	log := NewLogger(stderr)
	defer log.Sync()
	c, err := cluster.NewCoordinator(cluster.CoordinatorConfig{Job: job, Listen: *listen, Gossip: *gossip, Dir: *dir, Secret: key, Fresh: *fresh, Advertise: *advertise, Log: log})
	if err != nil {
		return err
	}
	defer c.Close()
	if *metrics != "" {
		srv, err := serveMetrics(*metrics, c)
		if err != nil {
			return err
		}
		defer srv.Close()
		log.Info("metrics", zap.String("url", "http://"+srv.Addr+"/metrics"))
	}
	select {
	case <-c.Done():
		log.Info("training complete", zap.String("dir", *dir))
		return nil
	case <-ctx.Done():
		log.Info("stopped; checkpoints are in " + *dir + ", run the same command to resume")
		return nil
	}
}

// serveMetrics serves /metrics and /healthz.
func serveMetrics(addr string, c *cluster.Coordinator) (*http.Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", c.Metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: lis.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
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
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recur worker [flags]\n\nJoins a coordinator, receives the job and trains its share of every global batch.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := clusterKey(*keyFile)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = defaultID()
	}
	log := NewLogger(stderr)
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
	w, err := cluster.NewWorker(cluster.WorkerConfig{ID: *id, Coordinator: *coord, Gossip: *gossip, RingListen: *ringListen,
		PeerListen: *peerListen, GossipListen: *gossipListen, Advertise: *advertise, Secret: key, Log: log})
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
