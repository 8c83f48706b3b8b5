package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/safetensors"
	"github.com/recur-ml/recur/pkg/shard"
)

// The Python package (python/recur) against Recur: these tests run
// /usr/bin/python3 with PyTorch and skip when either is missing (Debian:
// apt-get install python3-torch python3-numpy; scripts/setup.sh installs
// them for CI).

const python = "/usr/bin/python3"

func needTorch(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("skipped: no %s (the Python interop tests need it with torch: apt-get install python3-torch python3-numpy)", python)
	}
	if out, err := exec.Command(python, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		t.Skipf("skipped: %s cannot import torch and numpy (apt-get install python3-torch python3-numpy): %v\n%s", python, err, out)
	}
}

// runPython runs a script of testdata/python with the package on the path
// and decodes the JSON it writes to its last argument into res.
func runPython(t *testing.T, res any, script string, args ...string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	cmd := exec.Command(python, append([]string{filepath.Join("testdata", "python", script)}, append(args, out)...)...)
	root, _ := filepath.Abs("../../python")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+root)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, res); err != nil {
		t.Fatalf("%s wrote %s: %v", script, b, err)
	}
}

// heldOut writes text the corpus's model has not trained on, with the
// corpus's characters.
func heldOut(t *testing.T) string {
	words := strings.Fields("whether tis nobler in the mind to suffer or to take arms against a sea of troubles")
	var b strings.Builder
	rng := rand.New(rand.NewPCG(7, 7))
	for b.Len() < 6000 {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteString([]string{" ", " ", ",\n", ".\n"}[rng.IntN(4)])
	}
	p := filepath.Join(t.TempDir(), "held.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func recurRun(t *testing.T, args ...string) string {
	t.Helper()
	c := exec.Command(recurBin, args...)
	var o bytes.Buffer
	c.Stdout, c.Stderr = &o, &o
	if code := runCmd(t, c, &o, 3*time.Minute); code != 0 {
		t.Fatalf("recur %v: exit %d\n%s", args, code, &o)
	}
	return o.String()
}

// goEval is the loss `recur eval --run dir --text path` prints, in full
// precision (of the checkpoint eval and export use by default).
func goEval(t *testing.T, dir, path string) float64 {
	t.Helper()
	r, err := openRun(dir, whichBest, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return evalModel(t, r.model, r.job, r.vocab, path)
}

func evalModel(t *testing.T, m *rnn.Model[float32], jc job.Config, v *shard.Vocab, path string) float64 {
	t.Helper()
	c, err := shard.OpenText(path, shard.TextConfig{Vocab: v, TrainFraction: jc.Data.TrainFraction})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &run{job: jc, model: m, vocab: v}
	sum, count, err := r.loss(wholeText{c})
	if err != nil {
		t.Fatal(err)
	}
	return sum / count
}

// A char LM trained by `recur train` and exported loads in Python, whose
// loss on a held-out file is recur eval's.
func TestPythonLoadsExportedModel(t *testing.T) {
	needTorch(t)
	dir := t.TempDir()
	cmd, out := trainCmd(t, dir, 1, "--steps", "4", "--set", "model.layers=2")
	if code := runCmd(t, cmd, out, 3*time.Minute); code != ExitOK {
		t.Fatalf("train: exit %d\n%s", code, out)
	}
	held := heldOut(t)

	py := exec.Command(python, "-c", "import sys, recur; recur.load(sys.argv[1])", dir)
	py.Env = append(os.Environ(), "PYTHONPATH=../../python")
	if b, err := py.CombinedOutput(); err == nil || !strings.Contains(string(b), "recur export --run") {
		t.Fatalf("recur.load of a run directory before export: err %v, want one that says to run recur export:\n%s", err, b)
	}

	msg := recurRun(t, "export", "--run", dir)
	for _, name := range []string{"embedding.weight", "rnn.weight_ih_l1", "head.bias", "vocabulary"} {
		if !strings.Contains(msg, name) {
			t.Errorf("export's message does not name %s:\n%s", name, msg)
		}
	}
	var res struct {
		Loss      float64 `json:"loss"`
		Sample    string  `json:"sample"`
		Greedy    string  `json:"greedy"`
		Task      string  `json:"task"`
		Step      int     `json:"step"`
		VocabSize int     `json:"vocab_size"`
		IDsOfTo   []int32 `json:"ids_of_to"`
	}
	runPython(t, &res, "roundtrip.py", dir, held)
	want := goEval(t, dir, held)
	t.Logf("held-out loss: Python %.7f, recur eval %.7f (difference %.2g)", res.Loss, want, res.Loss-want)
	if math.Abs(res.Loss-want) > 1e-4 {
		t.Errorf("Python's loss %.7f, recur eval's %.7f: differ by more than 1e-4", res.Loss, want)
	}
	r, err := openRun(dir, whichBest, io.Discard) // the one export wrote
	if err != nil {
		t.Fatal(err)
	}
	if res.Task != "charlm" || res.Step != 4 || res.VocabSize != r.vocab.Size() || fmt.Sprint(res.IDsOfTo) != fmt.Sprint(r.vocab.Encode("to")) {
		t.Errorf("Python read task %q step %d, %d ids, \"to\" = %v; want charlm, 4, %d, %v",
			res.Task, res.Step, res.VocabSize, res.IDsOfTo, r.vocab.Size(), r.vocab.Encode("to"))
	}
	if g, err := r.sampleText("to be", 10, 0, 1); err != nil || g != res.Greedy {
		t.Errorf("greedy continuation: Python %q, recur sample %q (%v)", res.Greedy, g, err)
	}
	if !strings.HasPrefix(res.Sample, "to be") || len([]rune(res.Sample)) != 45 {
		t.Errorf("Python's sample %q: want the prompt and 40 characters", res.Sample)
	}
}

// A model trained in PyTorch and saved by recur.save starts `recur train
// --init`: the loss Recur reports for its first step is PyTorch's on the
// same batch, and recur eval of the init weights is Python's.
func TestTrainFromPyTorchWeights(t *testing.T) {
	needTorch(t)
	dir := t.TempDir()
	cmd, out := trainCmd(t, dir, 1, "--steps", "1", "--set", "model.layers=2") // writes the corpus beside dir
	corpus := filepath.Join(dir, "..", filepath.Base(dir)+"-corpus.txt")
	held := heldOut(t)
	initFile := filepath.Join(t.TempDir(), "init.safetensors")
	var res struct {
		First float64 `json:"first_batch_loss"`
		Eval  float64 `json:"eval_loss"`
	}
	runPython(t, &res, "pytorch_init.py", corpus, held, initFile, "32", "2", "8", "8", "16")

	cmd.Args = append(cmd.Args, "--init", initFile)
	if code := runCmd(t, cmd, out, 3*time.Minute); code != ExitOK {
		t.Fatalf("train --init: exit %d\n%s", code, out)
	}
	evs, _, err := events.ReadEventsFile(filepath.Join(dir, events.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	first := math.NaN()
	for _, e := range evs {
		if e.Kind == events.EventStep && e.Step == 1 {
			first = e.Loss
		}
	}
	t.Logf("first batch: Recur's step-1 loss %.7f, PyTorch %.7f (difference %.2g)", first, res.First, first-res.First)
	if !(math.Abs(first-res.First) <= 1e-4) {
		t.Errorf("step 1 loss %.7f, PyTorch's on the same batch %.7f: differ by more than 1e-4", first, res.First)
	}

	// The same command with more steps resumes from the checkpoint of
	// step 1: --init applies to a fresh run only.
	cmd, out = trainCmd(t, dir, 1, "--steps", "2", "--set", "model.layers=2", "--init", initFile)
	if code := runCmd(t, cmd, out, 3*time.Minute); code != ExitOK {
		t.Fatalf("train --init again: exit %d\n%s", code, out)
	}
	if evs, _, err = events.ReadEventsFile(filepath.Join(dir, events.MetricsFile)); err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for _, e := range evs {
		if e.Kind == events.EventStart {
			starts = append(starts, e.Step)
		}
	}
	if len(starts) != 2 || starts[1] != 1 {
		t.Errorf("coordinator starts at steps %v, want the second to resume from the checkpoint of step 1", starts)
	}

	r, err := openRun(dir, "1", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.model.LoadSafetensors(initFile); err != nil {
		t.Fatal(err)
	}
	got := evalModel(t, r.model, r.job, r.vocab, held)
	t.Logf("held-out loss of the init weights: Recur %.7f, PyTorch %.7f (difference %.2g)", got, res.Eval, got-res.Eval)
	if math.Abs(got-res.Eval) > 1e-4 {
		t.Errorf("held-out loss of the init weights: Recur %.7f, PyTorch %.7f", got, res.Eval)
	}
}

// Every shape and cell the package builds computes what pkg/rnn computes,
// bidirectional stacks and padded sequences included.
func TestPythonModelMatchesEveryShape(t *testing.T) {
	needTorch(t)
	dir := t.TempDir()
	type pcase struct {
		File    string    `json:"file"`
		T       int       `json:"T"`
		B       int       `json:"B"`
		TD      int       `json:"TD"`
		Tokens  []int32   `json:"tokens,omitempty"`
		X       []float32 `json:"x,omitempty"`
		Lengths []int     `json:"lengths,omitempty"`
		DecIn   []int32   `json:"dec_in,omitempty"`
		Want    []float32 `json:"want"`
	}
	var cases []pcase
	rng := rand.New(rand.NewPCG(3, 4))
	tokens := func(n, v int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(rng.IntN(v))
		}
		return s
	}
	floats := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	for _, shape := range []rnn.Shape{rnn.SeqToSeq, rnn.SeqToVec, rnn.EncoderDecoder, rnn.VecToSeq} {
		for _, cell := range []rnn.Cell{rnn.LSTM, rnn.GRU, rnn.RNNTanh, rnn.RNNReLU} {
			for _, dense := range []bool{false, true} {
				if shape == rnn.VecToSeq && !dense {
					continue
				}
				cfg := rnn.Config{Shape: shape, Cell: cell, Hidden: 5, Layers: 2, Bidirectional: shape != rnn.VecToSeq, Embed: 4, Seed: 9}
				if dense {
					cfg.Input = 3
				} else {
					cfg.Vocab = 7
				}
				switch shape {
				case rnn.SeqToSeq:
					if dense {
						cfg.Outputs, cfg.Loss = 2, rnn.MSE
					}
				case rnn.SeqToVec:
					cfg.Outputs = 4
					if dense {
						cfg.Loss = rnn.MSE
					}
				case rnn.EncoderDecoder, rnn.VecToSeq:
					cfg.Outputs, cfg.EOS, cfg.BOS = 6, 1, 0
				}
				m, err := rnn.New[float32](cfg)
				if err != nil {
					t.Fatal(err)
				}
				c := pcase{File: fmt.Sprintf("%s-%s-%v.safetensors", shape, cell, dense), T: 6, B: 3}
				b := &rnn.Batch[float32]{T: c.T, B: c.B}
				switch {
				case shape == rnn.VecToSeq:
					b.X = floats(c.B * cfg.Input)
				case dense:
					b.X = floats(c.T * c.B * cfg.Input)
				default:
					b.Tokens = tokens(c.T*c.B, cfg.Vocab)
				}
				if shape == rnn.SeqToVec || shape == rnn.EncoderDecoder {
					b.Lengths = []int{6, 2, 4}
				}
				if shape == rnn.EncoderDecoder || shape == rnn.VecToSeq {
					b.TD = 4
					b.DecIn = tokens(b.TD*c.B, cfg.Outputs)
				}
				out, _, err := m.NewTape(0).Predict(b, rnn.State[float32]{})
				if err != nil {
					t.Fatalf("%s: %v", c.File, err)
				}
				c.TD, c.Tokens, c.X, c.Lengths, c.DecIn, c.Want = b.TD, b.Tokens, b.X, b.Lengths, b.DecIn, append([]float32(nil), out...)
				f := m.StateDict()
				mj, _ := json.Marshal(modelMetadata(m.Config()))
				f.Metadata["format_version"], f.Metadata["task"], f.Metadata["model"] = ExportFormatVersion, "classify", string(mj)
				if err := safetensors.WriteFile(filepath.Join(dir, c.File), f); err != nil {
					t.Fatal(err)
				}
				cases = append(cases, c)
			}
		}
	}
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := map[string]any{}
	runPython(t, &res, "shapes.py", dir)
	worst := 0.0
	for _, c := range cases {
		d, ok := res[c.File].(float64)
		if !ok || d > 1e-5 {
			t.Errorf("%s: PyTorch and Recur differ by %v", c.File, res[c.File])
		}
		worst = max(worst, d)
	}
	t.Logf("%d models: PyTorch (float64) and Recur (float32) outputs differ by at most %.2g", len(cases), worst)
}

// --init refuses weights that do not fit the job's model, naming the
// tensor and both shapes, and a vocabulary that is not the corpus's.
func TestInitRefusesMisfits(t *testing.T) {
	corpus := writeCorpus(t)
	jc := job.Default()
	for _, kv := range []string{"data.text=" + corpus, "model.hidden=16", "model.layers=1", "model.embed=8", "data.batch=4", "data.seq=8"} {
		k, v, _ := strings.Cut(kv, "=")
		if err := jc.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := initState(jc, filepath.Join(t.TempDir(), "absent.safetensors")); err == nil || !strings.Contains(err.Error(), "absent.safetensors") {
		t.Errorf("a missing file: %v, want an error naming it", err)
	}
	jc2 := jc
	jc2.Model.Hidden = 12
	p := filepath.Join(t.TempDir(), "w.safetensors")
	saveJobModel(t, jc2, p, nil)
	_, err := initState(jc, p)
	if err == nil || !strings.Contains(err.Error(), `"rnn.weight_ih_l0" has shape [48 8], the model needs [64 8]`) || !strings.Contains(err.Error(), p) {
		t.Errorf("hidden 12 for 16: %v, want the tensor, both shapes and the file named", err)
	}
	saveJobModel(t, jc, p, map[string]string{"vocabulary": `{"level":"char","runes":[97,98]}`})
	if _, err := initState(jc, p); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("another vocabulary: %v, want a refusal", err)
	}
	saveJobModel(t, jc, p, nil)
	b, err := initState(jc, p)
	if err != nil || len(b) == 0 {
		t.Errorf("a fitting file: %v", err)
	}
}

// saveJobModel writes a freshly initialised model of jc's shape to path.
func saveJobModel(t *testing.T, jc job.Config, path string, md map[string]string) {
	t.Helper()
	vb, err := os.ReadFile(jc.Data.Text)
	if err != nil {
		t.Fatal(err)
	}
	runes := map[rune]bool{}
	for _, r := range string(vb[:int(float64(len(vb))*0.9)]) {
		runes[r] = true
	}
	cell, _ := rnn.ParseCell(jc.Model.Cell)
	m, err := rnn.New[float32](rnn.Config{Shape: rnn.SeqToSeq, Cell: cell, Vocab: len(runes) + 1, Embed: jc.Model.Embed,
		Hidden: jc.Model.Hidden, Layers: jc.Model.Layers})
	if err != nil {
		t.Fatal(err)
	}
	f := m.StateDict()
	for k, v := range md {
		f.Metadata[k] = v
	}
	if err := safetensors.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
}

// recur.predict gives what `recur predict` gives for the tasks it serves:
// the forecast in the series' units (from the exported scaling), greedy
// decoding to EOS, class probabilities. The exported file holds exactly
// the tensors its message lists (a forecast model has no embedding).
func TestPythonPredictMatchesRecur(t *testing.T) {
	needTorch(t)
	dir := t.TempDir()
	csv, jsonl, cls := filepath.Join(dir, "series.csv"), filepath.Join(dir, "reverse.jsonl"), filepath.Join(dir, "classify.jsonl")
	for _, g := range [][]string{{"seasonal", "--n", "400", "--out", csv}, {"reverse", "--n", "40", "--max", "6", "--out", jsonl}} {
		if err := GenData(g, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 30; i++ {
		lines = append(lines, fmt.Sprintf(`{"input": [[%.3f, %.3f], [%.3f, %.3f], [%.3f, %.3f]], "target": %d}`,
			rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), i%3))
	}
	if err := os.WriteFile(cls, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, kind, input string
		sets              []string
	}{
		{"forecast", job.TaskForecast, csv, []string{"data.train=" + csv, "data.seq=12", "data.horizon=3", "model.cell=gru"}},
		{"forecast_residual_last", job.TaskForecast, csv, []string{"data.train=" + csv, "data.seq=12", "data.horizon=3", "data.residual=last"}},
		{"forecast_residual_ar", job.TaskForecast, csv, []string{"data.train=" + csv, "data.seq=12", "data.horizon=3", "data.residual=ar", "data.season=6"}},
		{"seq2seq", job.TaskSeq2Seq, jsonl, []string{"data.train=" + jsonl, "data.vocab=12", "model.bidirectional=true"}},
		{"classify", job.TaskClassify, cls, []string{"data.train=" + cls, "data.classes=3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jc := job.Default()
			for _, kv := range append([]string{"task.kind=" + tc.kind, "model.hidden=8", "model.layers=2", "model.embed=4", "data.batch=4", "train.steps=1"}, tc.sets...) {
				k, v, _ := strings.Cut(kv, "=")
				if err := jc.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			if err := jc.Validate(); err != nil {
				t.Fatal(err)
			}
			mc, err := task.Model(jc)
			if err != nil {
				t.Fatal(err)
			}
			m, err := rnn.New[float32](mc)
			if err != nil {
				t.Fatal(err)
			}
			r := &run{job: jc, model: m}
			f, err := r.exportFile()
			if err != nil {
				t.Fatal(err)
			}
			if names := strings.Split(tensorNames(m), ", "); len(names) != len(f.Tensors) {
				t.Errorf("the message lists %d tensors, the file holds %d", len(names), len(f.Tensors))
			} else {
				for _, n := range names {
					if _, ok := f.Tensors[n]; !ok {
						t.Errorf("the message lists %s, which the file does not hold", n)
					}
				}
			}
			path := filepath.Join(t.TempDir(), "model.safetensors")
			if err := safetensors.WriteFile(path, f); err != nil {
				t.Fatal(err)
			}
			var goOut bytes.Buffer
			if err := task.Predict(jc, m, tc.input, &goOut); err != nil {
				t.Fatal(err)
			}
			var res struct {
				Task   string          `json:"task"`
				Result json.RawMessage `json:"result"`
			}
			runPython(t, &res, "predict.py", path, tc.input)
			if res.Task != tc.kind {
				t.Errorf("Python read task %q", res.Task)
			}
			comparePredictions(t, tc.kind, goOut.Bytes(), res.Result)
		})
	}
}

// comparePredictions compares recur predict's JSON lines with Python's.
func comparePredictions(t *testing.T, kind string, goLines, py []byte) {
	t.Helper()
	type pred struct {
		Forecast []float64 `json:"forecast"`
		Columns  []int     `json:"columns"`
		Output   []int     `json:"output"`
		Class    int       `json:"class"`
		Probs    []float64 `json:"probs"`
	}
	var want []pred
	dec := json.NewDecoder(bytes.NewReader(goLines))
	for dec.More() {
		var p pred
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	var got []pred
	if kind == job.TaskForecast {
		var p pred
		if err := json.Unmarshal(py, &p); err != nil {
			t.Fatal(err)
		}
		got = []pred{p}
	} else if err := json.Unmarshal(py, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Python made %d predictions, recur predict %d", len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		g, w := got[i], want[i]
		if fmt.Sprint(g.Output) != fmt.Sprint(w.Output) || g.Class != w.Class || len(g.Forecast) != len(w.Forecast) ||
			len(g.Probs) != len(w.Probs) || fmt.Sprint(g.Columns) != fmt.Sprint(w.Columns) {
			t.Errorf("prediction %d: Python %+v, recur predict %+v", i, g, w)
			continue
		}
		for j := range w.Forecast {
			worst = max(worst, math.Abs(g.Forecast[j]-w.Forecast[j]))
		}
		for j := range w.Probs {
			worst = max(worst, math.Abs(g.Probs[j]-w.Probs[j]))
		}
	}
	t.Logf("%d predictions agree; values differ by at most %.2g", len(want), worst)
	if worst > 1e-3 { // recur predict rounds probabilities to 1e-4
		t.Errorf("values differ by %g", worst)
	}
}

// recur.char_vocab builds the vocabulary Recur builds for a corpus: the
// characters before the train/validation cut (moved back to a character's
// start), ascending, without U+FFFD; and encodes text to the same ids.
func TestPythonCharVocabIsRecurs(t *testing.T) {
	needTorch(t)
	text := strings.Repeat("héllo wörld ✓ naïve café 🙂 \r\n", 7) + "日本語 \ufffd tail only ✗"
	for _, frac := range []string{"0.9", "0.5", "0.63"} {
		p := filepath.Join(t.TempDir(), "corpus.txt")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		f, _ := strconv.ParseFloat(frac, 64)
		c, err := shard.OpenText(p, shard.TextConfig{TrainFraction: f})
		if err != nil {
			t.Fatal(err)
		}
		want := c.Vocab().Encode(text)
		c.Close()
		cmd := exec.Command(python, "-c", `import sys, json, recur
v = recur.char_vocab(sys.argv[1], float(sys.argv[2]))
print(json.dumps(v.encode(recur.read_text(sys.argv[1]))))`, p, frac)
		cmd.Env = append(os.Environ(), "PYTHONPATH=../../python")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("char_vocab: %v", err)
		}
		var got []int32
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("train_fraction %s: Python's ids\n%v\nRecur's\n%v", frac, got, want)
		}
	}
}
