package allreduce

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/cluster"
)

// BenchmarkRing measures allreduce over real gRPC on loopback, all ranks
// in this process. algbw and busbw follow nccl-tests: algbw = bytes/time,
// busbw = algbw * 2(N-1)/N, the per-link bandwidth a ring achieves.
// Tuning knobs can be tried without editing code through the environment:
// RING_BENCH_SEGMENT_BYTES, RING_BENCH_CREDITS (Config.Window),
// RING_BENCH_WINDOW_BYTES, RING_BENCH_BUFFER_BYTES and
// RING_BENCH_READ_BUFFER_BYTES (GRPCConfig), and RING_BENCH_COMPRESSION
// (none, fp16, bf16: the encoding on the wire; algbw and busbw still
// count float32 bytes); unset means the default.
func BenchmarkRing(b *testing.B) {
	benchTransport(b, func(b *testing.B, n int) ([]closingTransport, []Member) {
		trs, ms := grpcNodesCfg(b, n, func(g *GRPCConfig) {
			g.WindowBytes = int32(envInt("RING_BENCH_WINDOW_BYTES", 0))
			g.BufferBytes = envInt("RING_BENCH_BUFFER_BYTES", 0)
			g.ReadBufferBytes = envInt("RING_BENCH_READ_BUFFER_BYTES", 0)
		})
		return asTransports(trs), ms
	})
}

// BenchmarkRingTCP is BenchmarkRing over the plain TCP transport.
func BenchmarkRingTCP(b *testing.B) {
	benchTransport(b, func(b *testing.B, n int) ([]closingTransport, []Member) {
		trs, ms := tcpNodes(b, n, nil)
		return asTransports(trs), ms
	})
}

// BenchmarkRingTLS is BenchmarkRing with mutual TLS 1.3 on every link
// (certificates from the cluster key, as the workers run by default).
func BenchmarkRingTLS(b *testing.B) {
	benchTransport(b, func(b *testing.B, n int) ([]closingTransport, []Member) {
		sec := benchSecurity(b)
		trs, ms := grpcNodesCfg(b, n, func(g *GRPCConfig) {
			g.ServerCredentials, g.ClientCredentials = sec.ServerCredentials(), sec.ClientCredentials()
		})
		return asTransports(trs), ms
	})
}

// BenchmarkRingTCPTLS is BenchmarkRingTCP with mutual TLS 1.3.
func BenchmarkRingTCPTLS(b *testing.B) {
	benchTransport(b, func(b *testing.B, n int) ([]closingTransport, []Member) {
		sec := benchSecurity(b)
		trs := make([]*TCPTransport, n)
		ms := make([]Member, n)
		for i := range trs {
			tr, err := NewTCPTransport(TCPConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret,
				ServerHandshake: sec.HandshakeServer, ClientHandshake: sec.HandshakeClient})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { tr.Close() })
			trs[i], ms[i] = tr, Member{ID: fmt.Sprintf("w%d", i), Addr: tr.Addr()}
		}
		return asTransports(trs), ms
	})
}

func benchSecurity(b *testing.B) *cluster.Security {
	sec, err := cluster.NewSecurity(cluster.SecurityConfig{Secret: testSecret, Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return sec
}

// benchCompression is RING_BENCH_COMPRESSION (none, fp16, bf16).
func benchCompression() Compression {
	switch os.Getenv("RING_BENCH_COMPRESSION") {
	case "fp16":
		return FP16
	case "bf16":
		return BF16
	}
	return None
}

// benchTransport runs the ranks-N/SIZE sub-benchmarks over the transports
// nodes starts.
func benchTransport(b *testing.B, nodes func(b *testing.B, n int) ([]closingTransport, []Member)) {
	for _, n := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("ranks-%d", n), func(b *testing.B) {
			trs, ms := nodes(b, n)
			rings := formRing(b, ms, 1, func(c *Config) {
				c.SegmentBytes = envInt("RING_BENCH_SEGMENT_BYTES", 0)
				c.Window = envInt("RING_BENCH_CREDITS", 0)
			}, func(i int) Transport { return trs[i] })
			for _, mb := range []int{1, 10, 40} {
				b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
					benchRing(b, rings, mb*1000*1000/4)
				})
			}
		})
	}
}

func benchRing(b *testing.B, rings []*Ring, floats int) {
	n := len(rings)
	bufs := make([][]float32, n)
	for i := range bufs {
		bufs[i] = make([]float32, floats)
		for j := range bufs[i] {
			bufs[i][j] = 1
		}
	}
	ctx := testCtx(b, 10*time.Minute)
	opts := func(int) Options { return Options{Compression: benchCompression()} }
	if _, errs := runAll(ctx, rings, bufs, opts); errors.Join(errs...) != nil { // warm up
		b.Fatal(errs)
	}
	b.SetBytes(int64(4 * floats))
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		if _, errs := runAll(ctx, rings, bufs, opts); errors.Join(errs...) != nil {
			b.Fatal(errs)
		}
	}
	per := time.Since(start).Seconds() / float64(b.N)
	alg := float64(4*floats) / per / 1e9
	b.ReportMetric(alg, "algbw_GB/s")
	b.ReportMetric(alg*2*float64(n-1)/float64(n), "busbw_GB/s")
	// CPU time of all ranks together: on a shared machine it drifts much
	// less than wall time, and on loopback the ring is CPU-bound.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu_ms/op")
}

// cpuTime is the process's user+system CPU time, or 0 where unknown.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// envInt reads an integer knob from the environment.
func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}

// grpcNodesCfg is grpcNodes with a tuned GRPCConfig.
func grpcNodesCfg(t testing.TB, n int, tune func(*GRPCConfig)) ([]*GRPCTransport, []Member) {
	trs := make([]*GRPCTransport, n)
	ms := make([]Member, n)
	for i := range trs {
		g := GRPCConfig{ListenAddr: "127.0.0.1:0", Secret: testSecret}
		tune(&g)
		tr, err := NewGRPCTransport(g)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		trs[i] = tr
		ms[i] = Member{ID: fmt.Sprintf("w%d", i), Addr: tr.Addr()}
	}
	return trs, ms
}
