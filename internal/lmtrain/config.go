// Package lmtrain trains a character-level language model on a text corpus
// in one process: TBPTT streams from pkg/shard, a model and trainer from
// pkg/rnn, periodic validation, checkpoints as safetensors beside the
// vocabulary. It is the engine behind `recur train` in single-process mode.
package lmtrain

import (
	"errors"
	"fmt"
	"time"

	"github.com/recur-ml/recur/pkg/rnn"
)

// Config describes one training run. The zero value of each field means its
// documented default (Default returns them filled in).
type Config struct {
	Text     string        // corpus: a UTF-8 text file, or a directory of them; required
	Out      string        // output directory for checkpoints; default "runs/charlm"
	Cell     string        // lstm, gru, rnn_tanh or rnn_relu; default lstm
	Hidden   int           // hidden units; default 256
	Layers   int           // stacked layers; default 2
	Embed    int           // embedding width; default 64
	Dropout  float64       // between layers; default 0
	Seq      int           // TBPTT window T; default 100
	Batch    int           // parallel streams B; default 32
	LR       float64       // Adam learning rate; default 2e-3
	Clip     float64       // global gradient norm clip; default 5
	Steps    int           // stop after this many steps (0: no limit)
	Duration time.Duration // stop after this wall time (0: no limit)
	Eval     time.Duration // validate this often; default 1 minute
	EvalMax  int           // validation windows per evaluation (0: the whole split)
	Threads  int           // goroutines per step; default 2
	Seed     uint64        // initialisation and data seed; default 1
	Sample   int           // characters sampled at the end; default 300
}

// Default returns c with defaults applied.
func (c Config) Default() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Out == "" {
		c.Out = "runs/charlm"
	}
	if c.Cell == "" {
		c.Cell = "lstm"
	}
	def(&c.Hidden, 256)
	def(&c.Layers, 2)
	def(&c.Embed, 64)
	def(&c.Seq, 100)
	def(&c.Batch, 32)
	def(&c.Threads, 2)
	def(&c.Sample, 300)
	if c.LR == 0 {
		c.LR = 2e-3
	}
	if c.Clip == 0 {
		c.Clip = 5
	}
	if c.Eval == 0 {
		c.Eval = time.Minute
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Validate reports the first impossible value (after defaults).
func (c Config) Validate() error {
	c = c.Default()
	if c.Text == "" {
		return errors.New("lmtrain: no corpus given (--text FILE or DIR)")
	}
	if _, err := rnn.ParseCell(c.Cell); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden", c.Hidden}, {"layers", c.Layers}, {"embed", c.Embed}, {"seq", c.Seq}, {"batch", c.Batch}, {"threads", c.Threads}} {
		if f.v <= 0 {
			return fmt.Errorf("lmtrain: %s must be positive, got %d", f.name, f.v)
		}
	}
	if c.LR <= 0 || c.Clip < 0 || c.Steps < 0 || c.Duration < 0 || c.EvalMax < 0 {
		return fmt.Errorf("lmtrain: lr must be positive and clip, steps, duration, eval-max not negative (lr %v, clip %v, steps %d, duration %v)", c.LR, c.Clip, c.Steps, c.Duration)
	}
	if c.Steps == 0 && c.Duration == 0 {
		return errors.New("lmtrain: set a limit: --steps or --minutes")
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("lmtrain: dropout must be in [0, 1), got %v", c.Dropout)
	}
	return nil
}
