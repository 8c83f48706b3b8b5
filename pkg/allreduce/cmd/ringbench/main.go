// Command ringbench measures ring allreduce bandwidth between processes:
// run one per rank, each with the same --peers list, and every rank prints
// its timing (rank 0's line is the one to quote). Bandwidths follow
// nccl-tests: algbw = float32 bytes/time, busbw = algbw*2(N-1)/N, also
// when --compression halves what goes on the wire.
//
// Links are secured as workers secure them: mutual TLS 1.3 with
// certificates derived from --secret (the cluster key), the transport's
// link tokens keyed by cluster.RingKey of it. --tls=false measures
// plaintext links, which workers run only with --insecure.
//
//	ringbench --rank 0 --peers 10.77.0.1:7070,10.77.0.2:7070 --floats 10000000 --iters 10 --secret $SECRET
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/pkg/allreduce"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ringbench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	rank       int
	peers      []string
	listen     string
	floats     int
	iters      int
	secret     []byte
	segBytes   int
	comp       allreduce.Compression
	timeout    time.Duration
	join       time.Duration
	transport  string
	tls        bool
	cpuprofile string
}

func parseFlags() (options, error) {
	var o options
	flag.IntVar(&o.rank, "rank", 0, "this process's rank (index into --peers)")
	peers := flag.String("peers", "", "comma-separated host:port of every rank, in ring order")
	flag.StringVar(&o.listen, "listen", "", "listen address (default: this rank's entry in --peers)")
	flag.IntVar(&o.floats, "floats", 10_000_000, "float32 elements per allreduce")
	flag.IntVar(&o.iters, "iters", 10, "timed iterations (after 2 warm-up ones)")
	secret := flag.String("secret", os.Getenv("RECUR_RING_SECRET"), "cluster key, at least 16 bytes (default $RECUR_RING_SECRET)")
	flag.IntVar(&o.segBytes, "segment-bytes", 0, "segment size in bytes (0: library default)")
	comp := flag.String("compression", "none", "wire encoding: none, fp16 or bf16")
	flag.DurationVar(&o.timeout, "timeout", 0, "peer timeout (0: library default)")
	flag.DurationVar(&o.join, "join", time.Minute, "how long to wait for the other ranks to start")
	flag.StringVar(&o.transport, "transport", "grpc", `ring transport: "grpc" (gRPC streams, the workers' default) or "tcp" (plain TCP links)`)
	flag.BoolVar(&o.tls, "tls", true, "mutual TLS 1.3 on every link, certificates derived from --secret as workers do; --tls=false: plaintext")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the timed iterations to this file")
	flag.Parse()

	o.peers = strings.Split(*peers, ",")
	if *peers == "" || o.rank < 0 || o.rank >= len(o.peers) {
		return o, fmt.Errorf("--rank %d not in --peers %q", o.rank, *peers)
	}
	if o.listen == "" {
		o.listen = o.peers[o.rank]
	}
	o.secret = []byte(*secret)
	var err error
	o.comp, err = parseCompression(*comp)
	return o, err
}

// transport is what the ring runs over, closed at the end.
type transport interface {
	allreduce.Transport
	Close() error
}

// newTransport starts this rank's transport as workers start theirs
// (internal/worker newRingTransport): TLS from a cluster.Security on the
// key, link tokens from cluster.RingKey.
func newTransport(o options) (transport, error) {
	sec, err := cluster.NewSecurity(cluster.SecurityConfig{Secret: o.secret, Name: fmt.Sprintf("ringbench rank %d", o.rank), Insecure: !o.tls})
	if err != nil {
		return nil, err
	}
	key := cluster.RingKey(o.secret)
	switch o.transport {
	case "tcp":
		cfg := allreduce.TCPConfig{ListenAddr: o.listen, Secret: key}
		if !sec.Insecure() {
			cfg.ServerHandshake, cfg.ClientHandshake = sec.HandshakeServer, sec.HandshakeClient
		}
		return allreduce.NewTCPTransport(cfg)
	case "grpc":
		return allreduce.NewGRPCTransport(allreduce.GRPCConfig{ListenAddr: o.listen, Secret: key,
			ServerCredentials: sec.ServerCredentials(), ClientCredentials: sec.ClientCredentials()})
	}
	return nil, fmt.Errorf("--transport %q: want grpc or tcp", o.transport)
}

func run() error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	tr, err := newTransport(o)
	if err != nil {
		return err
	}
	defer tr.Close()
	ms := make([]allreduce.Member, len(o.peers))
	for i, a := range o.peers {
		ms[i] = allreduce.Member{ID: fmt.Sprintf("rank%d", i), Addr: a}
	}
	cfg := allreduce.Config{Rank: o.rank, Members: ms, Generation: 1, SegmentBytes: o.segBytes, Timeout: o.timeout, JoinTimeout: o.join}
	ctx := context.Background()
	ring, err := allreduce.New(ctx, cfg, tr)
	if err != nil {
		return err
	}
	defer ring.Close()
	if err := measure(ctx, ring, o); err != nil {
		return err
	}
	// Let the neighbours finish their last call before tearing links down.
	time.Sleep(200 * time.Millisecond)
	return nil
}

// measure runs two warm-up calls and o.iters timed ones, and prints the
// result line.
func measure(ctx context.Context, ring *allreduce.Ring, o options) error {
	buf := make([]float32, o.floats)
	for i := range buf {
		buf[i] = 1
	}
	opts := allreduce.Options{Compression: o.comp}
	for range 2 {
		if _, err := ring.AllReduce(ctx, buf, opts); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if o.cpuprofile != "" {
		stop, err := startProfile(o.cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var waitL, waitR time.Duration
	start, cpu0 := time.Now(), cpuTime()
	for range o.iters {
		res, err := ring.AllReduce(ctx, buf, opts)
		if err != nil {
			return err
		}
		waitL += res.Stats.WaitLeft
		waitR += res.Stats.WaitRight
	}
	iters := float64(o.iters)
	per := time.Since(start).Seconds() / iters
	cpu := (cpuTime() - cpu0).Seconds() / iters
	n := float64(len(o.peers))
	alg := float64(4*o.floats) / per / 1e9
	fmt.Printf("ringbench rank=%d world=%d transport=%s tls=%t bytes=%d compression=%s ms=%.1f algbw_GBps=%.4f busbw_GBps=%.4f cpu_ms=%.1f cpu_pct=%.0f wait_left_ms=%.1f wait_right_ms=%.1f\n",
		o.rank, len(o.peers), o.transport, o.tls, 4*o.floats, o.comp, per*1000, alg, alg*2*(n-1)/n,
		cpu*1000, 100*cpu/per, waitL.Seconds()*1000/iters, waitR.Seconds()*1000/iters)
	return nil
}

// startProfile starts a CPU profile into path; stop ends and closes it.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// cpuTime is the process's user+system CPU time, or 0 where unknown: on
// a shaped link it says how much of a core the ring needs to keep up.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func parseCompression(s string) (allreduce.Compression, error) {
	for _, c := range []allreduce.Compression{allreduce.None, allreduce.FP16, allreduce.BF16} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown compression %q", s)
}
