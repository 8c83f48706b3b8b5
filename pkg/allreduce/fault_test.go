package allreduce

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const faultTimeout = time.Second

func faultCfg(c *Config) { c.Timeout = faultTimeout; c.SegmentBytes = 256 }

// expectBlame checks that every listed rank failed with a PeerError naming
// the culprit, in time.
func expectBlame(t *testing.T, errs []error, ranks []int, culprit int, addr string, sentinel error) {
	t.Helper()
	for _, r := range ranks {
		var pe *PeerError
		if !errors.As(errs[r], &pe) || pe.Rank != culprit || pe.Addr != addr {
			t.Fatalf("rank %d: error %v does not name rank %d (%s)", r, errs[r], culprit, addr)
		}
		if sentinel != nil && !errors.Is(errs[r], sentinel) {
			t.Fatalf("rank %d: error %v is not %v", r, errs[r], sentinel)
		}
	}
}

// reformAndCheck forms generation gen on the same network and checks a
// correct allreduce: the process survives any earlier failure.
func reformAndCheck(t *testing.T, net *MemNetwork, n int, gen uint64) {
	t.Helper()
	rings := memRing(t, net, n, gen, faultCfg)
	bufs, sum := randomInputs(rand.New(rand.NewPCG(gen, 9)), n, 3001)
	if _, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil); errors.Join(errs...) != nil {
		t.Fatalf("generation %d: %v", gen, errs)
	}
	checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * float64(n) * (1 + math.Abs(sum[i])) })
}

func others(n int, except ...int) []int {
	var rs []int
outer:
	for r := range n {
		for _, e := range except {
			if r == e {
				continue outer
			}
		}
		rs = append(rs, r)
	}
	return rs
}

func TestFaultPeerKilledMidReduce(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n = 5
	rings := memRing(t, net, n, 1, faultCfg)
	var frames atomic.Int32
	net.SetFilter("mem-2", "mem-3", func(f *Frame) bool {
		if f.Kind == KindData && frames.Add(1) == 20 {
			go net.Kill("mem-2")
		}
		return true
	})
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), n, 20000)
	start := time.Now()
	_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	if d := time.Since(start); d > faultTimeout {
		t.Fatalf("took %v", d)
	}
	expectBlame(t, errs, others(n, 2), 2, "mem-2", nil)
	if !errors.Is(errs[3], ErrLinkBroken) || !errors.Is(errs[0], ErrAborted) {
		t.Fatalf("rank 3 err %v, rank 0 err %v", errs[3], errs[0])
	}
	// The ring is dead: the next call fails at once.
	if _, err := rings[0].AllReduce(testCtx(t, time.Second), bufs[0], Options{}); !errors.Is(err, ErrRingFailed) {
		t.Fatalf("call on failed ring: %v", err)
	}
	net.SetFilter("mem-2", "mem-3", nil)
	reformAndCheck(t, net, n, 2)
}

func TestFaultPartitionedPeer(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n = 4
	rings := memRing(t, net, n, 1, faultCfg)
	net.Partition("mem-1", "mem-0")
	net.Partition("mem-1", "mem-2")
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), n, 100)
	start := time.Now()
	_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	if d := time.Since(start); d > faultTimeout+faultTimeout/4 {
		t.Fatalf("took %v", d)
	}
	expectBlame(t, errs, others(n, 1), 1, "mem-1", ErrPeerTimeout)
	if errs[1] == nil {
		t.Fatal("partitioned rank succeeded")
	}
	net.Heal("mem-1", "mem-0")
	net.Heal("mem-1", "mem-2")
	reformAndCheck(t, net, n, 2)
}

func TestFaultStraggler(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n = 4
	rings := memRing(t, net, n, 1, faultCfg)
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), n, 100)
	start := time.Now()
	_, errs := runAll(testCtx(t, 10*time.Second), rings[:3], bufs[:3], nil) // rank 3 never calls
	if d := time.Since(start); d > faultTimeout {
		t.Fatalf("took %v", d)
	}
	expectBlame(t, errs, []int{0, 1, 2}, 3, "mem-3", ErrPeerNotReady)
	// The straggler learns of the abort and refuses its late call.
	if _, err := rings[3].AllReduce(testCtx(t, 5*time.Second), bufs[3], Options{}); !errors.Is(err, ErrAborted) {
		t.Fatalf("straggler's late call: %v", err)
	}
	reformAndCheck(t, net, n, 2)
}

func TestFaultSlowLink(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n = 3
	rings := memRing(t, net, n, 1, faultCfg)
	net.SetDelay("mem-1", "mem-2", 2*faultTimeout)
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), n, 100)
	start := time.Now()
	_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	if d := time.Since(start); d > faultTimeout+faultTimeout/4 {
		t.Fatalf("took %v", d)
	}
	expectBlame(t, errs, []int{0, 2}, 1, "mem-1", nil)
	net.SetDelay("mem-1", "mem-2", 0)
	reformAndCheck(t, net, n, 2)
}

