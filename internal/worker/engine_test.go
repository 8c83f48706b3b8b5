package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recur-ml/recur/internal/job"
)

// A worker refuses a job its memory limit cannot hold before it allocates
// the model, with the keys and the limit in the error.
func TestEngineMemoryLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(p, []byte(strings.Repeat("abc def\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	jc := job.Default()
	jc.Data.Text, jc.Data.Seq, jc.Data.Batch, jc.Train.Steps = p, 10, 4, 10
	jc.Cluster.MemoryLimit = "1GB"
	e, err := newEngine(jc)
	if err != nil {
		t.Fatalf("a small job: %v", err)
	}
	e.close()
	jc.Model.Hidden, jc.Cluster.MemoryLimit = 20000, "2GB"
	if _, err := newEngine(jc); err == nil || !strings.Contains(err.Error(), "model.hidden=20000") || !strings.Contains(err.Error(), "cluster.memory_limit") {
		t.Fatalf("hidden 20000 in 2 GB: %v", err)
	}
}
