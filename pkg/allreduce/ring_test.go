package allreduce

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestAllReduceSumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	net := NewMemNetwork()
	defer net.Close()
	for n := 1; n <= 8; n++ {
		rings := memRing(t, net, n, uint64(n), nil)
		lengths := []int{0, 1, n - 1, n, n + 1, 17, 101, 1000 + rng.IntN(3000)}
		for _, l := range lengths {
			bufs, sum := randomInputs(rng, n, l)
			_, errs := runAll(testCtx(t, 20*time.Second), rings, bufs, nil)
			for r, err := range errs {
				if err != nil {
					t.Fatalf("N=%d len=%d rank %d: %v", n, l, r, err)
				}
			}
			// float32 summation of n terms: error below n ulps of the
			// magnitude sum, comfortably.
			checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * float64(n) * (1 + math.Abs(sum[i])) })
		}
	}
}

func TestAllReduceMeanAndDeterminism(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n, l = 5, 333
	rings := memRing(t, net, n, 1, func(c *Config) { c.SegmentBytes = 40 })
	var first [][]float32
	for rep := range 3 {
		bufs, sum := randomInputs(rand.New(rand.NewPCG(1, 1)), n, l)
		_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, func(int) Options { return Options{Op: Mean} })
		for r, err := range errs {
			if err != nil {
				t.Fatalf("rank %d: %v", r, err)
			}
		}
		for i := range sum {
			sum[i] /= n
		}
		checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * (1 + math.Abs(sum[i])) })
		if rep == 0 {
			first = bufs
			continue
		}
		for i := range bufs[0] {
			if math.Float32bits(bufs[0][i]) != math.Float32bits(first[0][i]) {
				t.Fatalf("repeat %d elem %d: %g != %g, not deterministic", rep, i, bufs[0][i], first[0][i])
			}
		}
	}
}

func TestAllReduceHealthFlag(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	for _, n := range []int{1, 2, 3, 6} {
		rings := memRing(t, net, n, uint64(10+n), nil)
		for _, badRank := range []int{-1, 0, n - 1} {
			for _, l := range []int{0, 1, 50} {
				bufs, _ := randomInputs(rand.New(rand.NewPCG(2, 2)), n, l)
				res, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, func(r int) Options { return Options{Bad: r == badRank} })
				for r := range rings {
					if errs[r] != nil {
						t.Fatalf("N=%d: rank %d: %v", n, r, errs[r])
					}
					if res[r].AnyBad != (badRank >= 0) {
						t.Fatalf("N=%d len=%d bad rank %d: rank %d AnyBad=%v", n, l, badRank, r, res[r].AnyBad)
					}
				}
			}
		}
	}
}

func TestAllReduceCompressionBoundedError(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n, l = 6, 2000
	rings := memRing(t, net, n, 1, func(c *Config) { c.SegmentBytes = 512 })
	for _, comp := range []Compression{FP16, BF16} {
		// Relative precision of one rounding: 2^-11 (fp16), 2^-8 (bf16).
		eps := math.Ldexp(1, -11)
		if comp == BF16 {
			eps = math.Ldexp(1, -8)
		}
		rng := rand.New(rand.NewPCG(3, uint64(comp)))
		bufs, sum := randomInputs(rng, n, l)
		abs := make([]float64, l)
		for _, b := range bufs {
			for i, v := range b {
				abs[i] += math.Abs(float64(v))
			}
		}
		res, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, func(int) Options { return Options{Compression: comp} })
		for r, err := range errs {
			if err != nil {
				t.Fatalf("%v rank %d: %v", comp, r, err)
			}
		}
		// Each of the n-1 hops and the final broadcast rounds a partial
		// sum bounded by the sum of magnitudes once.
		checkResult(t, bufs, sum, func(i int) float64 { return float64(n+1) * eps * abs[i] })
		if got, want := res[0].Stats.BytesSent, int64(2*(n-1)*l/n*2); got != want {
			t.Fatalf("%v: sent %d bytes, want %d (half of float32)", comp, got, want)
		}
	}
}

func TestAllReduceStats(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	m := NewMetrics()
	rings := memRing(t, net, 4, 1, func(c *Config) { c.Metrics = m })
	bufs, _ := randomInputs(rand.New(rand.NewPCG(4, 4)), 4, 4000)
	res, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	for r, err := range errs {
		if err != nil {
			t.Fatal(r, err)
		}
	}
	st := res[1].Stats
	if st.BytesSent != 2*3*1000*4 || st.BytesReceived != st.BytesSent || st.Duration <= 0 || st.Left.ID != "w0" || st.Right.ID != "w2" {
		t.Fatalf("stats %+v", st)
	}
	snap := m.Snapshot()
	if snap.CallsOK != 4 || snap.BytesSent != 4*st.BytesSent {
		t.Fatalf("metrics %+v", snap)
	}
}
