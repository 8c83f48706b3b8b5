package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/safetensors"
	"github.com/recur-ml/recur/pkg/shard"
)

// run is a finished (or running) job's directory: its config, vocabulary
// and newest good checkpoint loaded into a model.
type run struct {
	dir   string
	job   job.Config
	vocab *shard.Vocab
	model *rnn.Model[float32]
	step  uint64
	// chosen is the checkpoint loaded and how it was chosen.
	chosen *chosen
}

// openRun loads dir (written by the coordinator) with the checkpoint
// which names: "best" (the lowest validation loss, or the newest when no
// checkpoint has one), "latest" or a step. It reads the store read-only,
// so it works on a read-only file system; while the run's coordinator
// holds the store it reads the checkpoint files the coordinator keeps
// beside it (latest.ckpt, best.ckpt). r.chosen.note() says which
// checkpoint it is, for the user.
func openRun(dir, which string, stderr io.Writer) (*run, error) {
	r := &run{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, "job.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a Recur run directory: %w", dir, err)
	}
	if err := json.Unmarshal(b, &r.job); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "job.json"), err)
	}
	if r.charLM() {
		vb, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", dir, err)
		}
		r.vocab = &shard.Vocab{}
		if err := r.vocab.UnmarshalJSON(vb); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "vocab.json"), err)
		}
	}
	ch, err := loadCheckpoint(dir, which, r.job.Train.ValidateEvery, stderr)
	if err != nil {
		return nil, err
	}
	ck := ch.ck
	r.chosen = ch
	if ck.ConfigHash != r.job.Hash() {
		return nil, fmt.Errorf("run %s: checkpoint of step %d does not belong to job.json", dir, ck.Step)
	}
	mc, err := task.Model(r.job)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	if r.model, err = rnn.New[float32](mc); err != nil {
		return nil, err
	}
	if err := r.model.UnmarshalBinary(ck.Params); err != nil {
		if r.job.Task.Kind == job.TaskForecast {
			if n, ok := checkpointOutputs(ck.Params); ok && n != mc.Outputs {
				if ferr := task.CheckForecastOutputs(r.job, n); ferr != nil {
					err = ferr
				}
			}
		}
		return nil, fmt.Errorf("run %s, checkpoint of step %d: %w", dir, ck.Step, err)
	}
	r.step = ck.Step
	return r, nil
}

// checkpointOutputs reads the number of outputs a checkpoint's model
// has from its metadata.
func checkpointOutputs(params []byte) (int, bool) {
	f, err := safetensors.Read(bytes.NewReader(params))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(f.Metadata["outputs"])
	return n, err == nil
}

func (r *run) charLM() bool { return r.job.Task.Kind == "" || r.job.Task.Kind == job.TaskCharLM }

// sampleText generates n characters after prime.
func (r *run) sampleText(prime string, n int, temperature float64, seed uint64) (string, error) {
	if !r.charLM() {
		return "", fmt.Errorf("sample: the run is a %s task; sampling text needs a charlm run (use recur predict or recur eval)", r.job.Task.Kind)
	}
	p := r.vocab.Encode(prime)
	if len(p) == 0 {
		return "", errors.New("sample: the prime is empty")
	}
	ids, err := r.model.Sample(p, n, temperature, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		return "", err
	}
	return prime + r.vocab.Decode(ids), nil
}

// Sample runs `recur sample`.
func Sample(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("run", "runs/recur", "run directory (the coordinator's --dir)")
	prime := fs.String("prime", "The ", "text the sample continues")
	n := fs.Int("n", 500, "characters to generate")
	temp := fs.Float64("temperature", 0.8, "sampling temperature; 0 always takes the most likely character")
	seed := fs.Uint64("seed", 0, "random seed (0: a new one each time)")
	which := checkpointFlag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: recur sample [--run DIR] [--prime TEXT] [--n N] [flags]\n\n"+
			"Generates text from a charlm run's checkpoint, continuing --prime: by default the\n"+
			"best by validation loss (standard error says which step). Other tasks' runs use\n"+
			"recur predict and recur eval.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if err := checkSampleFlags(*n, *temp); err != nil {
		return err
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	r, err := openRun(*dir, *which, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, r.chosen.note())
	s, err := r.sampleText(*prime, *n, *temp, *seed)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s)
	return nil
}

