package task

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
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
