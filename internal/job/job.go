// Package job is a training job's configuration: the model, data,
// optimizer, schedule, training loop and cluster policy, read from one
// YAML file with documented defaults, validated with errors that name the
// key, and identified by one hash (what a checkpoint depends on).
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/rnn/optim"
	"github.com/recur-ml/recur/pkg/schedule"
)

// Config is the whole training job: model, data, optimizer, schedule,
// training loop and cluster policy. It is read from one YAML (or JSON) file;
// flags and environment variables override fields. The coordinator sends it
// to every worker, so all train the same thing.
type Config struct {
	Task      TaskConfig      `yaml:"task" json:"task"`
	Model     ModelConfig     `yaml:"model" json:"model"`
	Data      DataConfig      `yaml:"data" json:"data"`
	Optimizer optim.Config    `yaml:"optimizer" json:"optimizer"`
	Schedule  schedule.Config `yaml:"schedule" json:"schedule"`
	Train     TrainConfig     `yaml:"train" json:"train"`
	Cluster   ClusterConfig   `yaml:"cluster" json:"cluster"`
}

// TaskConfig is what the model learns.
type TaskConfig struct {
	// Kind: charlm (default), classify, forecast, seq2seq.
	Kind string `yaml:"kind" json:"kind"`
	EOS  int    `yaml:"eos" json:"eos"` // seq2seq: end-of-sequence token; default 1
	BOS  int    `yaml:"bos" json:"bos"` // seq2seq: start token; default 0
}

// ModelConfig is the recurrent model.
type ModelConfig struct {
	Cell    string  `yaml:"cell" json:"cell"`       // lstm, gru, rnn_tanh, rnn_relu; default lstm
	Hidden  int     `yaml:"hidden" json:"hidden"`   // default 256
	Layers  int     `yaml:"layers" json:"layers"`   // default 2
	Embed   int     `yaml:"embed" json:"embed"`     // default 64
	Dropout float64 `yaml:"dropout" json:"dropout"` // default 0
	// Bidirectional runs a reverse direction too (classify, forecast, and
	// the seq2seq encoder).
	Bidirectional bool `yaml:"bidirectional" json:"bidirectional"`
}

// DataConfig is the data and how it is cut. Paths must be the same on every
// worker.
type DataConfig struct {
	Text          string  `yaml:"text" json:"text"`                     // charlm: the corpus
	Train         string  `yaml:"train" json:"train"`                   // classify: JSONL, or IDX "IMAGES,LABELS"; seq2seq: JSONL; forecast: CSV
	Val           string  `yaml:"val" json:"val"`                       // validation/test set; empty: the last (1-train_fraction) of train
	Seq           int     `yaml:"seq" json:"seq"`                       // charlm: TBPTT window; forecast: input steps; default 100
	Horizon       int     `yaml:"horizon" json:"horizon"`               // forecast: steps ahead; default 1
	Batch         int     `yaml:"batch" json:"batch"`                   // global batch rows, split over workers; default 32
	TrainFraction float64 `yaml:"train_fraction" json:"train_fraction"` // default 0.9
	Classes       int     `yaml:"classes" json:"classes"`               // classify: number of classes
	Vocab         int     `yaml:"vocab" json:"vocab"`                   // token inputs (JSONL): vocabulary size
	// MaxLen bounds the steps of a JSONL example (input and output):
	// longer examples are skipped. 0 (the default) means DefaultMaxLen
	// (2048), and a longer example is then an error naming its file:line,
	// so no data is dropped unasked.
	MaxLen  int `yaml:"max_len" json:"max_len"`
	Buckets int `yaml:"buckets" json:"buckets"` // length buckets for variable lengths; 0: none
	// Forecast only. Targets and Inputs choose the CSV's columns, as
	// comma-separated header names or 0-based indices ("co2,temp", "1,2").
	// Inputs default to every column; Targets to every input column not
	// named like a time axis (year, month, date, time, ...; see
	// task.TimeColumn), which may be an input but never a target. Every
	// target must be an input (persistence reads it from the window).
	Targets string `yaml:"targets" json:"targets,omitempty"`
	Inputs  string `yaml:"inputs" json:"inputs,omitempty"`
	// ValFraction (forecast) is the share of the rows before the test part
	// (the first train_fraction of rows) held out, at their end, for
	// periodic validation, early stopping and the AR baseline's order;
	// 0 (default) means DefaultValFraction, 0.1, and keeps the job's hash
	// (Hash) what it was before the key existed. The test part is touched
	// only by recur eval.
	ValFraction float64 `yaml:"val_fraction" json:"val_fraction,omitempty"`
	// Season (forecast) is the series' period in rows (12 for monthly
	// data with a yearly cycle); 0 (default): none. Eval then adds the
	// seasonal naive baseline, and the AR baseline's orders reach 2*season.
	Season int `yaml:"season" json:"season,omitempty"`
	// Residual (forecast) is the baseline whose error the network learns:
	// its forecast is then that baseline's plus the network's output.
	// "last" (persistence: the change from the window's last value) or
	// "ar" (the linear AR baseline of recur eval, fitted on the training
	// rows with its order chosen on validation); "" (default): none, the
	// network forecasts the values. The loss is the forecast's error
	// either way.
	Residual string `yaml:"residual" json:"residual,omitempty"`
}