// Eval runs `recur eval`: the loss of the best checkpoint (by default) on
// the validation split (or on another text file).
func Eval(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("run", "runs/recur", "run directory (the coordinator's --dir)")
	text := fs.String("text", "", "charlm: evaluate on this whole file instead of the job's validation split")
	split := fs.String("split", task.SplitTest, `forecast: the rows measured: "test" (held out) or "validation" (where to compare configurations)`)
	which := checkpointFlag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: recur eval [--run DIR] [--checkpoint latest|best|STEP] [flags]\n\n"+
			"Evaluates a run's checkpoint (by default the best by validation loss; standard\n"+
			"error says which step and why) on the job's validation set: for charlm the loss in\n"+
			"nats and bits per character; for classify and seq2seq the task's metrics (accuracy,\n"+
			"exact match); for forecast, on the held-out test rows (--split validation: the\n"+
			"validation rows), RMSE and MAE of each target at each step ahead, beside\n"+
			"persistence, seasonal naive (data.season) and linear AR.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if *split != task.SplitTest && *split != task.SplitValidation {
		return fmt.Errorf("%w: --split %q: want %s or %s", errUsage, *split, task.SplitTest, task.SplitValidation)
	}
	r, err := openRun(*dir, *which, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, r.chosen.note())
	if *split != task.SplitTest && r.job.Task.Kind != job.TaskForecast {
		return fmt.Errorf("%w: --split applies to forecast runs", errUsage)
	}
	if !r.charLM() {
		if *text != "" {
			return fmt.Errorf("eval: --text applies to charlm runs")
		}
		return r.evalTask(stdout, *split)
	}
	cfg := shard.TextConfig{Vocab: r.vocab, TrainFraction: r.job.Data.TrainFraction}
	path := r.job.Data.Text
	if *text != "" {
		path = *text
	}
	corpus, err := shard.OpenText(path, cfg)
	if err != nil {
		return err
	}
	defer corpus.Close()
	tokens := shard.Tokens(corpus.Validation())
	what := "validation split of " + path
	if *text != "" {
		tokens = wholeText{corpus}
		what = path
	}
	return r.report(stdout, tokens, what)
}

// evalTask prints the task's metrics on its validation (test) set; a
// forecast's on split.
func (r *run) evalTask(stdout io.Writer, split string) error {
	t0 := time.Now()
	rep, err := task.EvaluateReport(r.job, r.model)
	if r.job.Task.Kind == job.TaskForecast {
		rep, err = task.EvaluateForecast(r.job, r.model, split)
	}
	if err != nil {
		return err
	}
	if rep.Forecast != nil {
		return printForecast(stdout, r.stepLabel(), rep, time.Since(t0))
	}
	m := rep.Metrics
	fmt.Fprintf(stdout, "%s, %s task, validation set (%s):", r.stepLabel(), r.job.Task.Kind, time.Since(t0).Round(time.Millisecond))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, " %s=%.4g", k, m[k])
	}
	fmt.Fprintln(stdout)
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	return nil
}

// evalValidation prints the loss (and task metrics) on the job's
// validation split.
func (r *run) evalValidation(stdout io.Writer) error {
	if !r.charLM() {
		return r.evalTask(stdout, task.SplitTest)
	}
	corpus, err := shard.OpenText(r.job.Data.Text, shard.TextConfig{Vocab: r.vocab, TrainFraction: r.job.Data.TrainFraction})
	if err != nil {
		return err
	}
	defer corpus.Close()
	return r.report(stdout, corpus.Validation(), "validation split of "+r.job.Data.Text)
}

// loss evaluates a char LM on tokens: the job's data.batch streams of
// data.seq windows with the state carried (python/recur's evaluate
// computes the same).
func (r *run) loss(tokens shard.Tokens) (sum, count float64, err error) {
	return task.Evaluate(r.model, tokens, r.job.Data.Batch, r.job.Data.Seq, 0, 0, 1, 2)
}

