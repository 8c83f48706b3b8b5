package cluster

import (
	"fmt"
	"strings"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/shard"
)

// Task kinds (JobConfig.Task.Kind).

// task is the data side of a job: it builds the model's shape, yields this
// rank's share of every global batch by step, and evaluates.
type task interface {
	// modelConfig returns the model the data calls for.
	modelConfig() (rnn.Config, error)
	// setRing points the data at rank of world.
	setRing(rank, world int) error
	// batch returns this rank's share of global batch step (B may be 0),
	// with the stream ids and reset flags of TBPTT rows (nil otherwise).
	batch(step int64) (b *rnn.Batch[float32], streams []int, reset []bool, err error)
	// streams is the number of carried TBPTT streams (0: none).
	streams() int
	// validate returns this rank's share of the validation loss sum and count.
	validate(m *rnn.Model[float32], rank, world int) (sum, count float64, err error)
	close() error
}

// openTask opens the job's data.
func openTask(jc job.Config) (task, error) {
	switch jc.Task.Kind {
	case "", job.TaskCharLM:
		return openCharTask(jc)
	case job.TaskClassify, job.TaskForecast, job.TaskSeq2Seq:
		return openExampleTask(jc)
	}
	return nil, fmt.Errorf("config task.kind: unknown %q (want %s)", jc.Task.Kind, strings.Join([]string{job.TaskCharLM, job.TaskClassify, job.TaskForecast, job.TaskSeq2Seq}, ", "))
}

// TaskModel returns the model of a job, reading its data for the sizes
// (vocabulary, input features, classes).
func TaskModel(jc job.Config) (rnn.Config, error) {
	t, err := openTask(jc)
	if err != nil {
		return rnn.Config{}, err
	}
	defer t.close()
	return t.modelConfig()
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
	if err != nil {
		return nil, err
	}
	return &charTask{job: jc, corpus: corpus}, nil
}

func (t *charTask) modelConfig() (rnn.Config, error) {
	c, err := baseModel(t.job)
	c.Shape, c.Vocab = rnn.SeqToSeq, t.corpus.Vocab().Size()
	return c, err
}

func (t *charTask) setRing(rank, world int) error {
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

func (t *charTask) batch(step int64) (*rnn.Batch[float32], []int, []bool, error) {
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

func (t *charTask) streams() int { return t.job.Data.Batch }

func (t *charTask) validate(m *rnn.Model[float32], rank, world int) (float64, float64, error) {
	return Evaluate(m, t.corpus.Validation(), t.job.Data.Batch, t.job.Data.Seq, t.job.Train.ValWindows, rank, world, t.job.Train.Threads)
}

func (t *charTask) close() error { return t.corpus.Close() }
