package worker

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/allreduce"
	"github.com/recur-ml/recur/pkg/rnn"
)

// BenchmarkOverlapStep measures a worker's step on the model of
// ../shared/bench/torch_ddp_charlm.py (embedding 64, 2x512 LSTM, batch 32
// per worker, T=100, Adam, clip 5) in three modes, one step of each per
// iteration so that a change in the machine's load falls on all alike:
//
//	ceiling   the same ranks with the allreduce skipped (a ring of one):
//	          compute only, under the same CPU sharing
//	plain     backward, then the whole gradient in one ring call
//	overlap   gradient buckets reduced while backward runs (cluster.overlap)
//
// It reports each mode's mean and fastest step time, their ratios to the
// ceiling's, rank 0's time to the end of backward (compute_ms), the
// communication each mode waited for after backward (exposed_ms) and its
// ring calls' wall time (ring_ms, which includes waiting for slower peers). Every step begins with a barrier on the ring
// (outside the timing). On a machine shared with other work the fastest
// steps (_min) are the ones to compare.
//
// By default all ranks run in this process over the in-memory transport,
// every link shaped to 1 Gbit/s. Environment:
//
//	RECUR_BENCH_RANKS        ranks (default 4)
//	RECUR_BENCH_TRANSPORT    mem (default), tcp or grpc (loopback, or --peers below)
//	RECUR_BENCH_RATE         mem only: link rate, as tc writes it: 1gbit (default), 100mbit, 0 (unshaped)
//	RECUR_BENCH_TLS          tcp/grpc: 1 (default, as workers run) or 0 (plaintext)
//	RECUR_BENCH_COMPRESSION  wire encodings to run, comma-separated (default none,fp16)
//	RECUR_BENCH_MODES        modes to run (default ceiling,plain,overlap)
//	RECUR_BENCH_BUCKET_BYTES cluster.bucket_bytes (default the job's, 1048576; 0: one per layer)
//	RECUR_BENCH_HIDDEN, _LAYERS, _BATCH (per rank), _SEQ, _THREADS   the model (512, 2, 32, 100, 1)
//	RECUR_BENCH_TIMEOUT_MS   the ring's peer timeout (default 60000: ranks that share a
//	                         loaded machine drift apart by seconds; workers use 5000)
//	RECUR_DATA               directory holding tinyshakespeare.txt (else generated text)
//
// One process per rank, e.g. one per network namespace of
// scripts/netns_bench.sh: build the test binary (go test -c -tags openblas
// -o stepbench ./internal/worker) and run in each namespace
//
//	RECUR_BENCH_PEERS=10.77.0.1:7080,10.77.0.2:7080,... RECUR_BENCH_RANK=i \
//	  RECUR_BENCH_TRANSPORT=tcp ./stepbench -test.run '^$' -test.bench OverlapStep -test.benchtime 5x
//
// with the same peers and flags everywhere (a fixed -test.benchtime=Nx, so
// every rank runs the same steps); rank 0's figures are the ones to quote.
func BenchmarkOverlapStep(b *testing.B) {
	bc, err := stepBenchFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	if bc.peers != nil {
		if bt := flag.Lookup("test.benchtime"); bt == nil || !strings.HasSuffix(bt.Value.String(), "x") {
			b.Fatal("RECUR_BENCH_PEERS needs a fixed -test.benchtime=Nx: every rank must run the same steps")
		}
	}
	rnn.SetBLASThreads(1)
	sb := bc.setUp(b)
	defer sb.close()
	for _, comp := range bc.comps {
		b.Run(fmt.Sprintf("ranks-%d/%s/wire-%s", bc.world, bc.linkName(), comp), func(b *testing.B) {
			sb.measure(b, comp)
		})
	}
}

// stepBench is the benchmark's configuration (from the environment).
type stepBench struct {
	world     int
	transport string
	rate      float64 // bytes per second, mem only; 0: unshaped
	rateName  string
	tls       bool
	comps     []string
	modes     []string
	bucket    int64
	peers     []string // one process per rank: every rank's address
	rank      int      // with peers: this process's rank
	jc        job.Config
}

