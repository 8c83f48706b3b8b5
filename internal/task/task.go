// Package task is what a job learns: it reads the job's data, derives the
// model's shape (vocabulary, features, classes), yields a rank's share of
// every global batch by step (charlm: TBPTT streams whose carried state
// rides in the allreduce; the others: bucketed, W-independent examples),
// and evaluates a model: losses, accuracy, exact match, forecast errors
// against a persistence and a linear AR baseline, and predictions.
package task

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/shard"
)

// Task is the data side of a job: it builds the model's shape, yields this
// rank's share of every global batch by step, and evaluates.
type Task interface {
	// ModelConfig returns the model the data calls for.
	ModelConfig() (rnn.Config, error)
	// SetRing points the data at rank of world.
	SetRing(rank, world int) error
	// Batch returns this rank's share of global batch step (B may be 0),
	// with the stream ids and reset flags of TBPTT rows (nil otherwise).
	Batch(step int64) (b *rnn.Batch[float32], streams []int, reset []bool, err error)
	// Streams is the number of carried TBPTT streams (0: none).
	Streams() int
	// Validate returns this rank's share of the validation loss sum and
	// count over the first maxBatches validation batches (TBPTT windows;
	// 0: all), and how many it evaluated.
	Validate(m *rnn.Model[float32], rank, world, maxBatches int) (sum, count float64, batches int, err error)
	// Close releases the data (a memory-mapped corpus).
	Close() error
}

// Open opens the job's data.
func Open(jc job.Config) (Task, error) {
	switch jc.Task.Kind {
	case "", job.TaskCharLM:
		return openCharTask(jc)
	case job.TaskClassify, job.TaskForecast, job.TaskSeq2Seq:
		return openExampleTask(jc)
	}
	return nil, fmt.Errorf("config task.kind: unknown %q (want %s)", jc.Task.Kind, strings.Join([]string{job.TaskCharLM, job.TaskClassify, job.TaskForecast, job.TaskSeq2Seq}, ", "))
}

// Model returns the model of a job, reading its data for the sizes
// (vocabulary, input features, classes).
func Model(jc job.Config) (rnn.Config, error) {
	t, err := Open(jc)
	if err != nil {
		return rnn.Config{}, err
	}
	defer t.Close()
	return t.ModelConfig()
}

// Check opens the job's data once: it must exist, parse, and fit the
// batch. For a text corpus it returns the vocabulary as JSON (saved beside
// the checkpoints for sampling and evaluation), else nil.
func Check(jc job.Config) (vocab []byte, err error) {
	t, err := Open(jc)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if _, err := t.ModelConfig(); err != nil {
		return nil, err
	}
	if err := CheckMemory(jc, t); err != nil {
		return nil, err
	}
	ct, ok := t.(*charTask)
	if !ok {
		return nil, nil
	}
	d := jc.Data
	if n, need := ct.corpus.Train().Len(), int64(d.Batch*(d.Seq+1)); n < need {
		return nil, fmt.Errorf("data.text %s has %d training characters; %d streams of %d need at least %d", d.Text, n, d.Batch, d.Seq, need)
	}
	return ct.corpus.Vocab().MarshalJSON()
}

// CheckMemory refuses a job whose workers would need more memory than
// cluster.memory_limit (default: this machine's memory or cgroup limit),
// estimated with the sizes t's data gives: the vocabulary, the input
// features, the outputs and the longest sequences (job.Config.Estimate).
func CheckMemory(jc job.Config, t Task) error {
	s, err := Sizes(jc, t)
	if err != nil {
		return err
	}
	lim, err := jc.Cluster.Limit()
	if err != nil {
		return err
	}
	return jc.CheckMemory(s, jc.Cluster.MinWorkers, 1, lim)
}