// Forecast residual baselines (DataConfig.Residual).
const (
	ResidualLast = "last"
	ResidualAR   = "ar"
)

// TrainConfig is the training loop.
type TrainConfig struct {
	Steps           int64   `yaml:"steps" json:"steps"`                       // total steps; required
	Minutes         float64 `yaml:"minutes" json:"minutes"`                   // stop at the first step boundary after this wall time; 0: no limit
	Clip            float64 `yaml:"clip" json:"clip"`                         // global norm clip; default 5
	Seed            uint64  `yaml:"seed" json:"seed"`                         // default 1
	Threads         int     `yaml:"threads" json:"threads"`                   // goroutines per worker; default 1
	CheckpointEvery int64   `yaml:"checkpoint_every" json:"checkpoint_every"` // default 100; validation steps too (the best is kept); 0: the final only
	ValidateEvery   int64   `yaml:"validate_every" json:"validate_every"`     // default 200
	ValWindows      int     `yaml:"val_windows" json:"val_windows"`           // validation windows per evaluation, 0: all
	// MaxSkippedSteps ends the run as diverged after this many
	// consecutive steps whose update was skipped on every rank (a
	// non-finite loss or gradient); default 10, -1: never.
	MaxSkippedSteps int `yaml:"max_skipped_steps" json:"max_skipped_steps"`
	// EarlyStop ends the run (as finished) when the validation loss has
	// not improved on the best for this many validations in a row; 0
	// (default): off. It needs ValidateEvery.
	EarlyStop int `yaml:"early_stop" json:"early_stop"`
}

// ClusterConfig is the cluster policy.
type ClusterConfig struct {
	MinWorkers int `yaml:"min_workers" json:"min_workers"` // default 1
	MaxWorkers int `yaml:"max_workers" json:"max_workers"` // default 0: no limit
	// AllreduceTimeoutMS bounds every wait on a ring peer; default 5000.
	AllreduceTimeoutMS int `yaml:"allreduce_timeout_ms" json:"allreduce_timeout_ms"`
	// RingTransport carries the allreduce between workers: "grpc"
	// (default; gRPC streams) or "tcp" (Recur's own TCP links: faster where
	// the ring is CPU-bound, on loopback and links of 10 Gbit/s and more).
	// "" means the default.
	RingTransport string `yaml:"ring_transport" json:"ring_transport"`
	// Compression encodes the gradients on the ring: "none" (default;
	// exact float32), "fp16" or "bf16" (half the bytes; reduction stays
	// float32, and the loss, token count and carried states travel exact).
	Compression string `yaml:"compression" json:"compression"`
	// Overlap reduces the gradient in buckets while the backward pass
	// runs (default true): each bucket goes on the ring as soon as
	// backward has finished its parameters (the head first, then the top
	// layer, ... down to the embedding), so most of the communication
	// hides behind the rest of backward. false reduces the whole gradient
	// after backward in one call. The update is the same either way (within
	// float32 rounding: with more than 2 workers the ring adds the workers'
	// gradients in another order) and identical on every worker.
	Overlap bool `yaml:"overlap" json:"overlap"`
	// BucketBytes is the smallest bucket of an overlapped reduction, in
	// float32 bytes of gradient. Buckets are cut where the backward pass
	// finishes a part of the model (the head, a layer, an embedding); a
	// bucket takes whole parts, from the output down, until it holds at
	// least BucketBytes, and a last bucket smaller than that joins the one
	// before (both are ready only at the end of backward). Default
	// DefaultBucketBytes (1 MiB); 0: one bucket per part. Each bucket is a
	// ring call, which costs 2(N-1) link latencies: a gradient that makes
	// one bucket is reduced as without overlap, in one call.
	BucketBytes int64 `yaml:"bucket_bytes" json:"bucket_bytes"`
	// MemoryLimit is the memory one worker may use, as "24GB" or "16GiB"
	// (see ParseBytes). A job whose estimate (Config.Estimate) exceeds it
	// is refused before anything is allocated. Default "": the machine's
	// memory or its cgroup's limit, whichever is lower
	// (DetectMemoryLimit), on the coordinator and again on each worker;
	// set it when the coordinator's machine is smaller than the workers'.
	MemoryLimit string `yaml:"memory_limit" json:"memory_limit,omitempty"`
}