// report evaluates tokens and prints the loss.
func (r *run) report(stdout io.Writer, tokens shard.Tokens, what string) error {
	sum, count, err := r.loss(tokens)
	if err != nil {
		return err
	}
	if count == 0 {
		return fmt.Errorf("eval: %s is too short for one window of %d characters", what, r.job.Data.Seq)
	}
	loss := sum / count
	fmt.Fprintf(stdout, "%s: loss %.4f nats/char (%.4f bits/char, perplexity %.2f) over %.0f characters of the %s\n",
		r.stepLabel(), loss, loss/math.Ln2, math.Exp(loss), count, what)
	return nil
}

// stepLabel is "step N" with what the checkpoint is: "step 2000 (the
// best checkpoint)".
func (r *run) stepLabel() string {
	if r.chosen == nil {
		return fmt.Sprintf("step %d", r.step)
	}
	return r.chosen.stepLabel()
}

// wholeText reads a corpus's training and validation parts as one stream.
type wholeText struct{ c *shard.TextCorpus }

func (w wholeText) Len() int64 { return w.c.Train().Len() + w.c.Validation().Len() }

func (w wholeText) ReadTokens(dst []int32, off int64) error {
	tr := w.c.Train()
	n := tr.Len()
	if off >= n {
		return w.c.Validation().ReadTokens(dst, off-n)
	}
	k := min(int64(len(dst)), n-off)
	if err := tr.ReadTokens(dst[:k], off); err != nil {
		return err
	}
	if int(k) < len(dst) {
		return w.c.Validation().ReadTokens(dst[k:], 0)
	}
	return nil
}

// Export runs `recur export`: the best checkpoint (by default) as a
// safetensors file with PyTorch state_dict names.
func Export(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("run", "runs/recur", "run directory (the coordinator's --dir)")
	out := fs.String("out", "", "output file (default RUN/model.safetensors)")
	which := checkpointFlag(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: recur export [--run DIR] [--out FILE] [--checkpoint best|latest|STEP]\n\n"+
			"Writes a run's checkpoint (by default the best by validation loss) as a safetensors\n"+
			"file with PyTorch state_dict names; its metadata records the task, the model, the\n"+
			"job, the step, whether it is the best checkpoint and its validation loss.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	r, err := openRun(*dir, *which, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, r.chosen.note())
	if *out == "" {
		*out = filepath.Join(*dir, "model.safetensors")
	}
	f, err := r.exportFile()
	if err != nil {
		return err
	}
	if err := safetensors.WriteFile(*out, f); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s from %s: %d parameters in %d tensors: %s; metadata: %s\n",
		*out, r.stepLabel(), r.model.Params.Len(), len(f.Tensors), tensorNames(r.model), strings.Join(slices.Sorted(maps.Keys(f.Metadata)), ", "))
	return nil
}

// PredictCmd runs `recur predict`: the best checkpoint (by default)
// applied to new data.
func PredictCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recur predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("run", "runs/recur", "run directory (the coordinator's --dir)")
	input := fs.String("input", "", "JSONL inputs (classify, seq2seq) or a CSV series (forecast); required unless --test-set")
	testSet := fs.Bool("test-set", false, "forecast: predict every window of the held-out test part, as CSV beside the baselines eval compares with")
	out := fs.String("out", "", "write the predictions to this file (default: standard output)")
	which := checkpointFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recur predict --run DIR --input FILE\n       recur predict --run DIR --test-set [--out FILE]\n\n"+
			"Writes one JSON line per prediction: a class with probabilities, a decoded\noutput sequence, or the forecast after the CSV's last window.\n"+
			"Uses the best checkpoint by validation loss unless --checkpoint says otherwise;\nstandard error says which step.\n"+
			"With --test-set (forecast), writes CSV: origin,row,step,column,actual,model and each\nbaseline, one line per test window, step and target column.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if (*input == "") == !*testSet {
		return errors.New("predict: give --input FILE or --test-set")
	}
	r, err := openRun(*dir, *which, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, r.chosen.note())
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("predict: %w", err)
		}
		defer f.Close()
		w = f
	}
	if *testSet {
		err = task.PredictTestSet(r.job, r.model, w)
	} else {
		err = task.Predict(r.job, r.model, *input, w)
	}
	if err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok && *out != "" {
		return f.Close()
	}
	return nil
}