// Sizes returns what t's data says about a worker's memory.
func Sizes(jc job.Config, t Task) (job.Sizes, error) {
	mc, err := t.ModelConfig()
	if err != nil {
		return job.Sizes{}, err
	}
	s := job.Sizes{Vocab: mc.Vocab, Input: mc.Input, Outputs: mc.Outputs}
	if s.Outputs == 0 {
		s.Outputs = mc.Vocab // rnn's default: a language model
	}
	switch t := t.(type) {
	case *charTask:
		s.Steps, s.Streams, s.PerStep = jc.Data.Seq, jc.Data.Batch, true
	case *exampleTask:
		s.Steps, s.DecSteps = t.longest()
	}
	return s, nil
}

// baseModel fills the recurrent part of a model config from the job.
func baseModel(jc job.Config) (rnn.Config, error) {
	cell, err := rnn.ParseCell(jc.Model.Cell)
	if err != nil {
		return rnn.Config{}, err
	}
	return rnn.Config{Embed: jc.Model.Embed, Cell: cell, Hidden: jc.Model.Hidden, Layers: jc.Model.Layers,
		Dropout: jc.Model.Dropout, Bidirectional: jc.Model.Bidirectional, Seed: jc.Train.Seed}, nil
}

// charTask is a character language model over TBPTT streams.
type charTask struct {
	job    job.Config
	corpus *shard.TextCorpus
	stream *shard.Streams
	rank   int
	world  int
	b      rnn.Batch[float32]
}

func openCharTask(jc job.Config) (*charTask, error) {
	corpus, err := shard.OpenText(jc.Data.Text, shard.TextConfig{TrainFraction: jc.Data.TrainFraction})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, textMissing(err)
	}
	if err != nil {
		return nil, err
	}
	return &charTask{job: jc, corpus: corpus}, nil
}

// CheckText refuses a char-LM job whose data.text does not exist, saying
// how to point at another file; other tasks pass. recur train calls it
// before it starts any process, so the error is not buried in a log.
func CheckText(jc job.Config) error {
	if jc.Task.Kind != "" && jc.Task.Kind != job.TaskCharLM {
		return nil
	}
	if _, err := os.Stat(jc.Data.Text); errors.Is(err, fs.ErrNotExist) {
		return textMissing(err)
	}
	return nil
}

// textMissing wraps a missing corpus's error with the ways to name another.
func textMissing(err error) error {
	return fmt.Errorf("data.text: %w (give your corpus with --text FILE (recur train) or --set data.text=FILE; "+
		"examples/charlm.yaml says where to get tiny-shakespeare)", err)
}

func (t *charTask) ModelConfig() (rnn.Config, error) {
	c, err := baseModel(t.job)
	c.Shape, c.Vocab = rnn.SeqToSeq, t.corpus.Vocab().Size()
	return c, err
}

func (t *charTask) SetRing(rank, world int) error {
	if t.stream != nil && t.rank == rank && t.world == world {
		return nil
	}
	st, err := shard.NewStreams(t.corpus.Train(), shard.StreamConfig{Streams: t.job.Data.Batch, Steps: t.job.Data.Seq,
		Seed: t.job.Train.Seed, Rank: rank, World: world})
	if err != nil {
		return err
	}
	t.stream, t.rank, t.world = st, rank, world
	return nil
}

func (t *charTask) Batch(step int64) (*rnn.Batch[float32], []int, []bool, error) {
	if err := t.stream.Seek(uint64(step)); err != nil {
		return nil, nil, nil, err
	}
	sb, err := t.stream.Next()
	if err != nil {
		return nil, nil, nil, err
	}
	t.b = rnn.Batch[float32]{T: sb.T, B: sb.B, Tokens: sb.Tokens, Targets: sb.Targets}
	return &t.b, sb.StreamIDs, sb.Reset, nil
}

func (t *charTask) Streams() int { return t.job.Data.Batch }

func (t *charTask) Validate(m *rnn.Model[float32], rank, world, maxBatches int) (float64, float64, int, error) {
	n := t.job.Train.ValWindows
	if maxBatches > 0 && (n == 0 || maxBatches < n) {
		n = maxBatches
	}
	return evaluate(m, t.corpus.Validation(), t.job.Data.Batch, t.job.Data.Seq, n, rank, world, t.job.Train.Threads)
}

func (t *charTask) Close() error { return t.corpus.Close() }
