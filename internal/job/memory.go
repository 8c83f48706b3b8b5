package job

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Memory estimate of one worker, known before anything is allocated, so a
// job too large for its machine is refused with the keys that make it
// large instead of crashing a worker (makeslice: len out of range, or the
// kernel's OOM killer). It follows pkg/rnn's buffers within a factor of
// about 2; every size is in float32 elements of 4 bytes, computed in
// float64 so no product overflows:
//
//	P           parameters: embedding V·E, per layer and direction
//	            G·H·(in + H + 2) (G gates: LSTM 4, GRU 3, RNN 1), head O·(D·H + 1);
//	            seq2seq adds a decoder embedding O·E, a decoder stack and a head O·(H+1)
//	parameters  P                       the values
//	gradients   P·(train.threads + 1)   one per thread, and the allreduce buffer
//	optimizer   P·k                     k buffers per parameter: adam 2 (amsgrad 3),
//	                                    sgd 1 with momentum else 0, rmsprop 1 (+1 momentum, +1 centered)
//	state       P·(1 + k)·2             the encoded state a worker keeps for peers and
//	                                    checkpoints, and the one being encoded
//	activations R·T·per-step + R·TD·per-decoder-step + R·head, where R is the
//	            worker's rows (ceil(data.batch / workers)), T the input steps
//	            of the longest batch and TD the decoder's; per step and layer,
//	            kept for backpropagation through time:
//	            D·(2·G·H + c·H + in) (gate activations and their gradients, states,
//	            input gradient; c = 2, LSTM 4, GRU 3+G), bidirectional layers
//	            2·D·H + in more, dropout 2·in; a per-step head 2·O + D·H
//	carried     3·streams·L·D·H (LSTM twice): charlm's TBPTT state of every stream
//
// The data itself is not counted: a text corpus is memory-mapped; JSONL,
// IDX and CSV sets are read whole into memory beside the model.

// DefaultMaxLen is the longest JSONL sequence (input or output steps) a
// job accepts when data.max_len is 0. Longer examples are errors that say
// so, file:line; an explicit data.max_len skips longer ones instead.
const DefaultMaxLen = 2048

// MaxLength returns the effective data.max_len, and whether it was set
// (explicit: longer examples are skipped; default: they are errors).
func (d DataConfig) MaxLength() (n int, explicit bool) {
	if d.MaxLen > 0 {
		return d.MaxLen, true
	}
	return DefaultMaxLen, false
}

// Sizes are what a worker's memory depends on beyond the keys: the shape
// the data gives the model, and the longest batch. Config.Sizes guesses
// them from the keys; package task reads them from the data.
type Sizes struct {
	Vocab    int  // token vocabulary of the inputs (0: dense inputs)
	Input    int  // dense input features per step (when Vocab is 0)
	Outputs  int  // head width: classes, vocabulary or forecast values
	Steps    int  // input steps of the longest batch
	DecSteps int  // decoder steps of the longest batch (seq2seq; EOS included)
	Streams  int  // carried TBPTT streams, all of the job's (charlm)
	PerStep  bool // the head predicts at every input step (charlm)
}

// Sizes returns what the keys alone say about the data: a 256-symbol
// vocabulary for a text corpus, one input feature when the data decides,
// and one step for sequences whose length only the data knows (JSONL,
// IDX). It errs small: the data's sizes are checked again once it is read.
func (c Config) Sizes() Sizes {
	d := c.Data
	s := Sizes{Input: 1, Outputs: max(d.Classes, 1), Steps: 1}
	switch c.Task.Kind {
	case "", TaskCharLM:
		s = Sizes{Vocab: 256, Outputs: 256, Steps: d.Seq, Streams: d.Batch, PerStep: true}
	case TaskForecast:
		s.Outputs, s.Steps = max(d.Horizon, 1), d.Seq
	case TaskSeq2Seq:
		s.Vocab, s.Outputs, s.DecSteps = d.Vocab, max(d.Vocab, 1), 1
	case TaskClassify:
		s.Vocab = d.Vocab
	}
	return s
}

// Footprint is an estimate of one worker's memory, in bytes, by part.
type Footprint struct {
	Params      float64 // parameter values (Count float32s)
	Gradients   float64 // gradient buffers
	Optimizer   float64 // optimizer state
	State       float64 // encoded state copies
	Activations float64 // what one step keeps for backpropagation, and carried state
	Count       float64 // parameters
	Rows, Steps int     // the batch the activations are for
}

