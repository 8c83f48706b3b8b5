package allreduce

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx is a context that ends before the test binary's own timeout.
func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// members returns n members at mem addresses "rank-i".
func members(n int, prefix string) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("w%d", i), Addr: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return ms
}

// formRing creates one Ring per member concurrently and registers Close.
func formRing(t testing.TB, ms []Member, gen uint64, tune func(*Config), tr func(i int) Transport) []*Ring {
	t.Helper()
	rings := make([]*Ring, len(ms))
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := Config{Rank: i, Members: ms, Generation: gen, Timeout: 2 * time.Second, SegmentBytes: 64}
			if tune != nil {
				tune(&cfg)
			}
			rings[i], errs[i] = New(testCtx(t, 10*time.Second), cfg, tr(i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: New: %v", i, err)
		}
	}
	t.Cleanup(func() {
		for _, r := range rings {
			r.Close()
		}
	})
	return rings
}

func memRing(t testing.TB, net *MemNetwork, n int, gen uint64, tune func(*Config)) []*Ring {
	ms := members(n, "mem")
	return formRing(t, ms, gen, tune, func(i int) Transport { return net.Node(ms[i].Addr) })
}

// runAll calls AllReduce on every ring concurrently with its own buffer.
func runAll(ctx context.Context, rings []*Ring, bufs [][]float32, opts func(rank int) Options) ([]Result, []error) {
	res := make([]Result, len(rings))
	errs := make([]error, len(rings))
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := Options{}
			if opts != nil {
				o = opts(i)
			}
			res[i], errs[i] = r.AllReduce(ctx, bufs[i], o)
		}()
	}
	wg.Wait()
	return res, errs
}

// randomInputs returns n buffers of length l and their float64 sums.
func randomInputs(rng *rand.Rand, n, l int) ([][]float32, []float64) {
	bufs := make([][]float32, n)
	sum := make([]float64, l)
	for r := range bufs {
		bufs[r] = make([]float32, l)
		for i := range bufs[r] {
			v := float32(rng.NormFloat64())
			bufs[r][i] = v
			sum[i] += float64(v)
		}
	}
	return bufs, sum
}

// checkResult verifies every rank holds identical bytes within tol of want.
func checkResult(t *testing.T, bufs [][]float32, want []float64, tol func(i int) float64) {
	t.Helper()
	for i, w := range want {
		if d := math.Abs(float64(bufs[0][i]) - w); !(d <= tol(i)) {
			t.Fatalf("elem %d = %g, want %g (tolerance %g)", i, bufs[0][i], w, tol(i))
		}
		for r := 1; r < len(bufs); r++ {
			if math.Float32bits(bufs[r][i]) != math.Float32bits(bufs[0][i]) {
				t.Fatalf("rank %d elem %d = %g, rank 0 has %g: ranks disagree", r, i, bufs[r][i], bufs[0][i])
			}
		}
	}
}

// closingTransport is a Transport that a test can shut down, as a process
// dying would.
type closingTransport interface {
	Transport
	Close() error
}

// asTransports widens a slice of one transport type.
func asTransports[T closingTransport](trs []T) []closingTransport {
	out := make([]closingTransport, len(trs))
	for i, t := range trs {
		out[i] = t
	}
	return out
}

// checkNewGenerationAfterPeerDeath runs a ring of four over trs, kills
// rank 2 (its transport and ring close), and checks that every survivor's
// call fails within 2 s blaming rank 2, then that the survivors form
// generation 2 over the same transports and reduce correctly. A worker
// keeps its transport while rings come and go.
func checkNewGenerationAfterPeerDeath(t *testing.T, trs []closingTransport, ms []Member, floats int) {
	t.Helper()
	cfg := func(c *Config) { c.Timeout = time.Second }
	rings := formRing(t, ms, 1, cfg, func(i int) Transport { return trs[i] })
	bufs, _ := randomInputs(rand.New(rand.NewPCG(1, 2)), 4, floats)
	if _, errs := runAll(testCtx(t, 10*time.Second), rings, bufs, nil); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	trs[2].Close() // rank 2's process dies: its listener and links go away
	rings[2].Close()
	start := time.Now()
	_, errs := runAll(testCtx(t, 10*time.Second), rings[:2], bufs[:2], nil)
	_, errs3 := runAll(testCtx(t, 10*time.Second), rings[3:], bufs[3:], nil)
	for _, err := range append(errs, errs3...) {
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Rank != 2 || pe.Addr != ms[2].Addr {
			t.Fatalf("error %v does not blame rank 2 (%s)", err, ms[2].Addr)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failure took %v", d)
	}
	survivors := []Member{ms[0], ms[1], ms[3]}
	str := []closingTransport{trs[0], trs[1], trs[3]}
	rings2 := formRing(t, survivors, 2, cfg, func(i int) Transport { return str[i] })
	bufs, sum := randomInputs(rand.New(rand.NewPCG(3, 4)), 3, 7777)
	if _, errs := runAll(testCtx(t, 10*time.Second), rings2, bufs, nil); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	checkResult(t, bufs, sum, func(i int) float64 { return 1e-5 * (1 + math.Abs(sum[i])) })
}