func TestFaultWrongLength(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n = 4
	rings := memRing(t, net, n, 1, faultCfg)
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), n, 100)
	bufs[2] = append(bufs[2], 1)
	_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	// Rank 2 sees its left neighbour disagree, rank 3 sees rank 2 disagree:
	// whichever reports first, everyone fails naming a rank of that pair.
	for r, err := range errs {
		var pe *PeerError
		if !errors.Is(err, ErrProtocol) || !errors.As(err, &pe) || pe.Rank != 1 && pe.Rank != 2 {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	reformAndCheck(t, net, n, 2)
}

func TestFaultMismatchedCompression(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	rings := memRing(t, net, 3, 1, faultCfg)
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), 3, 100)
	_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, func(r int) Options {
		if r == 0 {
			return Options{Compression: FP16}
		}
		return Options{}
	})
	for r, err := range errs { // ranks 0 and 1 both see a mismatch: either may report first
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// Forged frames on a live link: garbage kinds, out-of-order slots and
// oversized payloads fail the call naming the sender; frames of another
// generation are dropped and counted.
func TestFaultInjectedFrames(t *testing.T) {
	cases := []struct {
		name  string
		frame func(gen uint64) Frame
		fails bool
	}{
		{"garbage-kind", func(g uint64) Frame { return Frame{Kind: 99, Generation: g, Call: 1} }, true},
		{"wrong-slot", func(g uint64) Frame { return Frame{Kind: KindData, Generation: g, Call: 1, Slot: 7, Total: 1000} }, true},
		{"oversized-payload", func(g uint64) Frame {
			return Frame{Kind: KindData, Generation: g, Call: 1, Total: 1000, Payload: make([]byte, 1<<20)}
		}, true},
		{"future-call", func(g uint64) Frame { return Frame{Kind: KindData, Generation: g, Call: 5} }, true},
		{"old-generation", func(g uint64) Frame { return Frame{Kind: KindData, Generation: g - 1, Call: 1, Total: 1000} }, false},
		{"new-generation-abort", func(g uint64) Frame { return Frame{Kind: KindAbort, Generation: g + 1, Call: 1, Suspect: 2} }, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			net := NewMemNetwork()
			defer net.Close()
			m := NewMetrics()
			gen := uint64(10 + i)
			rings := memRing(t, net, 3, gen, func(c *Config) { faultCfg(c); c.Metrics = m })
			bufs, sum := randomInputs(rand.New(rand.NewPCG(1, 1)), 3, 1000)
			var once sync.Once
			net.SetFilter("mem-0", "mem-1", func(f *Frame) bool {
				if f.Kind == KindData {
					// The forged frame goes ahead of the first real one.
					once.Do(func() { net.Inject("mem-0", "mem-1", tc.frame(gen)) })
				}
				return true
			})
			_, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
			if !tc.fails {
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * (1 + math.Abs(sum[i])) })
				if m.Snapshot().StaleFrames == 0 {
					t.Fatal("stale frame not counted")
				}
				return
			}
			expectBlame(t, []error{errs[1]}, []int{0}, 0, "mem-0", ErrProtocol)
			expectBlame(t, errs, []int{2}, 0, "mem-0", ErrAborted)
		})
	}
}

func TestCallerCancelAbortsEveryone(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	const n = 3
	rings := memRing(t, net, n, 1, faultCfg)
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 1)), n, 100)
	ctx, cancel := context.WithCancel(testCtx(t, 10*time.Second))
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	wg.Add(1)
	go func() { defer wg.Done(); _, errs[0] = rings[0].AllReduce(ctx, bufs[0], Options{}) }()
	wg.Wait()
	_, errs2 := runAll(testCtx(t, 10*time.Second), rings[1:], bufs[1:], nil)
	if !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("canceled rank: %v", errs[0])
	}
	for r, err := range errs2 {
		if !errors.Is(err, ErrAborted) && !errors.Is(err, ErrRingFailed) {
			t.Fatalf("rank %d: %v", r+1, err)
		}
	}
}

func TestCloseDuringCall(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	rings := memRing(t, net, 2, 1, faultCfg)
	done := make(chan error)
	go func() {
		_, err := rings[0].AllReduce(testCtx(t, 10*time.Second), make([]float32, 10), Options{})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	rings[0].Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("call during Close: %v", err)
	}
}

// SetRate shapes a link as tc tbf shapes an interface: a call moves its
// bytes no faster than the rate (a lower bound on time only), and the
// result is still right.
func TestMemSetRate(t *testing.T) {
	net := NewMemNetwork()
	defer net.Close()
	rings := memRing(t, net, 2, 1, func(c *Config) { c.SegmentBytes = 64 << 10 })
	const rate = 8 << 20 // bytes per second
	net.SetRate("mem-0", "mem-1", rate)
	net.SetRate("mem-1", "mem-0", rate)
	bufs, sum := randomInputs(rand.New(rand.NewPCG(3, 3)), 2, 1<<18) // 1 MiB each
	start := time.Now()
	res, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Each rank sends 2(N-1)/N of its 1 MiB: 1 MiB at 8 MiB/s.
	if d, want := time.Since(start), time.Second/8; d < want*9/10 || res[0].Stats.BytesSent != 1<<20 {
		t.Fatalf("1 MiB over an 8 MiB/s link in %v (want at least %v), %d bytes sent", d, want, res[0].Stats.BytesSent)
	}
	checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * (1 + math.Abs(sum[i])) })
}