// Total is the sum of the parts.
func (f Footprint) Total() float64 {
	return f.Params + f.Gradients + f.Optimizer + f.State + f.Activations
}

// gates is the number of gate blocks of a cell.
func gates(cell string) float64 {
	switch strings.ToLower(cell) {
	case "lstm":
		return 4
	case "gru":
		return 3
	}
	return 1
}

// stackParams counts the parameters of a recurrent stack.
func stackParams(G, in0, H, L, D float64) float64 {
	layer := func(in float64) float64 { return D * G * H * (in + H + 2) }
	return layer(in0) + (L-1)*layer(D*H)
}

// stackStep counts the floats a stack keeps per row and step.
func stackStep(cell string, in0, H, L, D float64, dropout bool) float64 {
	G := gates(cell) * H
	c := 2.0
	switch strings.ToLower(cell) {
	case "lstm":
		c = 4
	case "gru":
		c = 3 + gates(cell)
	}
	layer := func(in float64, first bool) float64 {
		n := D * (2*G + c*H + in)
		if D == 2 {
			n += 2*D*H + in
		}
		if dropout && !first {
			n += 2 * in
		}
		return n
	}
	return layer(in0, true) + (L-1)*layer(D*H, false)
}

// Estimate returns the memory one worker needs for a job whose data has
// sizes s, when workers share each global batch.
func (c Config) Estimate(s Sizes, workers int) Footprint {
	m := c.Model
	G, H, L, E := gates(m.Cell), float64(m.Hidden), float64(m.Layers), float64(m.Embed)
	D := 1.0
	if m.Bidirectional {
		D = 2
	}
	V, O := float64(s.Vocab), float64(max(s.Outputs, 1))
	in0 := float64(max(s.Input, 1))
	if s.Vocab > 0 {
		in0 = E
	}
	drop := m.Dropout > 0 && m.Layers > 1
	rows := math.Ceil(float64(max(c.Data.Batch, 1)) / float64(max(workers, 1)))
	T, TD := float64(max(s.Steps, 1)), float64(max(s.DecSteps, 0))

	p := V*E + stackParams(G, in0, H, L, D)
	perStep := stackStep(m.Cell, in0, H, L, D, drop) + in0 + 2 // embedded input, token and target ids
	perRow := 2*O + D*H                                        // a head on the final state
	var perDec float64
	if c.Task.Kind == TaskSeq2Seq {
		p += O*E + stackParams(G, E, H, L, 1) + O*(H+1)
		perDec = stackStep(m.Cell, E, H, L, 1, drop) + E + 2 + 2*O + H
		perRow = 0
	} else {
		p += O * (D*H + 1)
	}
	if s.PerStep {
		perStep += 2*O + D*H
		perRow = 0
	}
	fixed := V * G * H * D // the first layer's projected embedding table
	carry := 3 * float64(s.Streams) * L * D * H
	if strings.EqualFold(m.Cell, "lstm") {
		carry *= 2
	}
	k := float64(c.Optimizer.Buffers())
	const f32 = 4
	return Footprint{
		Count:       p,
		Params:      f32 * p,
		Gradients:   f32 * p * float64(max(c.Train.Threads, 1)+1),
		Optimizer:   f32 * p * k,
		State:       f32 * p * (1 + k) * 2,
		Activations: f32 * (rows*(T*perStep+TD*perDec+perRow) + fixed + carry),
		Rows:        int(rows), Steps: int(T),
	}
}

// CheckMemory refuses a job whose workers need more memory than lim:
// workers share each global batch (the fewest that train it), perMachine
// of them share lim (local mode runs them all on one machine). The error
// names the key that drives the size most, the estimate by part, and the
// limit with its source.
func (c Config) CheckMemory(s Sizes, workers, perMachine int, lim MemoryLimit) error {
	if lim.Bytes <= 0 {
		return nil
	}
	f := c.Estimate(s, workers)
	need := f.Total() * float64(max(perMachine, 1))
	if need <= lim.Bytes {
		return nil
	}
	drivers := c.drivers(s, workers)
	lead := "config"
	if len(drivers) > 0 {
		lead = "config " + drivers[0].key + "=" + fmt.Sprint(drivers[0].value)
	}
	who := "a worker needs"
	if perMachine > 1 {
		who = fmt.Sprintf("%d workers on this machine need", perMachine)
	}
	opt := c.Optimizer.Kind
	if opt == "" {
		opt = "optimizer"
	}
	return fmt.Errorf("%s: %s ~%s (%s parameters: %s, gradients %s, %s state %s, state copies %s, activations %s for %d rows × %d steps) "+
		"but the limit is %s (%s); lower %s, or raise cluster.memory_limit",
		lead, who, FormatBytes(need), humanCount(f.Count), FormatBytes(f.Params), FormatBytes(f.Gradients), opt, FormatBytes(f.Optimizer),
		FormatBytes(f.State), FormatBytes(f.Activations), f.Rows, f.Steps, FormatBytes(lim.Bytes), lim.Source, c.remedies(f, drivers))
}