// Task kinds (TaskConfig.Kind).
const (
	TaskCharLM   = "charlm"   // next character of a text corpus, TBPTT streams
	TaskClassify = "classify" // sequence to class: IDX images (rows as steps) or JSONL
	TaskForecast = "forecast" // CSV series: the next Horizon values from Input steps
	TaskSeq2Seq  = "seq2seq"  // JSONL input tokens to output tokens, encoder-decoder with EOS
)

// Gradient encodings on the ring (ClusterConfig.Compression).
const (
	CompressNone = "none"
	CompressFP16 = "fp16"
	CompressBF16 = "bf16"
)

// DefaultBucketBytes is cluster.bucket_bytes's default: about a
// millisecond of a 10 Gbit/s link, so a bucket's bytes outweigh its
// call's latencies, while a layer of a 256-wide LSTM is a bucket of its own.
const DefaultBucketBytes = 1 << 20

// Ring transports (ClusterConfig.RingTransport).
const (
	RingTCP  = "tcp"
	RingGRPC = "grpc"
)

// Default returns a job with every default filled in.
func Default() Config {
	s := schedule.DefaultConfig()
	s.BaseLR = 2e-3
	return Config{
		Task:      TaskConfig{Kind: TaskCharLM, EOS: 1},
		Model:     ModelConfig{Cell: "lstm", Hidden: 256, Layers: 2, Embed: 64},
		Data:      DataConfig{Seq: 100, Horizon: 1, Batch: 32, TrainFraction: 0.9},
		Optimizer: optim.DefaultConfig(optim.KindAdam),
		Schedule:  s,
		Train:     TrainConfig{Clip: 5, Seed: 1, Threads: 1, CheckpointEvery: 100, ValidateEvery: 200, MaxSkippedSteps: 10},
		Cluster: ClusterConfig{MinWorkers: 1, AllreduceTimeoutMS: 5000, RingTransport: RingGRPC, Compression: CompressNone,
			Overlap: true, BucketBytes: DefaultBucketBytes},
	}
}

// DefaultValFraction is data.val_fraction's default: a tenth of the rows
// before a forecast's test part validate, enough windows to rank
// checkpoints without starving training.
const DefaultValFraction = 0.1

// Validate reports the first impossible value, naming its key: a number
// that is not finite, out of range or above its hard cap (caps keep every
// size product far from overflowing), and a job whose memory estimate
// exceeds cluster.memory_limit (default: this machine's memory or cgroup
// limit; see CheckMemory).
func (c Config) Validate() error {
	if err := c.validateValues(); err != nil {
		return err
	}
	lim, err := c.Cluster.Limit()
	if err != nil {
		return err
	}
	return c.CheckMemory(c.Sizes(), c.Cluster.MinWorkers, 1, lim)
}

// Hard caps on integer keys: far above any job that fits in memory, low
// enough that no product of them overflows an int64 before the memory
// estimate (in float64) refuses it.
const (
	maxWidth       = 1 << 20 // model.hidden, model.embed
	maxLayers      = 1024
	maxSteps       = 1 << 24 // data.seq, data.max_len, data.horizon
	maxRows        = 1 << 24 // data.batch
	maxClasses     = 1 << 24 // data.classes, data.vocab
	maxThreads     = 1024
	maxWorkers     = 1 << 16
	maxCount       = 1 << 40 // train.steps and step intervals
	maxMinutes     = 1e7     // train.minutes (19 years: no Duration overflow)
	maxBucketBytes = 1 << 40 // cluster.bucket_bytes (a TiB: far above any gradient)
)

