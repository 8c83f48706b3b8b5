package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/recur-ml/recur/internal/lmtrain"
)

func cmdTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c lmtrain.Config
	d := c.Default()
	var minutes float64
	fs.StringVar(&c.Text, "text", "", "training corpus: a UTF-8 text file, or a directory of them (first 90% train, last 10% validation)")
	fs.StringVar(&c.Out, "out", d.Out, "output directory for the model, vocabulary and config")
	fs.StringVar(&c.Cell, "cell", d.Cell, "recurrent cell: lstm, gru, rnn_tanh or rnn_relu")
	fs.IntVar(&c.Hidden, "hidden", d.Hidden, "hidden units per layer")
	fs.IntVar(&c.Layers, "layers", d.Layers, "stacked recurrent layers")
	fs.IntVar(&c.Embed, "embed", d.Embed, "character embedding width")
	fs.Float64Var(&c.Dropout, "dropout", 0, "dropout between layers while training")
	fs.IntVar(&c.Seq, "seq", d.Seq, "truncated BPTT window: characters per step and stream")
	fs.IntVar(&c.Batch, "batch", d.Batch, "parallel streams (batch rows)")
	fs.Float64Var(&c.LR, "lr", d.LR, "Adam learning rate")
	fs.Float64Var(&c.Clip, "clip", d.Clip, "clip the gradient to this global L2 norm (0: off)")
	fs.IntVar(&c.Steps, "steps", 0, "stop after this many steps (0: no step limit)")
	fs.Float64Var(&minutes, "minutes", 0, "stop after this many minutes (0: no time limit)")
	fs.DurationVar(&c.Eval, "eval-every", d.Eval, "validate this often")
	fs.IntVar(&c.EvalMax, "eval-windows", 0, "validation windows per evaluation (0: the whole validation split)")
	fs.IntVar(&c.Threads, "threads", d.Threads, "goroutines per step (batch shards)")
	fs.Uint64Var(&c.Seed, "seed", d.Seed, "seed for initialisation and data order")
	fs.IntVar(&c.Sample, "sample", d.Sample, "characters to sample when training ends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("train: unexpected argument %q", fs.Arg(0))
	}
	c.Duration = time.Duration(minutes * float64(time.Minute))
	log := newLogger(stderr)
	defer log.Sync()
	sum, err := lmtrain.Run(ctx, c, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "trained %d steps (%d characters) in %s: %.0f characters/s\n", sum.Steps, sum.Tokens, sum.Elapsed.Round(time.Second), sum.TokensPerSec)
	fmt.Fprintf(stdout, "train loss %.4f, validation loss %.4f nats/char; model saved to %s\n", sum.TrainLoss, sum.ValLoss, sum.Checkpoint)
	fmt.Fprintf(stdout, "sample (temperature 0.8):\n%s\n", sum.Sample)
	return nil
}

func cmdSample(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model", "runs/charlm", "directory written by recur train")
	prime := fs.String("prime", "The ", "text the sample starts from")
	n := fs.Int("n", 500, "characters to generate")
	temp := fs.Float64("temperature", 0.8, "sampling temperature (0: always the most likely character)")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, v, _, err := lmtrain.Load(*dir)
	if err != nil {
		return err
	}
	p := v.Encode(*prime)
	if len(p) == 0 {
		return fmt.Errorf("sample: empty prime")
	}
	ids, err := m.Sample(p, *n, *temp, rand.New(rand.NewPCG(*seed, 1)))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, *prime+v.Decode(ids))
	return nil
}