func stepBenchFromEnv() (*stepBench, error) {
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	num := func(k string, def int) (int, error) {
		v, err := strconv.Atoi(env(k, strconv.Itoa(def)))
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%s: want a number >= 0, got %q", k, os.Getenv(k))
		}
		return v, nil
	}
	bc := &stepBench{transport: env("RECUR_BENCH_TRANSPORT", "mem"), tls: env("RECUR_BENCH_TLS", "1") == "1",
		comps: strings.Split(env("RECUR_BENCH_COMPRESSION", "none,fp16"), ","),
		modes: strings.Split(env("RECUR_BENCH_MODES", "ceiling,plain,overlap"), ",")}
	var err error
	if bc.world, err = num("RECUR_BENCH_RANKS", 4); err != nil {
		return nil, err
	}
	bucket, err := num("RECUR_BENCH_BUCKET_BYTES", job.DefaultBucketBytes)
	if err != nil {
		return nil, err
	}
	bc.bucket = int64(bucket)
	bc.rateName = env("RECUR_BENCH_RATE", "1gbit")
	if bc.rate, err = parseRate(bc.rateName); err != nil {
		return nil, fmt.Errorf("RECUR_BENCH_RATE: %w", err)
	}
	if p := os.Getenv("RECUR_BENCH_PEERS"); p != "" {
		bc.peers = strings.Split(p, ",")
		bc.world = len(bc.peers)
		if bc.rank, err = num("RECUR_BENCH_RANK", 0); err != nil || bc.rank >= bc.world {
			return nil, fmt.Errorf("RECUR_BENCH_RANK %q: want a rank of the %d peers", os.Getenv("RECUR_BENCH_RANK"), bc.world)
		}
		if bc.transport == "mem" {
			return nil, fmt.Errorf("RECUR_BENCH_PEERS needs RECUR_BENCH_TRANSPORT tcp or grpc")
		}
	}
	if bc.transport != "mem" && bc.transport != job.RingTCP && bc.transport != job.RingGRPC {
		return nil, fmt.Errorf("RECUR_BENCH_TRANSPORT %q: want mem, tcp or grpc", bc.transport)
	}
	for _, m := range bc.modes {
		if m != "ceiling" && m != "plain" && m != "overlap" {
			return nil, fmt.Errorf("RECUR_BENCH_MODES: unknown mode %q (want ceiling, plain, overlap)", m)
		}
	}
	jc := job.Default()
	jc.Model = job.ModelConfig{Cell: "lstm", Hidden: 512, Layers: 2, Embed: 64}
	jc.Data.Seq, jc.Data.Batch = 100, 32
	jc.Train.Steps, jc.Train.Threads, jc.Train.Clip = 1<<30, 1, 5
	for _, k := range []struct {
		key string
		dst *int
	}{{"RECUR_BENCH_HIDDEN", &jc.Model.Hidden}, {"RECUR_BENCH_LAYERS", &jc.Model.Layers}, {"RECUR_BENCH_BATCH", &jc.Data.Batch},
		{"RECUR_BENCH_SEQ", &jc.Data.Seq}, {"RECUR_BENCH_THREADS", &jc.Train.Threads}} {
		if *k.dst, err = num(k.key, *k.dst); err != nil {
			return nil, err
		}
	}
	if jc.Cluster.AllreduceTimeoutMS, err = num("RECUR_BENCH_TIMEOUT_MS", 60000); err != nil {
		return nil, err
	}
	jc.Data.Batch *= bc.world
	jc.Cluster.MinWorkers, jc.Cluster.BucketBytes = bc.world, bc.bucket
	jc.Cluster.MemoryLimit = "64GB"
	bc.jc = jc
	return bc, nil
}