// intKey is an integer key with its bounds.
type intKey struct {
	name    string
	v, lo   int64
	hi      int64
	loLabel string // how to say v < lo
}

func (c Config) intKeys() []intKey {
	pos := func(name string, v int64, hi int64) intKey {
		return intKey{name, v, 1, hi, "must be positive"}
	}
	nonneg := func(name string, v int64, hi int64) intKey {
		return intKey{name, v, 0, hi, "must not be negative"}
	}
	return []intKey{
		pos("model.hidden", int64(c.Model.Hidden), maxWidth), pos("model.layers", int64(c.Model.Layers), maxLayers),
		pos("model.embed", int64(c.Model.Embed), maxWidth),
		pos("data.seq", int64(c.Data.Seq), maxSteps), pos("data.batch", int64(c.Data.Batch), maxRows),
		nonneg("data.horizon", int64(c.Data.Horizon), maxSteps), nonneg("data.classes", int64(c.Data.Classes), maxClasses),
		nonneg("data.vocab", int64(c.Data.Vocab), maxClasses), nonneg("data.max_len", int64(c.Data.MaxLen), maxSteps),
		nonneg("data.buckets", int64(c.Data.Buckets), maxRows), nonneg("data.season", int64(c.Data.Season), maxSteps),
		pos("train.steps", c.Train.Steps, maxCount), pos("train.threads", int64(c.Train.Threads), maxThreads),
		nonneg("train.checkpoint_every", c.Train.CheckpointEvery, maxCount), nonneg("train.validate_every", c.Train.ValidateEvery, maxCount),
		nonneg("train.val_windows", int64(c.Train.ValWindows), math.MaxInt32),
		{"train.max_skipped_steps", int64(c.Train.MaxSkippedSteps), -1, math.MaxInt32, "must be positive, or -1 for no limit"},
		nonneg("train.early_stop", int64(c.Train.EarlyStop), math.MaxInt32),
		pos("cluster.min_workers", int64(c.Cluster.MinWorkers), maxWorkers), nonneg("cluster.max_workers", int64(c.Cluster.MaxWorkers), maxWorkers),
		pos("cluster.allreduce_timeout_ms", int64(c.Cluster.AllreduceTimeoutMS), 24*3600*1000),
		nonneg("cluster.bucket_bytes", c.Cluster.BucketBytes, maxBucketBytes),
		nonneg("task.eos", int64(c.Task.EOS), maxClasses), nonneg("task.bos", int64(c.Task.BOS), maxClasses),
	}
}

