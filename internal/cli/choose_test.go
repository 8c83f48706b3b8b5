package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/coordinator"
	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/checkpoint"
	"github.com/recur-ml/recur/pkg/rnn"
	"github.com/recur-ml/recur/pkg/safetensors"
)

// saved is a checkpoint a test run directory holds: its step and
// validation loss (NaN: not validated).
type saved struct {
	step uint64
	val  float64
}

// runDir writes a charlm run directory as a coordinator leaves it:
// job.json, vocab.json and a store holding cks (saved in order, with the
// store's default retention), and returns it. validateEvery is the job's
// train.validate_every.
func runDir(t *testing.T, validateEvery int64, cks ...saved) string {
	t.Helper()
	dir := t.TempDir()
	jc := job.Default()
	jc.Model = job.ModelConfig{Cell: "lstm", Hidden: 8, Layers: 1, Embed: 4}
	jc.Data.Text, jc.Data.Seq, jc.Data.Batch = writeCorpus(t), 16, 4
	jc.Train.Steps, jc.Train.ValidateEvery = 100, validateEvery
	if err := jc.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jc)
	if err != nil {
		t.Fatal(err)
	}
	vocab, err := task.Check(jc)
	if err != nil {
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
	params, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"job.json": b, "vocab.json": vocab} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range cks {
		ck := &checkpoint.Checkpoint{Step: c.step, Params: params, ConfigHash: jc.Hash(), Metrics: map[string]float64{"train_loss": 3}}
		if !math.IsNaN(c.val) {
			ck.Metrics["val_loss"] = c.val
		}
		if err := st.Save(t.Context(), ck); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var none = math.NaN()

// eval, sample, export and predict use the best checkpoint by validation
// loss unless --checkpoint says otherwise, and say which step they use,
// with its validation loss and the alternative.
func TestCheckpointChoice(t *testing.T) {
	// Retention keeps the 3 newest and the best: step 20, older than
	// them, survives; 50 is newest and not validated.
	dir := runDir(t, 10, saved{10, 2.0}, saved{20, 1.5}, saved{30, 1.7}, saved{40, 1.9}, saved{45, 1.5}, saved{50, none})
	for _, tt := range []struct {
		which    string
		step     uint64
		label    string
		note     []string
		best     bool
		hasVal   bool
		newestOK bool
	}{
		{"best", 20, "the best checkpoint", []string{"using the best checkpoint by validation loss, step 20 (validation loss 1.5000)",
			"the newest is step 50 (not validated): --checkpoint latest"}, true, true, false},
		{"latest", 50, "the newest checkpoint", []string{"using the newest checkpoint, step 50 (not validated)",
			"the best by validation loss is step 20 (validation loss 1.5000): --checkpoint best (the default)"}, false, false, true},
		{"40", 40, "", []string{"using the checkpoint of step 40 (validation loss 1.9000)"}, false, true, false},
		{"45", 45, "", []string{"step 45 (validation loss 1.5000)"}, false, true, false}, // a tie: the earlier is the best
		{"50", 50, "the newest checkpoint", []string{"using the checkpoint of step 50 (not validated), the newest"}, false, false, true},
		{"20", 20, "the best checkpoint", []string{"using the checkpoint of step 20 (validation loss 1.5000), the best by validation loss"}, true, true, false},
	} {
		t.Run(tt.which, func(t *testing.T) {
			r, err := openRun(dir, tt.which, t.Output())
			if err != nil {
				t.Fatal(err)
			}
			if r.step != tt.step || r.chosen.label() != tt.label || r.chosen.isBest() != tt.best || r.chosen.isNewest() != tt.newestOK {
				t.Fatalf("--checkpoint %s: step %d %q best %v newest %v, want step %d %q best %v newest %v", tt.which, r.step, r.chosen.label(),
					r.chosen.isBest(), r.chosen.isNewest(), tt.step, tt.label, tt.best, tt.newestOK)
			}
			for _, want := range tt.note {
				if !strings.Contains(r.chosen.note(), want) {
					t.Errorf("note %q does not say %q", r.chosen.note(), want)
				}
			}
			// Export records the choice in the file's metadata.
			out := filepath.Join(t.TempDir(), "m.safetensors")
			var stdout, stderr bytes.Buffer
			if err := Export([]string{"--run", dir, "--out", out, "--checkpoint", tt.which}, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			md := f.Metadata
			want := map[string]string{"step": strconv.FormatUint(tt.step, 10), "checkpoint": tt.which, "best": map[bool]string{true: "true", false: "false"}[tt.best]}
			for k, v := range want {
				if md[k] != v {
					t.Errorf("export metadata %s = %q, want %q", k, md[k], v)
				}
			}
			if _, has := md["val_loss"]; has != tt.hasVal {
				t.Errorf("export metadata val_loss %q (present %v), want present %v", md["val_loss"], has, tt.hasVal)
			}
			if !strings.Contains(stderr.String(), tt.note[0]) || !strings.Contains(stdout.String(), "from "+r.chosen.stepLabel()+":") {
				t.Errorf("export: stdout %q, stderr %q: want the step and its label, and the note", &stdout, &stderr)
			}
		})
	}
}

// The default is the best: recur eval and sample with no --checkpoint use
// it and say so on standard error; eval's result line names it.
func TestEvalAndSampleDefaultToBest(t *testing.T) {
	dir := runDir(t, 10, saved{10, 2.0}, saved{20, 1.5}, saved{30, 1.7})
	var stdout, stderr bytes.Buffer
	if err := Eval([]string{"--run", dir}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "step 20 (the best checkpoint): loss ") {
		t.Errorf("eval printed %q, want the result of step 20, the best checkpoint", &stdout)
	}
	if !strings.Contains(stderr.String(), "using the best checkpoint by validation loss, step 20 (validation loss 1.5000); the newest is step 30") {
		t.Errorf("eval's note: %q", &stderr)
	}
	stdout.Reset()
	stderr.Reset()
	if err := Sample([]string{"--run", dir, "--n", "5", "--seed", "3"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "step 20") || strings.Contains(stdout.String(), "step") {
		t.Errorf("sample: stdout %q (the text only), stderr %q (which step)", &stdout, &stderr)
	}
	stdout.Reset()
	stderr.Reset()
	if err := Eval([]string{"--run", dir, "--checkpoint", "latest"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "step 30 (the newest checkpoint): loss ") {
		t.Errorf("eval --checkpoint latest printed %q", &stdout)
	}
}

// A run without validation has no best: "best" gives the newest checkpoint
// and says why, naming train.validate_every when it is off.
func TestBestFallsBackToNewestWithoutValidation(t *testing.T) {
	for _, tt := range []struct {
		validateEvery int64
		why           string
	}{
		{0, "the run has no validation (train.validate_every is 0)"},
		{100, "no checkpoint of this run has a validation loss yet"},
	} {
		dir := runDir(t, tt.validateEvery, saved{10, none}, saved{20, none})
		r, err := openRun(dir, "best", t.Output())
		if err != nil {
			t.Fatal(err)
		}
		want := "recur: using the newest checkpoint, step 20: " + tt.why + ", so there is no best to choose"
		if r.step != 20 || r.chosen.note() != want || r.chosen.label() != "the newest checkpoint" {
			t.Errorf("validate_every %d: step %d, note %q, label %q; want step 20, %q", tt.validateEvery, r.step, r.chosen.note(), r.chosen.label(), want)
		}
		out := filepath.Join(t.TempDir(), "m.safetensors")
		if err := Export([]string{"--run", dir, "--out", out}, t.Output(), t.Output()); err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Metadata["best"] != "false" || f.Metadata["step"] != "20" {
			t.Errorf("export metadata best %q step %q, want false, 20", f.Metadata["best"], f.Metadata["step"])
		}
	}
}

// While a coordinator holds the store, the copies beside it serve "best"
// and "latest", with the same choice and fallback.
func TestCheckpointChoiceWhileTheStoreIsHeld(t *testing.T) {
	dir := runDir(t, 10)
	st, err := checkpoint.Open(filepath.Join(dir, "checkpoints.db"), checkpoint.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close() // holds the lock, as a running coordinator does
	params, err := freshParams(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, step uint64, val float64) {
		ck := &checkpoint.Checkpoint{Step: step, Params: params, ConfigHash: readJob(t, dir).Hash(), Metrics: map[string]float64{}}
		if !math.IsNaN(val) {
			ck.Metrics["val_loss"] = val
		}
		if err := checkpoint.WriteFile(filepath.Join(dir, name), ck); err != nil {
			t.Fatal(err)
		}
	}
	write(coordinator.LatestCheckpointFile, 30, none)
	r, err := openRun(dir, "best", t.Output())
	if err != nil {
		t.Fatal(err)
	}
	if r.step != 30 || r.chosen.fallback == "" {
		t.Errorf("no best.ckpt: step %d, fallback %q; want the newest, 30, with a note", r.step, r.chosen.fallback)
	}
	write(coordinator.BestCheckpointFile, 20, 1.25)
	for which, want := range map[string]uint64{"best": 20, "latest": 30} {
		r, err := openRun(dir, which, t.Output())
		if err != nil {
			t.Fatal(err)
		}
		if r.step != want || r.chosen.best == nil || r.chosen.best.step != 20 || r.chosen.newest == nil || r.chosen.newest.step != 30 {
			t.Errorf("--checkpoint %s while the store is held: step %d (%+v), want %d", which, r.step, r.chosen, want)
		}
	}
	if _, err := openRun(dir, "20", t.Output()); err == nil || !strings.Contains(err.Error(), "once it stops") {
		t.Errorf("a step while the store is held: %v", err)
	}
}

func readJob(t *testing.T, dir string) job.Config {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var jc job.Config
	if err := json.Unmarshal(b, &jc); err != nil {
		t.Fatal(err)
	}
	return jc
}

// freshParams returns the parameter bytes of a new model of dir's job.
func freshParams(t *testing.T, dir string) ([]byte, error) {
	mc, err := task.Model(readJob(t, dir))
	if err != nil {
		return nil, err
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		return nil, err
	}
	return m.MarshalBinary()
}

// The end of a run's summary names the best and the final (or newest)
// validation loss, each with its step, and which one the commands use.
func TestBestAndFinalLabels(t *testing.T) {
	b, f := &ckInfo{step: 2000, val: 1.516, hasVal: true}, &ckInfo{step: 3832, val: 1.548, hasVal: true}
	for _, tt := range []struct {
		name         string
		best, newest *ckInfo
		validate     int64
		final        bool
		want         string
	}{
		{"overfitted", b, f, 500, true, "best validation loss 1.5160 at step 2000 (the checkpoint eval, sample, export and predict use); " +
			"final validation loss 1.5480 at step 3832 (--checkpoint latest)"},
		{"running", b, f, 500, false, "best validation loss 1.5160 at step 2000 (the checkpoint eval, sample, export and predict use); " +
			"newest validation loss 1.5480 at step 3832 (--checkpoint latest)"},
		{"final is best", f, f, 500, true, "best validation loss 1.5480 at step 3832, the final checkpoint (the one eval, sample, export and predict use)"},
		{"final not validated", b, &ckInfo{step: 3832}, 500, true, "best validation loss 1.5160 at step 2000 (the checkpoint eval, sample, export and predict use); " +
			"final checkpoint step 3832, not validated (--checkpoint latest)"},
		{"no validation", nil, f, 0, true, "no validation loss (train.validate_every is 0): eval, sample, export and predict use the final checkpoint, step 3832"},
		{"none validated yet", nil, f, 500, false, "no checkpoint has a validation loss yet: eval, sample, export and predict use the newest checkpoint, step 3832"},
	} {
		if got := bestAndFinal(tt.best, tt.newest, tt.validate, tt.final, allCommands); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	// The end of recur train names only the commands of the run's task.
	for kind, want := range map[string]string{"": "sample, eval and export", job.TaskForecast: "predict, eval and export"} {
		if got := usedBy(kind); got != want {
			t.Errorf("usedBy(%q) = %q, want %q", kind, got, want)
		}
	}
}

// recur status reads the best and the newest checkpoint from the typed
// events (a resumed run's start event names the best from before the
// resume) and labels them.
func TestStatusBestAndFinal(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := []events.Event{
		{Kind: events.EventStart, Time: t0, Step: -1},
		{Kind: events.EventValidation, Step: 2000, ValLoss: 1.516, BestValLoss: 1.516},
		{Kind: events.EventCheckpoint, Step: 2000, ValLoss: 1.516, BestStep: 2000, BestValLoss: 1.516},
		{Kind: events.EventStart, Step: 2000, BestStep: 2000, BestValLoss: 1.516}, // resumed
		{Kind: events.EventStep, Step: 3832, Loss: 1.2, Time: t0.Add(time.Minute)},
		{Kind: events.EventValidation, Step: 3832, ValLoss: 1.548, BestValLoss: 1.516},
		{Kind: events.EventCheckpoint, Step: 3832, ValLoss: 1.548, BestStep: 2000, BestValLoss: 1.516},
	}
	s := statusOf(ev)
	if s.best == nil || s.best.step != 2000 || s.best.val != 1.516 || s.newest == nil || s.newest.step != 3832 || s.newest.val != 1.548 {
		t.Fatalf("status best %+v newest %+v, want 2000 (1.516) and 3832 (1.548)", s.best, s.newest)
	}
	running := summarize(ev)
	ended := summarize(append(ev, events.Event{Kind: events.EventFinished, Step: 3832, Message: "step budget reached"}))
	for _, tt := range []struct{ out, want string }{
		{running, "best:        checkpoint of step 2000, validation loss 1.5160: the one eval, sample, export and predict use\n"},
		{running, "newest:      checkpoint of step 3832, validation loss 1.5480 (--checkpoint latest)\n"},
		{ended, "final:       checkpoint of step 3832, validation loss 1.5480 (--checkpoint latest)\n"},
	} {
		if !strings.Contains(tt.out, tt.want) {
			t.Errorf("status lacks %q:\n%s", tt.want, tt.out)
		}
	}
	// A run with no validated checkpoint says so.
	s = statusOf([]events.Event{{Kind: events.EventStart, Step: -1}, {Kind: events.EventCheckpoint, Step: 10}})
	if s.best != nil || s.newest == nil || s.newest.hasVal {
		t.Errorf("unvalidated run: best %+v newest %+v", s.best, s.newest)
	}
}

// After a run diverged, recur train names the best checkpoint, kept from
// before the diverged steps, which the commands use.
func TestKeptBestAfterDivergence(t *testing.T) {
	dir := runDir(t, 10, saved{10, 2.0}, saved{20, 1.5}, saved{30, 1.8}, saved{40, none})
	if got, want := keptBest(dir, 10), "; the best checkpoint, step 20 (validation loss 1.5000), is kept: recur eval --run "+dir+" uses it"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := keptBest(runDir(t, 0, saved{10, none}), 0); got != "" {
		t.Errorf("a run without validation: %q, want nothing", got)
	}
}