// parseRate reads a tc-style rate ("1gbit", "100mbit", "0") as bytes/s.
func parseRate(s string) (float64, error) {
	mult := map[string]float64{"gbit": 1e9 / 8, "mbit": 1e6 / 8, "kbit": 1e3 / 8}
	for suf, m := range mult {
		if v, ok := strings.CutSuffix(s, suf); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return 0, fmt.Errorf("bad rate %q", s)
			}
			return f * m, nil
		}
	}
	if s == "0" {
		return 0, nil
	}
	return 0, fmt.Errorf("bad rate %q: want e.g. 1gbit, 100mbit or 0", s)
}

func (bc *stepBench) linkName() string {
	switch {
	case bc.transport == "mem" && bc.rate > 0:
		return "mem-" + bc.rateName
	case bc.transport == "mem":
		return "mem-unshaped"
	case bc.tls:
		return bc.transport + "-tls"
	}
	return bc.transport
}

// benchSetup is the engines and rings of this process's ranks.
type benchSetup struct {
	bc       *stepBench
	engs     []*engine
	rings    []*allreduce.Ring // the ranks' ring
	solo     []*allreduce.Ring // a ring of one per rank: the ceiling
	closers  []func() error
	memNet   *allreduce.MemNetwork
	barrier  []float32
	ctx      context.Context
	cancelFn context.CancelFunc
}

