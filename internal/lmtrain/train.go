package lmtrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/rnn/optim"
	"github.com/recur-ml/recur/pkg/shard"
)

// Summary is the outcome of a run.
type Summary struct {
	Steps        int
	Tokens       int64
	Elapsed      time.Duration
	TrainLoss    float64 // mean of the last logging interval, nats/char
	ValLoss      float64 // last validation loss, nats/char
	TokensPerSec float64
	Sample       string
	Checkpoint   string
}

// Run trains until the step or time limit or until ctx is cancelled (then
// it still validates and saves), logging progress to log.
func Run(ctx context.Context, cfg Config, log *zap.Logger) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	cfg = cfg.Default()
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return Summary{}, fmt.Errorf("lmtrain: %w", err)
	}
	path, err := corpusFile(cfg.Text, cfg.Out)
	if err != nil {
		return Summary{}, err
	}
	corpus, err := shard.OpenText(path, shard.TextConfig{})
	if err != nil {
		return Summary{}, err
	}
	defer corpus.Close()
	vocab := corpus.Vocab()
	log.Info("corpus", zap.String("path", path), zap.Int64("train_chars", corpus.Train().Len()),
		zap.Int64("val_chars", corpus.Validation().Len()), zap.Int("vocab", vocab.Size()))

	cell, _ := rnn.ParseCell(cfg.Cell)
	mcfg := rnn.Config{Shape: rnn.SeqToSeq, Vocab: vocab.Size(), Embed: cfg.Embed, Cell: cell, Hidden: cfg.Hidden,
		Layers: cfg.Layers, Dropout: cfg.Dropout, Seed: cfg.Seed}
	model, err := rnn.New[float32](mcfg)
	if err != nil {
		return Summary{}, err
	}
	opt, err := optim.New[float32](optim.DefaultConfig(optim.KindAdam))
	if err != nil {
		return Summary{}, err
	}
	tr, err := rnn.NewTrainer(model, opt, rnn.TrainerConfig{Threads: cfg.Threads, BLASThreads: 1, Clip: cfg.Clip, Seed: cfg.Seed})
	if err != nil {
		return Summary{}, err
	}
	streams, err := shard.NewStreams(corpus.Train(), shard.StreamConfig{Streams: cfg.Batch, Steps: cfg.Seq, Seed: cfg.Seed})
	if err != nil {
		return Summary{}, fmt.Errorf("lmtrain: %w", err)
	}
	log.Info("model", zap.String("cell", cell.String()), zap.Int("layers", cfg.Layers), zap.Int("hidden", cfg.Hidden),
		zap.Int("params", model.Params.Len()), zap.String("blas", rnn.BLASBackend), zap.Int("threads", cfg.Threads))

	var (
		sum     Summary
		carry   = rnn.State[float32]{H: make([]float32, model.Stack().StateSize(cfg.Batch))}
		batch   rnn.Batch[float32]
		start   = time.Now()
		lastLog = start
		lastVal = start
		winLoss float64
		winCnt  int
	)
	if cell == rnn.LSTM {
		carry.C = make([]float32, len(carry.H))
	}
	for {
		if cfg.Steps > 0 && sum.Steps >= cfg.Steps || cfg.Duration > 0 && time.Since(start) >= cfg.Duration || ctx.Err() != nil {
			break
		}
		sb, err := streams.Next()
		if err != nil {
			return sum, fmt.Errorf("lmtrain: step %d: %w", sum.Steps, err)
		}
		toModelBatch(&batch, sb)
		resetRows(carry, sb.Reset, cfg.Batch, cfg.Hidden)
		res, _, err := tr.Step(&batch, carry, cfg.LR)
		if err != nil {
			return sum, fmt.Errorf("lmtrain: step %d (epoch %d): %w", sum.Steps, sb.Epoch, err)
		}
		copy(carry.H, res.Final.H)
		copy(carry.C, res.Final.C)
		sum.Steps++
		sum.Tokens += int64(res.Count)
		winLoss += res.Loss
		winCnt += res.Count
		if time.Since(lastLog) >= 5*time.Second {
			el := time.Since(start)
			sum.TrainLoss = winLoss / float64(winCnt)
			log.Info("train", zap.Int("step", sum.Steps), zap.Uint64("epoch", sb.Epoch), zap.Float64("loss", round(sum.TrainLoss)),
				zap.Float64("tokens_per_s", math.Round(float64(sum.Tokens)/el.Seconds())), zap.String("elapsed", el.Round(time.Second).String()),
				zap.String("progress", progress(cfg, sum.Steps, el)))
			winLoss, winCnt, lastLog = 0, 0, time.Now()
		}
		if time.Since(lastVal) >= cfg.Eval {
			if sum.ValLoss, err = Evaluate(model, corpus.Validation(), cfg.Batch, cfg.Seq, cfg.EvalMax); err != nil {
				return sum, err
			}
			log.Info("validation", zap.Int("step", sum.Steps), zap.Float64("val_loss", round(sum.ValLoss)))
			lastVal = time.Now()
		}
	}
	sum.Elapsed = time.Since(start)
	sum.TokensPerSec = float64(sum.Tokens) / sum.Elapsed.Seconds()
	if winCnt > 0 {
		sum.TrainLoss = winLoss / float64(winCnt)
	}
	if sum.ValLoss, err = Evaluate(model, corpus.Validation(), cfg.Batch, cfg.Seq, cfg.EvalMax); err != nil {
		return sum, err
	}
	log.Info("validation", zap.Int("step", sum.Steps), zap.Float64("val_loss", round(sum.ValLoss)))
	if sum.Checkpoint, err = Save(cfg.Out, model, vocab, cfg); err != nil {
		return sum, err
	}
	prime := vocab.Encode("The ")
	ids, err := model.Sample(prime, cfg.Sample, 0.8, rand.New(rand.NewPCG(cfg.Seed, 7)))
	if err != nil {
		return sum, err
	}
	sum.Sample = vocab.Decode(prime) + vocab.Decode(ids)
	return sum, nil
}

