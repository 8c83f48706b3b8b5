package rnn

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/recur-ml/recur/pkg/rnn/optim"
)

// benchThreads returns the goroutines and BLAS threads the benchmarks use:
// RECUR_THREADS and RECUR_BLAS_THREADS override the defaults (2 and 1).
func benchThreads() (int, int) {
	th, bt := 2, 1
	if v, err := strconv.Atoi(os.Getenv("RECUR_THREADS")); err == nil {
		th = v
	}
	if v, err := strconv.Atoi(os.Getenv("RECUR_BLAS_THREADS")); err == nil {
		bt = v
	}
	return th, bt
}

// stepFlops counts the floating-point operations of one training step of a
// token LM (forward, backward: 3x the forward GEMMs), as 2*m*n*k per GEMM.
func stepFlops(cfg Config, T, B int) float64 {
	G := float64(cfg.Cell.gates() * cfg.Hidden)
	H := float64(cfg.Hidden)
	n := float64(T * B)
	var f float64
	in := float64(cfg.Embed)
	for l := 0; l < cfg.Layers; l++ {
		f += 3 * 2 * n * G * (in + H)
		in = H
	}
	f += 3 * 2 * n * H * float64(cfg.Outputs)
	return f
}

// BenchmarkTrainStep measures the step of ../shared/bench/torch_rnn_step.py:
// embedding (vocab 65) -> stacked cell -> linear head -> cross-entropy at
// every step -> backward -> clip 5 -> Adam, seq 100, batch 32.
func BenchmarkTrainStep(b *testing.B) {
	cases := []struct {
		name   string
		cell   Cell
		layers int
		hidden int
	}{
		{"lstm-1x128", LSTM, 1, 128},
		{"gru-1x128", GRU, 1, 128},
		{"rnn-1x128", RNNTanh, 1, 128},
		{"lstm-2x256", LSTM, 2, 256}, // the model of torch_ddp_charlm.py (embedding 256 here)
		{"lstm-2x512", LSTM, 2, 512},
	}
	const T, B, V = 100, 32, 65
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			th, bt := benchThreads()
			cfg := Config{Shape: SeqToSeq, Vocab: V, Embed: c.hidden, Cell: c.cell, Hidden: c.hidden, Layers: c.layers, Seed: 1}
			m, err := New[float32](cfg)
			if err != nil {
				b.Fatal(err)
			}
			oc := optim.DefaultConfig(optim.KindAdam)
			opt, err := optim.New[float32](oc)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := NewTrainer(m, opt, TrainerConfig{Threads: th, BLASThreads: bt, Clip: 5})
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(0, 0))
			batch := &Batch[float32]{T: T, B: B, Tokens: randTokens32(rng, T*B, V), Targets: randTokens32(rng, T*B, V)}
			if _, _, err := tr.Step(batch, State[float32]{}, 2e-3); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, _, err := tr.Step(batch, State[float32]{}, 2e-3); err != nil {
					b.Fatal(err)
				}
			}
			sec := time.Since(start).Seconds()
			b.ReportMetric(float64(T*B*b.N)/sec, "tokens/s")
			b.ReportMetric(stepFlops(m.Config(), T, B)*float64(b.N)/sec/1e9, "GFLOP/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkSgemmPeak measures the sgemm rate of the BLAS in use on a large
// square product, the ceiling for the step's GFLOP/s.
func BenchmarkSgemmPeak(b *testing.B) {
	_, bt := benchThreads()
	for _, threads := range []int{1, max(2, bt)} {
		b.Run(fmt.Sprintf("threads-%d", threads), func(b *testing.B) {
			SetBLASThreads(threads)
			const n = 1024
			a, x, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
			for i := range a {
				a[i], x[i] = float32(i%7)*0.1, float32(i%5)*0.1
			}
			gemm(false, false, n, n, n, 1, a, n, x, n, 0, c, n)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				gemm(false, false, n, n, n, 1, a, n, x, n, 0, c, n)
			}
			b.ReportMetric(2*n*n*n*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(0, "ns/op")
		})
	}
	// concurrent-2: two goroutines, each running single-threaded sgemm at
	// the same time, as two workers of a local cluster do on a 2-core
	// machine. Its GFLOP/s over threads-1's is the machine's scaling
	// ceiling for compute-bound data parallelism (shared caches, memory
	// bandwidth and clock limit it below 2).
	b.Run("concurrent-2", func(b *testing.B) {
		SetBLASThreads(1)
		const n = 1024
		var wg sync.WaitGroup
		start := time.Now()
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				a, x, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
				for i := range a {
					a[i], x[i] = float32(i%7)*0.1, float32(i%5)*0.1
				}
				for i := 0; i < b.N; i++ {
					gemm(false, false, n, n, n, 1, a, n, x, n, 0, c, n)
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(2*2*n*n*n*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
		b.ReportMetric(0, "ns/op")
	})
}

func randTokens32(rng *rand.Rand, n, vocab int) []int32 { return randTokens(rng, n, vocab) }
