package task

import (
	"errors"
	"fmt"
	"strings"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/shard"
)

// exampleTask trains on a dataset of independent examples: IDX images or
// JSONL sequences to classify, CSV windows to forecast, JSONL token pairs to
// translate. Global batches come from a W-independent Sampler (bucketed by
// length); the step alone positions the loader.
type exampleTask struct {
	job        job.Config
	train, val shard.Dataset
	test       shard.Dataset // what recur eval measures: val, except for forecast's held-out split
	dim        int           // input features; 0 for token inputs
	vocab      int           // token vocabulary (inputs; outputs too for seq2seq)
	outputs    int           // classes, or forecast values (horizon * targets)
	norm       *shard.Normalizer
	columns    []string // forecast: the series' column names
	// residual (forecast with data.residual) is the baseline whose error
	// the network learns; nil: the network forecasts the values.
	residual    forecastBase
	xbuf        []float32 // one window's inputs, for residual
	split       forecastSplit
	loader      *shard.Loader
	rank, world int
	perEpoch    uint64
	b           rnn.Batch[float32]
}

func openExampleTask(jc job.Config) (*exampleTask, error) {
	t := &exampleTask{job: jc}
	d := jc.Data
	var err error
	switch jc.Task.Kind {
	case job.TaskClassify:
		t.train, t.val, err = loadClassify(d)
		t.outputs = d.Classes
	case job.TaskSeq2Seq:
		jc := jsonlConfig(d, shard.JSONLConfig{Input: shard.TokenKind, Output: shard.TokenKind, Vocab: d.Vocab, AppendEOS: true, EOS: int32(jc.Task.EOS)})
		t.train, t.val, err = loadJSONLPair(d, jc)
		t.outputs = d.Vocab
	case job.TaskForecast:
		err = t.loadForecast()
	}
	if err != nil {
		return nil, err
	}
	if t.test == nil {
		t.test = t.val
	}
	if t.train.Len() == 0 {
		return nil, fmt.Errorf("config data.train: %s holds no examples", d.Train)
	}
	in := t.train.Example(0).Input
	t.dim = in.Dim
	if in.IsTokens() {
		t.vocab = d.Vocab
		if t.vocab <= 0 {
			return nil, fmt.Errorf("config data.vocab: token inputs need the vocabulary size")
		}
	}
	if t.outputs <= 0 {
		return nil, fmt.Errorf("config data.classes / data.vocab: the %s task needs the number of outputs", jc.Task.Kind)
	}
	return t, nil
}

// loadClassify reads "images,labels" IDX pairs or JSONL files.
func loadClassify(d job.DataConfig) (train, val shard.Dataset, err error) {
	if strings.Contains(d.Train, ",") {
		load := func(pair, what string) (shard.Dataset, error) {
			imgs, labels, ok := strings.Cut(pair, ",")
			if !ok {
				return nil, fmt.Errorf("config data.%s: want IMAGES,LABELS IDX files, got %q", what, pair)
			}
			s, err := shard.LoadImageSet(imgs, labels, d.Classes)
			if err != nil {
				return nil, fmt.Errorf("config data.%s: %w", what, err)
			}
			return s, nil
		}
		if train, err = load(d.Train, "train"); err != nil {
			return nil, nil, err
		}
		if d.Val == "" {
			return nil, nil, fmt.Errorf("config data.val: IDX classification needs a test set (IMAGES,LABELS)")
		}
		val, err = load(d.Val, "val")
		return train, val, err
	}
	return loadJSONLPair(d, jsonlConfig(d, shard.JSONLConfig{Classes: d.Classes, Vocab: d.Vocab}))
}

// jsonlConfig sets the length limit of c from data.max_len: an explicit
// limit skips longer examples (the key's meaning since it exists); the
// default limit, job.DefaultMaxLen, refuses them, so no data the job did
// not ask to drop is dropped, and no 100,000-step example reaches the
// model (whose activations grow with the longest batch).
func jsonlConfig(d job.DataConfig, c shard.JSONLConfig) shard.JSONLConfig {
	n, explicit := d.MaxLength()
	c.MaxLen, c.OverLong = n, shard.ErrorLong
	if explicit {
		c.OverLong = shard.SkipLong
	}
	return c
}

