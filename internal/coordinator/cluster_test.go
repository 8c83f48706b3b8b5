package coordinator

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/worker"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/recur-ml/recur/internal/job"
)

// testCorpus writes a small deterministic English-like corpus.
func testCorpus(t testing.TB) string {
	t.Helper()
	words := strings.Fields("the quick brown fox jumps over a lazy dog while seven wizards quietly hex jumbled boxes of frozen quince")
	var b strings.Builder
	for i := 0; b.Len() < 60000; i++ {
		b.WriteString(words[(i*7+i/3)%len(words)])
		if i%11 == 10 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	path := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func testJob(text string, steps int64) job.Config {
	j := job.Default()
	j.Model = job.ModelConfig{Cell: "lstm", Hidden: 32, Layers: 1, Embed: 16}
	j.Data.Text, j.Data.Seq, j.Data.Batch = text, 20, 8
	j.Train.Steps = steps
	j.Train.CheckpointEvery = 10
	j.Train.ValidateEvery = 10
	j.Train.ValWindows = 4
	j.Cluster.AllreduceTimeoutMS = 2000
	return j
}

type testCluster struct {
	t       *testing.T
	coord   *Coordinator
	secret  []byte
	cancels map[string]context.CancelFunc
	workers map[string]*worker.Worker
	errs    map[string]error
	wg      sync.WaitGroup
	mu      sync.Mutex
}

func startCluster(t *testing.T, jc job.Config, dir string, gossipOn bool) *testCluster {
	t.Helper()
	gossipAddr := "off"
	if gossipOn {
		gossipAddr = "127.0.0.1:0"
	}
	secret := []byte("test-cluster-key-0123456789")
	c, err := NewCoordinator(CoordinatorConfig{Job: jc, Listen: "127.0.0.1:0", Gossip: gossipAddr, Dir: dir, Secret: secret, Log: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))})
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, coord: c, secret: secret, cancels: map[string]context.CancelFunc{}, workers: map[string]*worker.Worker{}, errs: map[string]error{}}
	t.Cleanup(func() {
		for _, cancel := range tc.cancels {
			cancel()
		}
		tc.wg.Wait()
		for _, w := range tc.workers {
			w.Close()
		}
		c.Close()
	})
	return tc
}

func (tc *testCluster) addWorker(id string) {
	tc.t.Helper()
	w, err := worker.NewWorker(worker.WorkerConfig{ID: id, Coordinator: tc.coord.Addr(), Secret: tc.secret, Gossip: tc.coord.GossipAddr(),
		Retry: 100 * time.Millisecond, Log: zaptest.NewLogger(tc.t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		tc.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc.mu.Lock()
	tc.cancels[id], tc.workers[id] = cancel, w
	tc.mu.Unlock()
	tc.wg.Add(1)
	go func() {
		defer tc.wg.Done()
		err := w.Run(ctx)
		tc.mu.Lock()
		tc.errs[id] = err
		tc.mu.Unlock()
	}()
}

// kill stops a worker abruptly: its servers and ring vanish, as with kill -9.
func (tc *testCluster) kill(id string) {
	tc.mu.Lock()
	w, cancel := tc.workers[id], tc.cancels[id]
	tc.mu.Unlock()
	cancel()
	w.Crash() // no graceful leave: peers must detect it
}

func (tc *testCluster) wait(timeout time.Duration) {
	tc.t.Helper()
	select {
	case <-tc.coord.Done():
	case <-time.After(timeout):
		tc.t.Fatalf("training did not finish in %v; history %d steps", timeout, len(tc.coord.History()))
	}
}

func (tc *testCluster) params(id string) []float32 {
	return append([]float32(nil), tc.workers[id].Model().Params.Value...)
}

// Over either ring transport, three workers train and end with the same
// parameters.
func TestClusterTrainsAndWorkersAgree(t *testing.T) {
	for _, tr := range []string{job.RingTCP, job.RingGRPC} {
		t.Run(tr, func(t *testing.T) { testTrainsAndAgree(t, tr) })
	}
}

func testTrainsAndAgree(t *testing.T, transport string) {
	jc := testJob(testCorpus(t), 30)
	jc.Cluster.RingTransport = transport
	tc := startCluster(t, jc, t.TempDir(), false)
	for _, id := range []string{"w1", "w2", "w3"} {
		tc.addWorker(id)
	}
	tc.wait(2 * time.Minute)
	h := tc.coord.History()
	if len(h) != 30 {
		t.Fatalf("%d steps recorded, want 30", len(h))
	}
	for i, r := range h {
		if r.Step != int64(i) {
			t.Fatalf("step %d recorded as %d", i, r.Step)
		}
	}
	if h[len(h)-1].Loss >= h[0].Loss {
		t.Fatalf("loss did not fall: %.3f -> %.3f", h[0].Loss, h[len(h)-1].Loss)
	}
	tc.wg.Wait()
	p1 := tc.params("w1")
	for _, id := range []string{"w2", "w3"} {
		p := tc.params(id)
		for i := range p1 {
			if p1[i] != p[i] {
				t.Fatalf("worker %s parameter %d differs from w1: %v vs %v", id, i, p[i], p1[i])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(tc.coord.cfg.Dir, "loss.png")); err != nil {
		t.Errorf("no loss curve: %v", err)
	}
}

// runWorld trains job with w workers and returns the final parameters.
func runWorld(t *testing.T, jc job.Config, w int) []float32 {
	tc := startCluster(t, jc, t.TempDir(), false)
	for i := 0; i < w; i++ {
		tc.addWorker(fmt.Sprintf("w%d", i))
	}
	tc.wait(2 * time.Minute)
	tc.wg.Wait()
	return tc.params("w0")
}

func TestClusterEquivalentAcrossWorldSizes(t *testing.T) {
	jc := testJob(testCorpus(t), 50)
	jc.Cluster.MinWorkers = 1
	ref := runWorld(t, jc, 1)
	again := runWorld(t, jc, 1)
	for i := range ref {
		if ref[i] != again[i] {
			t.Fatalf("repeated W=1 runs differ at parameter %d", i)
		}
	}
	for _, w := range []int{2, 4} {
		jc.Cluster.MinWorkers = w
		got := runWorld(t, jc, w)
		var diff, norm float64
		for i := range ref {
			d := float64(got[i] - ref[i])
			diff += d * d
			norm += float64(ref[i]) * float64(ref[i])
		}
		rel := math.Sqrt(diff / norm)
		t.Logf("W=%d: relative difference to W=1 after 50 steps: %.2g (L2)", w, rel)
		if rel > 1e-5 {
			t.Fatalf("W=%d differs from W=1 by %.3g (L2 relative), want <= 1e-5", w, rel)
		}
	}
}