func (bc *stepBench) setUp(b *testing.B) *benchSetup {
	text := filepath.Join(os.Getenv("RECUR_DATA"), "tinyshakespeare.txt")
	if _, err := os.Stat(text); err != nil || os.Getenv("RECUR_DATA") == "" {
		b.Logf("RECUR_DATA/tinyshakespeare.txt not found: generated text")
		text = overlapCorpus(b)
	}
	bc.jc.Data.Text = text
	sb := &benchSetup{bc: bc}
	sb.ctx, sb.cancelFn = context.WithCancel(context.Background())
	local := []int{bc.rank}
	if bc.peers == nil {
		local = all(bc.world)
	}
	members, trs := sb.transports(b, local)
	sb.rings = make([]*allreduce.Ring, len(local))
	errs := make([]error, len(local))
	var wg sync.WaitGroup
	for k, rank := range local {
		e, err := newEngine(bc.jc)
		if err != nil {
			b.Fatal(err)
		}
		sb.closers = append(sb.closers, e.close)
		if err := e.setRing(rank, bc.world); err != nil {
			b.Fatal(err)
		}
		sb.engs = append(sb.engs, e)
		solo, err := allreduce.New(sb.ctx, allreduce.Config{Rank: 0, Members: members[rank : rank+1], Generation: 1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		sb.solo = append(sb.solo, solo)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb.rings[k], errs[k] = allreduce.New(sb.ctx, allreduce.Config{Rank: rank, Members: members, Generation: 1,
				JoinTimeout: 2 * time.Minute, Timeout: time.Duration(bc.jc.Cluster.AllreduceTimeoutMS) * time.Millisecond}, trs[k])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			sb.close()
			b.Fatal(err)
		}
	}
	// Warm up every mode: the first step allocates the tapes.
	for _, m := range bc.modes {
		if _, err := sb.step(m); err != nil {
			sb.close()
			b.Fatal(err)
		}
	}
	return sb
}

// transports starts the transports of the local ranks and returns every
// rank's member entry.
func (sb *benchSetup) transports(b *testing.B, local []int) ([]allreduce.Member, []allreduce.Transport) {
	bc := sb.bc
	members := make([]allreduce.Member, bc.world)
	trs := make([]allreduce.Transport, len(local))
	for i := range members {
		members[i] = allreduce.Member{ID: fmt.Sprintf("rank%d", i), Addr: fmt.Sprintf("mem-%d", i)}
		if bc.peers != nil {
			members[i].Addr = bc.peers[i]
		}
	}
	if bc.transport == "mem" {
		sb.memNet = allreduce.NewMemNetwork()
		for i := range members {
			next := members[(i+1)%bc.world].Addr
			sb.memNet.SetRate(members[i].Addr, next, bc.rate)
			sb.memNet.SetRate(next, members[i].Addr, bc.rate)
		}
		for k, rank := range local {
			trs[k] = sb.memNet.Node(members[rank].Addr)
		}
		return members, trs
	}
	secret := []byte("recur step benchmark key, not a secret")
	for k, rank := range local {
		addr := "127.0.0.1:0"
		if bc.peers != nil {
			addr = bc.peers[rank]
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		sec, err := cluster.NewSecurity(cluster.SecurityConfig{Secret: secret, Name: members[rank].ID, Insecure: !bc.tls})
		if err != nil {
			b.Fatal(err)
		}
		tr, err := newRingTransport(bc.transport, lis, cluster.RingKey(secret), sec, nil)
		if err != nil {
			b.Fatal(err)
		}
		sb.closers = append(sb.closers, tr.Close)
		members[rank].Addr = lis.Addr().String()
		trs[k] = tr
	}
	return members, trs
}

func (sb *benchSetup) close() {
	sb.cancelFn()
	for _, r := range append(sb.rings, sb.solo...) {
		if r != nil {
			r.Close()
		}
	}
	if sb.memNet != nil {
		sb.memNet.Close()
	}
	for _, c := range sb.closers {
		c()
	}
}

// modeStats accumulates one mode's steps.
type modeStats struct {
	wall, exposed, ring time.Duration
	compute             time.Duration // to the end of backward
	min                 time.Duration // the fastest step: the least disturbed by other load
	steps               int
}

// step runs one step of mode on every local rank, after a barrier, and
// returns its wall time and rank 0's (the first local rank's) result.
func (sb *benchSetup) step(mode string) (stepResult, error) {
	if sb.barrier == nil {
		sb.barrier = make([]float32, len(sb.rings))
	}
	errs := make([]error, len(sb.engs))
	res := make([]stepResult, len(sb.engs))
	var wg sync.WaitGroup
	for k := range sb.engs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[k] = sb.rings[k].AllReduce(sb.ctx, sb.barrier[k:k+1], allreduce.Options{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return stepResult{}, fmt.Errorf("barrier: %w", err)
		}
	}
	for k, e := range sb.engs {
		e.job.Cluster.Overlap = mode == "overlap"
		r := sb.rings[k]
		if mode == "ceiling" {
			r = sb.solo[k]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[k], errs[k] = e.run(sb.ctx, r, 2e-3)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return stepResult{}, fmt.Errorf("%s step: %w", mode, err)
		}
	}
	return res[0], nil
}

func (sb *benchSetup) measure(b *testing.B, comp string) {
	for _, e := range sb.engs {
		e.job.Cluster.Compression = comp
	}
	stats := map[string]*modeStats{}
	for _, m := range sb.bc.modes {
		stats[m] = &modeStats{}
	}
	b.ResetTimer()
	for range b.N {
		for _, m := range sb.bc.modes {
			t0 := time.Now()
			res, err := sb.step(m)
			if err != nil {
				b.Fatal(err)
			}
			s, d := stats[m], time.Since(t0)
			s.wall += d
			if s.min == 0 || d < s.min {
				s.min = d
			}
			s.exposed += res.allreduce
			s.compute += res.compute
			rt, _ := res.ringTime()
			s.ring += rt
			s.steps++
		}
	}
	b.StopTimer()
	ms := func(d time.Duration, n int) float64 { return d.Seconds() * 1e3 / float64(n) }
	for m, s := range stats {
		b.ReportMetric(ms(s.wall, s.steps), m+"_ms")
		b.ReportMetric(ms(s.min, 1), m+"_min_ms")
		b.ReportMetric(ms(s.compute, s.steps), m+"_compute_ms")
		if m != "ceiling" {
			b.ReportMetric(ms(s.exposed, s.steps), m+"_exposed_ms")
			b.ReportMetric(ms(s.ring, s.steps), m+"_ring_ms")
			if c := stats["ceiling"]; c != nil && c.wall > 0 {
				b.ReportMetric(s.wall.Seconds()/c.wall.Seconds(), m+"/ceiling")
				b.ReportMetric(s.min.Seconds()/c.min.Seconds(), m+"/ceiling_min")
			}
		}
	}
	b.ReportMetric(0, "ns/op")
}