// loadJSONLPair reads data.train and data.val (or splits data.train).
func loadJSONLPair(d job.DataConfig, jc shard.JSONLConfig) (train, val shard.Dataset, err error) {
	tr, _, err := shard.LoadJSONL(d.Train, jc)
	if err != nil {
		return nil, nil, jsonlErr("data.train", err)
	}
	if d.Val != "" {
		v, _, err := shard.LoadJSONL(d.Val, jc)
		if err != nil {
			return nil, nil, jsonlErr("data.val", err)
		}
		return tr, v, nil
	}
	n := int(float64(len(tr)) * d.TrainFraction)
	return tr[:n], tr[n:], nil
}

// jsonlErr names the key of a JSONL file's error, and for an example over
// the default length limit says how to raise it.
func jsonlErr(key string, err error) error {
	if errors.Is(err, shard.ErrTooLong) {
		return fmt.Errorf("config %s: %w; data.max_len is %d by default: set it higher to train on such examples "+
			"(--set data.max_len=N; memory grows with it), or set it explicitly to skip longer ones", key, err, job.DefaultMaxLen)
	}
	return fmt.Errorf("config %s: %w", key, err)
}

// longest returns the most input steps of any example, and for seq2seq
// the most output (decoder) steps: the longest batch a worker may see.
func (t *exampleTask) longest() (in, out int) {
	for _, ds := range []shard.Dataset{t.train, t.val, t.test} {
		if ds == nil {
			continue
		}
		for _, n := range shard.Lengths(ds) {
			in = max(in, n)
		}
		if exs, ok := ds.(shard.Examples); ok && t.job.Task.Kind == job.TaskSeq2Seq {
			for _, e := range exs {
				out = max(out, e.Output.Len())
			}
		}
	}
	return in, out
}

func (t *exampleTask) ModelConfig() (rnn.Config, error) {
	c, err := baseModel(t.job)
	c.Vocab, c.Input, c.Outputs = t.vocab, t.dim, t.outputs
	switch t.job.Task.Kind {
	case job.TaskClassify:
		c.Shape = rnn.SeqToVec
	case job.TaskForecast:
		c.Shape, c.Loss = rnn.SeqToVec, rnn.MSE
	case job.TaskSeq2Seq:
		c.Shape, c.EOS, c.BOS = rnn.EncoderDecoder, t.job.Task.EOS, t.job.Task.BOS
	}
	return c, err
}

func (t *exampleTask) loaderConfig(rank, world int, shuffle bool) shard.LoaderConfig {
	lc := shard.LoaderConfig{Sampler: shard.SamplerConfig{BatchSize: t.job.Data.Batch, Seed: t.job.Train.Seed, NoShuffle: !shuffle},
		Rank: rank, World: world}
	if t.job.Data.Buckets > 0 {
		lc.Buckets = &shard.BucketConfig{Buckets: t.job.Data.Buckets}
	}
	return lc
}

func (t *exampleTask) SetRing(rank, world int) error {
	if t.loader != nil && t.rank == rank && t.world == world {
		return nil
	}
	l, err := shard.NewLoader(t.train, t.loaderConfig(rank, world, true))
	if err != nil {
		return err
	}
	t.loader, t.rank, t.world = l, rank, world
	t.perEpoch = uint64(l.Sampler().NumBatches())
	return nil
}

func (t *exampleTask) Batch(step int64) (*rnn.Batch[float32], []int, []bool, error) {
	c := t.loader.Cursor()
	c.Epoch, c.Batch = uint64(step)/t.perEpoch, uint64(step)%t.perEpoch
	if err := t.loader.Restore(c); err != nil {
		return nil, nil, nil, err
	}
	sb, err := t.loader.Next()
	if err != nil {
		return nil, nil, nil, err
	}
	t.convert(&t.b, sb)
	return &t.b, nil, nil, nil
}