// validateValues checks each key on its own and the rules between keys.
func (c Config) validateValues() error {
	if err := c.checkFinite(); err != nil {
		return err
	}
	if _, err := rnn.ParseCell(c.Model.Cell); err != nil {
		return fmt.Errorf("config model.cell: %w", err)
	}
	for _, k := range c.intKeys() {
		if k.v < k.lo {
			return fmt.Errorf("config %s %s, got %d", k.name, k.loLabel, k.v)
		}
		if k.v > k.hi {
			return fmt.Errorf("config %s=%d is above its limit %d", k.name, k.v, k.hi)
		}
	}
	switch {
	case (c.Task.Kind == "" || c.Task.Kind == TaskCharLM) && c.Data.Text == "":
		return fmt.Errorf("config data.text: no corpus given")
	case c.Task.Kind != "" && c.Task.Kind != TaskCharLM && c.Data.Train == "":
		return fmt.Errorf("config data.train: the %s task needs a training file", c.Task.Kind)
	case c.Model.Dropout < 0 || c.Model.Dropout >= 1:
		return fmt.Errorf("config model.dropout must be in [0, 1), got %v", c.Model.Dropout)
	case c.Data.TrainFraction <= 0 || c.Data.TrainFraction >= 1:
		return fmt.Errorf("config data.train_fraction must be in (0, 1), got %v", c.Data.TrainFraction)
	case c.Data.ValFraction < 0 || c.Data.ValFraction >= 1:
		return fmt.Errorf("config data.val_fraction must be in [0, 1) (0: the default %v), got %v", DefaultValFraction, c.Data.ValFraction)
	case c.Data.Residual != "" && c.Data.Residual != ResidualLast && c.Data.Residual != ResidualAR:
		return fmt.Errorf("config data.residual %q: want %q, %q or nothing", c.Data.Residual, ResidualLast, ResidualAR)
	case c.Task.Kind == TaskForecast && c.Data.Val != "":
		return fmt.Errorf("config data.val: the forecast task splits data.train in time (data.train_fraction, data.val_fraction); a separate file is not supported")
	case c.Train.Minutes < 0 || c.Train.Minutes > maxMinutes:
		return fmt.Errorf("config train.minutes must be in [0, %g], got %v", float64(maxMinutes), c.Train.Minutes)
	case c.Train.Clip < 0:
		return fmt.Errorf("config train.clip must not be negative, got %v", c.Train.Clip)
	case c.Train.EarlyStop > 0 && c.Train.ValidateEvery == 0:
		return fmt.Errorf("config train.early_stop needs train.validate_every")
	case c.Cluster.MaxWorkers != 0 && c.Cluster.MaxWorkers < c.Cluster.MinWorkers:
		return fmt.Errorf("config cluster.max_workers %d is below cluster.min_workers %d", c.Cluster.MaxWorkers, c.Cluster.MinWorkers)
	case c.Cluster.RingTransport != "" && c.Cluster.RingTransport != RingTCP && c.Cluster.RingTransport != RingGRPC:
		return fmt.Errorf("config cluster.ring_transport %q: want %q or %q", c.Cluster.RingTransport, RingTCP, RingGRPC)
	case c.Cluster.Compression != "" && c.Cluster.Compression != CompressNone && c.Cluster.Compression != CompressFP16 && c.Cluster.Compression != CompressBF16:
		return fmt.Errorf("config cluster.compression %q: want %q, %q or %q", c.Cluster.Compression, CompressNone, CompressFP16, CompressBF16)
	case c.Cluster.MinWorkers > c.Data.Batch:
		return fmt.Errorf("config cluster.min_workers %d exceeds data.batch %d: every worker needs a stream", c.Cluster.MinWorkers, c.Data.Batch)
	}
	if err := c.Optimizer.Validate(); err != nil {
		return fmt.Errorf("config optimizer: %w", err)
	}
	if _, err := schedule.New(c.Schedule); err != nil {
		return fmt.Errorf("config schedule: %w", err)
	}
	return nil
}

// Hash identifies what a checkpoint depends on: the model, data and
// optimizer (not the step count or cluster policy, which may change on a
// resume).
func (c Config) Hash() string {
	b, _ := json.Marshal(struct {
		K TaskConfig
		M ModelConfig
		D DataConfig
		O optim.Config
		S uint64
	}{c.Task, c.Model, c.Data, c.Optimizer, c.Train.Seed})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// Diff names the first field where a and b differ in what Hash covers, for a
// clear "checkpoint of another model" error.
func Diff(a, b Config) string {
	for _, f := range []struct {
		name string
		x, y any
	}{{"task", a.Task, b.Task}, {"model", a.Model, b.Model}, {"data", a.Data, b.Data}, {"optimizer", a.Optimizer, b.Optimizer}, {"train.seed", a.Train.Seed, b.Train.Seed}} {
		if !reflect.DeepEqual(f.x, f.y) {
			return f.name + ": " + firstDiff(f.x, f.y)
		}
	}
	return ""
}

func firstDiff(x, y any) string {
	vx, vy := reflect.ValueOf(x), reflect.ValueOf(y)
	if vx.Kind() != reflect.Struct {
		return fmt.Sprintf("%v vs %v", x, y)
	}
	for i := 0; i < vx.NumField(); i++ {
		if !reflect.DeepEqual(vx.Field(i).Interface(), vy.Field(i).Interface()) {
			name := strings.ToLower(vx.Type().Field(i).Name)
			if tag := vx.Type().Field(i).Tag.Get("yaml"); tag != "" {
				name = tag
			}
			return fmt.Sprintf("%s %v vs %v", name, vx.Field(i).Interface(), vy.Field(i).Interface())
		}
	}
	return "differs"
}