func round(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// progress renders the share of the run done.
func progress(cfg Config, steps int, el time.Duration) string {
	f := 0.0
	if cfg.Steps > 0 {
		f = float64(steps) / float64(cfg.Steps)
	}
	if cfg.Duration > 0 {
		f = max(f, el.Seconds()/cfg.Duration.Seconds())
	}
	return fmt.Sprintf("%.0f%%", 100*min(f, 1))
}

// toModelBatch views a stream batch as a model batch.
func toModelBatch(dst *rnn.Batch[float32], sb *shard.Batch) {
	dst.T, dst.B, dst.Tokens, dst.Targets, dst.Lengths = sb.T, sb.B, sb.Tokens, sb.Targets, nil
}

// resetRows zeroes the carried state of streams that start a new segment.
func resetRows(s rnn.State[float32], reset []bool, B, H int) {
	for b, r := range reset {
		if !r {
			continue
		}
		for _, st := range [][]float32{s.H, s.C} {
			for l := 0; l < len(st)/(B*H); l++ {
				clear(st[(l*B+b)*H : (l*B+b+1)*H])
			}
		}
	}
}

// Evaluate returns the mean cross-entropy (nats per token) of the model over
// tokens, read as B streams of windows of T with the state carried, as in
// training; maxWindows > 0 caps the windows read.
func Evaluate(m *rnn.Model[float32], tokens shard.Tokens, B, T, maxWindows int) (float64, error) {
	for B > 1 && tokens.Len() < int64(B*(T+1)) {
		B /= 2
	}
	st, err := shard.NewStreams(tokens, shard.StreamConfig{Streams: B, Steps: T})
	if err != nil {
		return 0, fmt.Errorf("lmtrain: validation: %w", err)
	}
	n := int(st.WindowsPerEpoch())
	if maxWindows > 0 {
		n = min(n, maxWindows)
	}
	tr, err := rnn.NewTrainer(m, nil, rnn.TrainerConfig{Threads: 2})
	if err != nil {
		return 0, err
	}
	carry := rnn.State[float32]{}
	var batch rnn.Batch[float32]
	var loss float64
	var count int
	for i := 0; i < n; i++ {
		sb, err := st.Next()
		if err != nil {
			return 0, fmt.Errorf("lmtrain: validation window %d: %w", i, err)
		}
		toModelBatch(&batch, sb)
		res, err := tr.Compute(&batch, carry, false)
		if err != nil {
			return 0, fmt.Errorf("lmtrain: validation window %d: %w", i, err)
		}
		carry = res.Final.Clone()
		loss += res.Loss
		count += res.Count
	}
	m.Params.ZeroGrad()
	if count == 0 {
		return 0, fmt.Errorf("lmtrain: validation split is too short for one window of %d", T)
	}
	return loss / float64(count), nil
}

// corpusFile returns path itself for a file; for a directory it writes the
// concatenation of its regular UTF-8 text files (sorted by name, skipping
// fortune's .dat indexes) into out/corpus.txt and returns that.
func corpusFile(path, out string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("lmtrain: corpus: %w", err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return "", fmt.Errorf("lmtrain: corpus: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".dat") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	dst := filepath.Join(out, "corpus.txt")
	f, err := os.Create(dst)
	if err != nil {
		return "", fmt.Errorf("lmtrain: %w", err)
	}
	defer f.Close()
	used := 0
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(path, n))
		if err != nil {
			return "", fmt.Errorf("lmtrain: corpus: %w", err)
		}
		if !utf8.Valid(b) {
			continue // not text
		}
		if _, err := f.Write(b); err != nil {
			return "", fmt.Errorf("lmtrain: %w", err)
		}
		used++
	}
	if used == 0 {
		return "", fmt.Errorf("lmtrain: corpus directory %s has no UTF-8 text files", path)
	}
	return dst, f.Close()
}

// Save writes model.safetensors, vocab.json and config.json into dir.
func Save(dir string, m *rnn.Model[float32], v *shard.Vocab, cfg Config) (string, error) {
	path := filepath.Join(dir, "model.safetensors")
	if err := m.SaveSafetensors(path); err != nil {
		return "", err
	}
	vb, err := v.MarshalJSON()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), vb, 0o644); err != nil {
		return "", err
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(dir, "config.json"), cb, 0o644)
}