// driver is a key whose value above its default makes the job larger.
type driver struct {
	key    string
	value  int
	saving float64 // bytes saved by the default value
}

// drivers returns the keys above their defaults, those whose default
// would save the most first.
func (c Config) drivers(s Sizes, workers int) []driver {
	def := Default()
	total := c.Estimate(s, workers).Total()
	stepKey, stepDef := c.stepsKey()
	var out []driver
	try := func(key string, value, dflt int, set func(*Config, *Sizes)) {
		if value <= dflt {
			return
		}
		cc, ss := c, s
		set(&cc, &ss)
		if d := total - cc.Estimate(ss, workers).Total(); d > 0 {
			out = append(out, driver{key, value, d})
		}
	}
	try("model.hidden", c.Model.Hidden, def.Model.Hidden, func(cc *Config, _ *Sizes) { cc.Model.Hidden = def.Model.Hidden })
	try("model.layers", c.Model.Layers, def.Model.Layers, func(cc *Config, _ *Sizes) { cc.Model.Layers = def.Model.Layers })
	try("model.embed", c.Model.Embed, def.Model.Embed, func(cc *Config, _ *Sizes) { cc.Model.Embed = def.Model.Embed })
	try("data.batch", c.Data.Batch, def.Data.Batch, func(cc *Config, _ *Sizes) { cc.Data.Batch = def.Data.Batch })
	try("train.threads", c.Train.Threads, def.Train.Threads, func(cc *Config, _ *Sizes) { cc.Train.Threads = def.Train.Threads })
	if stepKey != "" {
		try(stepKey, s.Steps, stepDef, func(_ *Config, ss *Sizes) {
			ss.Steps = stepDef
			ss.DecSteps = min(ss.DecSteps, stepDef+1)
		})
	}
	if c.Data.Vocab > 0 {
		try("data.vocab", s.Vocab, 256, func(_ *Config, ss *Sizes) { ss.Vocab, ss.Outputs = 256, min(ss.Outputs, 256) })
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].saving > out[j].saving })
	return out
}

// stepsKey names the key that bounds a batch's steps, with its default.
func (c Config) stepsKey() (string, int) {
	switch c.Task.Kind {
	case "", TaskCharLM, TaskForecast:
		return "data.seq", Default().Data.Seq
	case TaskSeq2Seq:
		return "data.max_len", DefaultMaxLen
	case TaskClassify:
		if !strings.Contains(c.Data.Train, ",") { // JSONL, not IDX pairs
			return "data.max_len", DefaultMaxLen
		}
	}
	return "", 0
}

// remedies lists the keys to lower: the drivers, else the usual ones for
// the part that dominates.
func (c Config) remedies(f Footprint, drivers []driver) string {
	var keys []string
	for _, d := range drivers {
		keys = append(keys, d.key)
	}
	stepKey, _ := c.stepsKey()
	usual := []string{"model.hidden", "model.layers", "model.embed"}
	if f.Activations > f.Total()/2 {
		usual = []string{"data.batch (or raise cluster.min_workers)", "model.hidden", "model.layers"}
		if stepKey != "" {
			usual = append(usual[:1], append([]string{stepKey}, usual[1:]...)...)
		}
	}
	for _, u := range usual {
		if len(keys) >= 3 {
			break
		}
		if !contains(keys, u) {
			keys = append(keys, u)
		}
	}
	if len(keys) > 3 {
		keys = keys[:3]
	}
	if len(keys) == 1 {
		return keys[0]
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
}

// contains reports whether xs holds the key x begins with.
func contains(xs []string, x string) bool {
	k, _, _ := strings.Cut(x, " ")
	for _, y := range xs {
		if yk, _, _ := strings.Cut(y, " "); yk == k {
			return true
		}
	}
	return false
}

// humanCount writes a parameter count: "1.2M", "40G".
func humanCount(n float64) string {
	s := FormatBytes(n)
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), " ")
	return strings.NewReplacer(" P", "P", " T", "T", " G", "G", " M", "M", " k", "k").Replace(s)
}
