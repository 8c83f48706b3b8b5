package coordinator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/worker"

	"go.uber.org/zap"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
)

// BenchmarkClusterStep measures the whole distributed loop — data, compute,
// allreduce over gRPC on loopback, optimizer, coordinator round trip — for
// the model of ../shared/bench/torch_ddp_charlm.py: embedding 64, 2x256
// LSTM, per-worker batch 32, T=100, Adam, clip 5. Each worker uses one
// goroutine and one BLAS thread, so world-2 uses both cores of a 2-core
// machine. It reports cluster tokens/s and the share of step time spent in
// the allreduce and waiting on the coordinator. The corpus is
// $RECUR_DATA/tinyshakespeare.txt when present, else generated text.
func BenchmarkClusterStep(b *testing.B) {
	text := filepath.Join(os.Getenv("RECUR_DATA"), "tinyshakespeare.txt")
	if _, err := os.Stat(text); err != nil || os.Getenv("RECUR_DATA") == "" {
		text = testCorpus(b)
	}
	rnn.SetBLASThreads(1)
	for _, world := range []int{1, 2} {
		b.Run(fmt.Sprintf("world-%d", world), func(b *testing.B) {
			jc := job.Default()
			jc.Model = job.ModelConfig{Cell: "lstm", Hidden: 256, Layers: 2, Embed: 64}
			jc.Data.Text, jc.Data.Seq, jc.Data.Batch = text, 100, 32*world
			jc.Train.Steps = int64(b.N + 2)
			jc.Train.Threads = 1
			jc.Train.CheckpointEvery, jc.Train.ValidateEvery = 0, 0
			jc.Cluster.MinWorkers = world
			c, err := NewCoordinator(CoordinatorConfig{Job: jc, Listen: "127.0.0.1:0", Gossip: "off", Dir: b.TempDir(), Secret: benchKey, Log: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var ws []*worker.Worker
			for i := 0; i < world; i++ {
				w, err := worker.NewWorker(worker.WorkerConfig{ID: fmt.Sprintf("w%d", i), Coordinator: c.Addr(), Secret: benchKey, Retry: 50 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				ws = append(ws, w)
				go w.Run(context.Background())
			}
			// Time from the end of the warm-up steps to the end.
			for len(c.History()) < 2 {
				time.Sleep(time.Millisecond)
			}
			s0 := c.Stats()
			b.ResetTimer()
			start := time.Now()
			<-c.Done()
			el := time.Since(start).Seconds()
			b.StopTimer()
			s := c.Stats()
			steps := len(c.History()) - 2
			b.ReportMetric(float64(steps*32*world*100)/el, "tokens/s")
			if d := s.StepSeconds - s0.StepSeconds; d > 0 {
				b.ReportMetric((s.AllreduceSeconds-s0.AllreduceSeconds)/(d+s.WaitSeconds-s0.WaitSeconds), "allreduce_share")
				b.ReportMetric((s.WaitSeconds-s0.WaitSeconds)/(d+s.WaitSeconds-s0.WaitSeconds), "coord_wait_share")
				// Compute (data, forward, backward, optimizer) per worker
				// step: more of it at world-2 than at world-1 is the cost
				// of two workers sharing the machine (caches, memory,
				// clock), not of the distributed loop.
				if n := s.Reports - s0.Reports; n > 0 {
					b.ReportMetric((d-(s.AllreduceSeconds-s0.AllreduceSeconds))/float64(n)*1e3, "compute_ms/step")
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

var benchKey = []byte("bench-cluster-key-0123456789")