// Load reads a directory written by Save.
func Load(dir string) (*rnn.Model[float32], *shard.Vocab, Config, error) {
	var cfg Config
	cb, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, cfg, fmt.Errorf("lmtrain: %w", err)
	}
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, nil, cfg, fmt.Errorf("lmtrain: %s: %w", filepath.Join(dir, "config.json"), err)
	}
	cfg = cfg.Default()
	vb, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, nil, cfg, fmt.Errorf("lmtrain: %w", err)
	}
	v := &shard.Vocab{}
	if err := v.UnmarshalJSON(vb); err != nil {
		return nil, nil, cfg, fmt.Errorf("lmtrain: %s: %w", filepath.Join(dir, "vocab.json"), err)
	}
	cell, err := rnn.ParseCell(cfg.Cell)
	if err != nil {
		return nil, nil, cfg, err
	}
	m, err := rnn.New[float32](rnn.Config{Shape: rnn.SeqToSeq, Vocab: v.Size(), Embed: cfg.Embed, Cell: cell,
		Hidden: cfg.Hidden, Layers: cfg.Layers, Dropout: cfg.Dropout})
	if err != nil {
		return nil, nil, cfg, err
	}
	if err := m.LoadSafetensors(filepath.Join(dir, "model.safetensors")); err != nil {
		return nil, nil, cfg, err
	}
	return m, v, cfg, nil
}
