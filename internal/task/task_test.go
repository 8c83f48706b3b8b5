package task

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/pkg/rnn"
)

func textJob(t *testing.T, text string) job.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	j := job.Default()
	j.Data.Text, j.Data.Seq, j.Data.Batch = p, 10, 4
	return j
}

// Check returns a text corpus's vocabulary, refuses one too short for the
// batch (naming the key and the sizes), and names an unknown task kind.
func TestCheck(t *testing.T) {
	j := textJob(t, strings.Repeat("abc def\n", 200))
	vocab, err := Check(j)
	if err != nil || !strings.Contains(string(vocab), "a") {
		t.Fatalf("Check: %s, %v", vocab, err)
	}
	mc, err := Model(j)
	if err != nil || mc.Vocab < 6 {
		t.Fatalf("Model: %+v, %v", mc, err)
	}
	if _, err := Check(textJob(t, "abc")); err == nil || !strings.Contains(err.Error(), "data.text") {
		t.Fatalf("a 3-character corpus: %v, want an error naming data.text", err)
	}
	j.Task.Kind = "translate"
	if _, err := Open(j); err == nil || !strings.Contains(err.Error(), "task.kind") {
		t.Fatalf("unknown kind: %v", err)
	}
}

// writeFile writes text to a file in a test directory and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// seq2seqJob is a job over JSONL lines with inputs of the given lengths.
func seq2seqJob(t *testing.T, lengths ...int) job.Config {
	t.Helper()
	var b strings.Builder
	for i, n := range lengths {
		fmt.Fprintf(&b, `{"input": [%s], "output": [%d]}`+"\n", strings.TrimSuffix(strings.Repeat("2,", n), ","), 2+i%10)
	}
	j := job.Default()
	j.Task.Kind, j.Data.Train, j.Data.Vocab, j.Data.Batch = job.TaskSeq2Seq, writeFile(t, "pairs.jsonl", b.String()), 12, 4
	j.Cluster.MemoryLimit, j.Train.Steps = "8GB", 10
	return j
}

// With data.max_len at its default, an over-long JSONL example is an error
// naming file:line, the limit and how to raise it (40 examples of 100k
// tokens used to take 2.5 GB); an explicit data.max_len skips them.
func TestMaxLen(t *testing.T) {
	lengths := []int{5, 3, job.DefaultMaxLen + 1, 4, 6, 2, 7, 3, 5, 4, 6, 3, 2, 5, 4, 3, 6, 2, 5, 4}
	j := seq2seqJob(t, lengths...)
	_, err := Check(j)
	if err == nil {
		t.Fatal("an example over the default limit accepted")
	}
	for _, want := range []string{"config data.train", "pairs.jsonl:3", fmt.Sprint(job.DefaultMaxLen), "data.max_len", "set it higher"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	j.Data.MaxLen = 10
	if _, err := Check(j); err != nil {
		t.Fatalf("explicit data.max_len: %v", err)
	}
	tk, err := Open(j)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if in, _ := tk.(*exampleTask).longest(); in != 7 {
		t.Fatalf("longest kept input %d, want 7 (the long one skipped)", in)
	}
}

// Check estimates memory with the data's sizes: the longest sequence,
// which the keys alone do not know.
func TestCheckMemory(t *testing.T) {
	lengths := make([]int, 20)
	for i := range lengths {
		lengths[i] = 3
	}
	lengths[7] = 2000
	j := seq2seqJob(t, lengths...)
	if _, err := Check(j); err != nil {
		t.Fatalf("within 8 GB: %v", err)
	}
	s, err := sizesOf(j)
	if err != nil || s.Steps != 2000 || s.DecSteps != 2 || s.Vocab != 12 || s.Outputs != 12 {
		t.Fatalf("sizes %+v, %v", s, err)
	}
	j.Cluster.MemoryLimit = "100MB"
	if err := j.Validate(); err != nil {
		t.Fatalf("the keys alone fit in 100 MB: %v", err)
	}
	_, err = Check(j)
	if err == nil || !strings.Contains(err.Error(), "2000 steps") || !strings.Contains(err.Error(), "cluster.memory_limit") {
		t.Fatalf("a 2000-step example in 100 MB: %v", err)
	}
}

func sizesOf(j job.Config) (job.Sizes, error) {
	tk, err := Open(j)
	if err != nil {
		return job.Sizes{}, err
	}
	defer tk.Close()
	return Sizes(j, tk)
}

// A constant series has no linear AR fit (its least squares is singular):
// eval reports the model and persistence and says the baseline is
// unavailable, instead of failing.
func TestForecastConstantSeries(t *testing.T) {
	j := job.Default()
	j.Task.Kind, j.Data.Train, j.Data.Seq, j.Data.Batch = job.TaskForecast, writeFile(t, "flat.csv", "v\n"+strings.Repeat("5\n", 200)), 8, 4
	j.Model.Hidden, j.Model.Layers = 8, 1
	mc, err := Model(j)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rnn.New[float32](mc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := EvaluateReport(j, m)
	if err != nil {
		t.Fatalf("eval of a constant series: %v", err)
	}
	if _, ok := r.Metrics["rmse"]; !ok {
		t.Fatalf("no rmse: %v", r.Metrics)
	}
	if r.Metrics["rmse_persistence"] != 0 {
		t.Fatalf("persistence of a constant series: %v", r.Metrics["rmse_persistence"])
	}
	if _, ok := r.Metrics["rmse_linear_ar"]; ok || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "linear AR baseline is unavailable") {
		t.Fatalf("metrics %v, notes %q", r.Metrics, r.Notes)
	}
}

// A char-LM corpus that does not exist is an error that says how to point
// at another file, both before training (CheckText) and on opening.
func TestMissingTextSaysHowToPointAtAnother(t *testing.T) {
	j := job.Default()
	j.Data.Text = filepath.Join(t.TempDir(), "tinyshakespeare.txt")
	_, openErr := Open(j)
	for name, err := range map[string]error{"CheckText": CheckText(j), "Open": openErr} {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: %v, want a not-exist error", name, err)
		}
		for _, want := range []string{"data.text", j.Data.Text, "--text FILE", "--set data.text=FILE"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: no %q in %q", name, want, err)
			}
		}
	}
	if err := CheckText(textJob(t, "abc")); err != nil {
		t.Errorf("an existing corpus: %v", err)
	}
	j.Task.Kind = job.TaskForecast
	if err := CheckText(j); err != nil {
		t.Errorf("a forecast job has no data.text to check: %v", err)
	}
}
