// Command ringbench measures ring allreduce bandwidth between processes:
// run one per rank, each with the same --peers list, and every rank prints
// its timing (rank 0's line is the one to quote). Bandwidths follow
// nccl-tests: algbw = bytes/time, busbw = algbw*2(N-1)/N.
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
	"time"

	"github.com/recur-ml/recur/pkg/allreduce"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ringbench:", err)
		os.Exit(1)
	}
}

func run() error {
	rank := flag.Int("rank", 0, "this process's rank (index into --peers)")
	peers := flag.String("peers", "", "comma-separated host:port of every rank, in ring order")
	listen := flag.String("listen", "", "listen address (default: this rank's entry in --peers)")
	floats := flag.Int("floats", 10_000_000, "float32 elements per allreduce")
	iters := flag.Int("iters", 10, "timed iterations (after 2 warm-up ones)")
	secret := flag.String("secret", os.Getenv("RECUR_RING_SECRET"), "cluster secret, at least 16 bytes (default $RECUR_RING_SECRET)")
	seg := flag.Int("segment-bytes", 0, "segment size in bytes (0: library default)")
	comp := flag.String("compression", "none", "wire encoding: none, fp16 or bf16")
	timeout := flag.Duration("timeout", 0, "peer timeout (0: library default)")
	join := flag.Duration("join", time.Minute, "how long to wait for the other ranks to start")
	transport := flag.String("transport", "tcp", `ring transport: "tcp" (plain TCP links) or "grpc" (gRPC streams)`)
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed iterations to this file")
	flag.Parse()

	addrs := strings.Split(*peers, ",")
	if *peers == "" || *rank < 0 || *rank >= len(addrs) {
		return fmt.Errorf("--rank %d not in --peers %q", *rank, *peers)
	}
	c, err := parseCompression(*comp)
	if err != nil {
		return err
	}
	if *listen == "" {
		*listen = addrs[*rank]
	}
	var tr interface {
		allreduce.Transport
		Close() error
	}
	switch *transport {
	case "tcp":
		tr, err = allreduce.NewTCPTransport(allreduce.TCPConfig{ListenAddr: *listen, Secret: []byte(*secret)})
	case "grpc":
		tr, err = allreduce.NewGRPCTransport(allreduce.GRPCConfig{ListenAddr: *listen, Secret: []byte(*secret)})
	default:
		err = fmt.Errorf("--transport %q: want tcp or grpc", *transport)
	}
	if err != nil {
		return err
	}
	defer tr.Close()
	ms := make([]allreduce.Member, len(addrs))
	for i, a := range addrs {
		ms[i] = allreduce.Member{ID: fmt.Sprintf("rank%d", i), Addr: a}
	}
	cfg := allreduce.Config{Rank: *rank, Members: ms, Generation: 1, SegmentBytes: *seg, Timeout: *timeout, JoinTimeout: *join}
	ctx := context.Background()
	ring, err := allreduce.New(ctx, cfg, tr)
	if err != nil {
		return err
	}
	defer ring.Close()

	buf := make([]float32, *floats)
	for i := range buf {
		buf[i] = 1
	}
	opts := allreduce.Options{Compression: c}
	for range 2 {
		if _, err := ring.AllReduce(ctx, buf, opts); err != nil {
			return err
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var waitL, waitR time.Duration
	start := time.Now()
	for range *iters {
		res, err := ring.AllReduce(ctx, buf, opts)
		if err != nil {
			return err
		}
		waitL += res.Stats.WaitLeft
		waitR += res.Stats.WaitRight
	}
	per := time.Since(start).Seconds() / float64(*iters)
	n := float64(len(addrs))
	alg := float64(4**floats) / per / 1e9
	fmt.Printf("ringbench rank=%d world=%d bytes=%d compression=%s ms=%.1f algbw_GBps=%.4f busbw_GBps=%.4f wait_left_ms=%.1f wait_right_ms=%.1f\n",
		*rank, len(addrs), 4**floats, c, per*1000, alg, alg*2*(n-1)/n,
		waitL.Seconds()*1000/float64(*iters), waitR.Seconds()*1000/float64(*iters))
	// Let the neighbours finish their last call before tearing links down.
	time.Sleep(200 * time.Millisecond)
	return nil
}

func parseCompression(s string) (allreduce.Compression, error) {
	for _, c := range []allreduce.Compression{allreduce.None, allreduce.FP16, allreduce.BF16} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown compression %q", s)
}