// convert views a shard batch as a model batch of the task's shape.
func (t *exampleTask) convert(b *rnn.Batch[float32], sb *shard.Batch) {
	*b = rnn.Batch[float32]{T: sb.T, B: sb.B, Tokens: sb.Tokens, X: sb.X, Lengths: sb.Lengths, Y: b.Y[:0], Targets: b.Targets[:0]}
	switch t.job.Task.Kind {
	case job.TaskClassify:
		for _, l := range sb.Labels {
			b.Targets = append(b.Targets, int32(l))
		}
	case job.TaskForecast:
		// [OutT][B][OutDim] -> [B][OutT*OutDim]
		b.Lengths = nil
		for r := 0; r < sb.B; r++ {
			for s := 0; s < sb.OutT; s++ {
				b.Y = append(b.Y, sb.Y[(s*sb.B+r)*sb.OutDim:(s*sb.B+r+1)*sb.OutDim]...)
			}
			if t.residual != nil {
				// Row r's window out of X, which is [T][B][dim].
				t.xbuf = t.xbuf[:0]
				for s := 0; s < sb.T; s++ {
					t.xbuf = append(t.xbuf, sb.X[(s*sb.B+r)*t.dim:(s*sb.B+r+1)*t.dim]...)
				}
				y := b.Y[len(b.Y)-sb.OutT*sb.OutDim:]
				for j := range y {
					y[j] -= float32(t.residual.predict(t.xbuf, j))
				}
			}
		}
	case job.TaskSeq2Seq:
		b.TD, b.Targets, b.DecLengths = sb.OutT, sb.Targets, sb.OutLengths
		b.DecIn = sb.DecoderInputs(int32(t.job.Task.BOS))
	}
}

func (t *exampleTask) Streams() int { return 0 }

// validate sums the loss over this rank's share of the validation set.
func (t *exampleTask) Validate(m *rnn.Model[float32], rank, world, maxBatches int) (sum, count float64, batches int, err error) {
	tp := m.NewTape(0)
	batches, err = t.eachVal(rank, world, maxBatches, func(b *rnn.Batch[float32]) error {
		res, err := tp.Forward(b, rnn.State[float32]{}, false)
		sum += res.Loss
		count += float64(res.Count)
		return err
	})
	return sum, count, batches, err
}

// EachTest calls f on this rank's share of every test batch, in order:
// the set recur eval measures.
func (t *exampleTask) EachTest(rank, world int, f func(*rnn.Batch[float32]) error) error {
	_, err := t.eachBatch(t.test, rank, world, 0, f)
	return err
}

// eachVal calls f on the first maxBatches global validation batches (0:
// all); it returns how many it went through.
func (t *exampleTask) eachVal(rank, world, maxBatches int, f func(*rnn.Batch[float32]) error) (int, error) {
	return t.eachBatch(t.val, rank, world, maxBatches, f)
}

// eachBatch calls f on this rank's share of the first maxBatches global
// batches of ds (0: all), in order; it returns how many it went through.
func (t *exampleTask) eachBatch(ds shard.Dataset, rank, world, maxBatches int, f func(*rnn.Batch[float32]) error) (int, error) {
	l, err := shard.NewLoader(ds, t.loaderConfig(rank, world, false))
	if err != nil {
		return 0, fmt.Errorf("validation: %w", err)
	}
	n := l.Sampler().NumBatches()
	if maxBatches > 0 {
		n = min(n, maxBatches)
	}
	var b rnn.Batch[float32]
	for i := 0; i < n; i++ {
		sb, err := l.Next()
		if err != nil {
			return i, fmt.Errorf("validation batch %d: %w", i, err)
		}
		if sb.B == 0 {
			continue
		}
		t.convert(&b, sb)
		if err := f(&b); err != nil {
			return i, fmt.Errorf("validation batch %d: %w", i, err)
		}
	}
	return n, nil
}

func (t *exampleTask) Close() error { return nil }
