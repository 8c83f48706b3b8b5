package job

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// validJob is a small job that passes Validate with a fixed memory limit,
// whatever machine runs the test.
func validJob() Config {
	c := Default()
	c.Data.Text = "corpus.txt"
	c.Train.Steps = 10
	c.Cluster.MemoryLimit = "8GB"
	return c
}

// wantErr fails unless err holds every one of parts.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want an error containing %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %q does not contain %q", what, err, p)
		}
	}
}

// Every example config parses and, given a training step count, validates.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c.Cluster.MemoryLimit = "64GB"
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// A YAML error names the key path and the type it wants, never a Go type.
func TestParseErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{"model:\n  hidden: abc\n", []string{"line 2", "model.hidden", "want an integer", `"abc"`}},
		{"model: 5\n", []string{"line 1", "model", "want a mapping", "hidden"}},
		{"model:\n  hidden: [1, 2]\n", []string{"line 2", "model.hidden", "want an integer", "a list"}},
		{"data:\n  train_fraction: lots\n", []string{"data.train_fraction", "want a number"}},
		{"model:\n  bidirectional: maybe\n", []string{"model.bidirectional", "true or false"}},
		{"train:\n  seed: -1\n", []string{"train.seed", "non-negative integer"}},
		{"optimizer:\n  adam:\n    beta1: x\n", []string{"line 3", "optimizer.adam.beta1", "want a number"}},
		{"model:\n  hiden: 3\n", []string{"line 2", `unknown key "model.hiden"`, "did you mean model.hidden?"}},
		{"modle:\n  hidden: 3\n", []string{`unknown key "modle"`, "did you mean model?"}},
		{"model:\n  hidden: 3\n  hidden: 4\n", []string{"line 3", "model.hidden is given twice", "line 2"}},
		{"- 1\n- 2\n", []string{"the job", "want a mapping"}},
	} {
		_, err := Parse([]byte(tc.doc))
		wantErr(t, tc.doc, err, tc.want...)
		for _, goName := range []string{"job.", "ModelConfig", "Config"} {
			if strings.Contains(err.Error(), goName) {
				t.Errorf("%q: error %q names the Go type", tc.doc, err)
			}
		}
	}
}

// Parse keeps defaults for what a document leaves out, accepts JSON,
// anchors and merges, and leaves a key given without a value at its default.
func TestParse(t *testing.T) {
	c, err := Parse([]byte("base: &b {hidden: 64}\n"))
	wantErr(t, "an unknown top-level key", err, `unknown key "base"`)
	c, err = Parse([]byte("model:\n  hidden: 64\n  layers:\ndata: {text: x}\n"))
	if err != nil || c.Model.Hidden != 64 || c.Model.Layers != Default().Model.Layers || c.Data.Text != "x" || c.Model.Embed != 64 {
		t.Fatalf("flow mapping: %+v, %v", c.Model, err)
	}
	c, err = Parse([]byte(`{"model": {"hidden": 32, "cell": "gru"}, "train": {"steps": 5}}`))
	if err != nil || c.Model.Hidden != 32 || c.Model.Cell != "gru" || c.Train.Steps != 5 {
		t.Fatalf("JSON: %+v, %v", c, err)
	}
	c, err = Parse([]byte("model: &m\n  hidden: 48\ndata:\n  seq: 7\n"))
	if err != nil || c.Model.Hidden != 48 || c.Data.Seq != 7 {
		t.Fatalf("anchor: %+v, %v", c, err)
	}
	if c, err = Parse(nil); err != nil || c.Model != Default().Model {
		t.Fatalf("empty document: %+v, %v", c, err)
	}
	_, err = Parse([]byte("model: [\n"))
	wantErr(t, "a syntax error", err, "line")
}

// An alias-heavy document ("billion laughs") stops at the walk budget
// instead of expanding exponentially.
func TestParseAliasBomb(t *testing.T) {
	refs := func(name string) string {
		return "[" + strings.TrimSuffix(strings.Repeat("*"+name+", ", 10), ", ") + "]"
	}
	doc := "model:\n  <<: [&a0 {hidden: 1}"
	for i := 1; i <= 9; i++ {
		doc += fmt.Sprintf(", &a%d {<<: %s}", i, refs(fmt.Sprintf("a%d", i-1)))
	}
	doc += "]\n"
	_, err := Parse([]byte(doc))
	wantErr(t, "alias bomb", err, "model", "more than")
}

// NaN and Inf are refused by name, from text (--set, environment) and
// from a file (.nan) or code.
func TestNaNNamesTheKey(t *testing.T) {
	c := validJob()
	for _, v := range []string{"NaN", "nan", "Inf", "-Inf", "+inf"} {
		wantErr(t, "Set "+v, c.Set("data.train_fraction", v), "data.train_fraction", "NaN and Inf are not allowed")
	}
	c.Data.TrainFraction = math.NaN()
	wantErr(t, "Validate", c.Validate(), "data.train_fraction", "NaN")
	c = validJob()
	c.Optimizer.Adam.Beta1 = math.Inf(1)
	wantErr(t, "Validate", c.Validate(), "optimizer.adam.beta1", "Inf")
	d, err := Parse([]byte("train:\n  minutes: .nan\n"))
	if err != nil {
		t.Fatal(err)
	}
	d.Data.Text, d.Cluster.MemoryLimit = "x", "8GB"
	wantErr(t, "a YAML .nan", d.Validate(), "train.minutes", "NaN")
}

// Set takes every key as text, names the key in its errors and suggests
// the closest key for an unknown one.
func TestSet(t *testing.T) {
	c := Default()
	for k, v := range map[string]string{"model.hidden": "77", "optimizer.adam.beta1": "0.8", "model.cell": "gru",
		"model.bidirectional": "true", "train.seed": "9", "cluster.memory_limit": "2GiB"} {
		if err := c.Set(k, v); err != nil {
			t.Fatalf("Set %s=%s: %v", k, v, err)
		}
	}
	if c.Model.Hidden != 77 || c.Optimizer.Adam.Beta1 != 0.8 || c.Model.Cell != "gru" || !c.Model.Bidirectional || c.Train.Seed != 9 || c.Cluster.MemoryLimit != "2GiB" {
		t.Fatalf("not set: %+v", c)
	}
	wantErr(t, "unknown key", c.Set("model.hiden", "3"), `"model.hiden"`, `did you mean "model.hidden"`)
	wantErr(t, "bad int", c.Set("model.hidden", "1e3"), "model.hidden", "want an integer")
	wantErr(t, "negative uint", c.Set("train.seed", "-1"), "train.seed", "non-negative")
	if !contains(Keys(), "cluster.memory_limit") || !contains(Keys(), "optimizer.adam.beta1") {
		t.Fatalf("Keys: %v", Keys())
	}
	if EnvName("model.hidden") != "RECUR_MODEL_HIDDEN" {
		t.Fatal(EnvName("model.hidden"))
	}
}

// Absurd sizes are refused by their key before anything is allocated:
// hard caps on each key, then the memory estimate against the limit.
func TestAbsurdSizes(t *testing.T) {
	for _, tc := range []struct {
		set, val string
		want     []string
	}{
		{"model.hidden", "1000000000", []string{"model.hidden=1000000000", "above its limit"}},
		{"model.layers", "1000000", []string{"model.layers=1000000", "above its limit"}},
		{"model.embed", "1000000000", []string{"model.embed=1000000000", "above its limit"}},
		{"data.batch", "100000000", []string{"data.batch=100000000", "above its limit"}},
		{"train.threads", "100000", []string{"train.threads=100000", "above its limit"}},
		{"train.minutes", "1e300", []string{"train.minutes", "must be in"}},
		{"model.hidden", "100000", []string{"config model.hidden=100000: a worker needs ~", "adam state", "but the limit is 8.0 GB (cluster.memory_limit)",
			"lower model.hidden", "raise cluster.memory_limit"}},
		{"model.layers", "1000", []string{"config model.layers=1000: a worker needs"}},
		{"data.seq", "1000000", []string{"config data.seq=1000000", "activations", "1000000 steps", "lower data.seq"}},
	} {
		c := validJob()
		if err := c.Set(tc.set, tc.val); err != nil {
			t.Fatal(err)
		}
		wantErr(t, tc.set+"="+tc.val, c.Validate(), tc.want...)
	}
	if err := validJob().Validate(); err != nil {
		t.Fatalf("the default job: %v", err)
	}
}

// The limit and its source come from cluster.memory_limit when set; a bad
// value names the key.
func TestMemoryLimitKey(t *testing.T) {
	c := validJob()
	c.Cluster.MemoryLimit = "lots"
	wantErr(t, "bad limit", c.Validate(), "cluster.memory_limit", "lots")
	c.Cluster.MemoryLimit = "1MB"
	wantErr(t, "tiny limit", c.Validate(), "config: a worker needs", "1.0 MB (cluster.memory_limit)", "lower data.batch")
	c.Cluster.MemoryLimit = ""
	lim, err := c.Cluster.Limit()
	if err != nil {
		t.Fatal(err)
	}
	if _, statErr := os.Stat("/proc/meminfo"); statErr == nil && lim.Bytes <= 0 {
		t.Fatalf("no limit detected on a machine with /proc/meminfo: %+v", lim)
	}
}

// Local mode runs every worker on one machine: the estimate is multiplied.
func TestCheckMemoryPerMachine(t *testing.T) {
	c := validJob()
	f := c.Estimate(c.Sizes(), 1)
	lim := MemoryLimit{Bytes: f.Total() * 1.5, Source: "test"}
	if err := c.CheckMemory(c.Sizes(), 1, 1, lim); err != nil {
		t.Fatalf("one worker: %v", err)
	}
	wantErr(t, "two workers", c.CheckMemory(c.Sizes(), 1, 2, lim), "2 workers on this machine need", "(test)")
	if err := c.CheckMemory(c.Sizes(), 1, 4, MemoryLimit{}); err != nil {
		t.Fatalf("an unknown limit must not refuse: %v", err)
	}
}

// data.max_len: 0 is the default limit, which errors; a set value skips.
func TestMaxLength(t *testing.T) {
	var d DataConfig
	if n, explicit := d.MaxLength(); n != DefaultMaxLen || explicit {
		t.Fatalf("default: %d %v", n, explicit)
	}
	d.MaxLen = 50
	if n, explicit := d.MaxLength(); n != 50 || !explicit {
		t.Fatalf("set: %d %v", n, explicit)
	}
	c := validJob()
	c.Data.MaxLen = -1
	wantErr(t, "negative", c.Validate(), "data.max_len", "must not be negative")
	c.Data.MaxLen = 1 << 30
	wantErr(t, "huge", c.Validate(), "data.max_len", "above its limit")
}

// The memory-limit key and max_len leave Hash alone: checkpoints of runs
// from before them still resume.
func TestHashStable(t *testing.T) {
	a := validJob()
	b := a
	b.Cluster.MemoryLimit = "1TB"
	if a.Hash() != b.Hash() {
		t.Fatal("cluster.memory_limit changes the hash")
	}
	b.Cluster.Overlap, b.Cluster.BucketBytes = !b.Cluster.Overlap, 1<<20
	if a.Hash() != b.Hash() {
		t.Fatal("cluster.overlap or cluster.bucket_bytes changes the hash")
	}
}

// The overlap keys: on by default, 1 MiB buckets; set from text;
// a negative or absurd bucket size is refused naming the key.
func TestOverlapKeys(t *testing.T) {
	c := validJob()
	if !c.Cluster.Overlap || c.Cluster.BucketBytes != DefaultBucketBytes {
		t.Fatalf("defaults: overlap %v, bucket_bytes %d", c.Cluster.Overlap, c.Cluster.BucketBytes)
	}
	if err := c.Set("cluster.overlap", "false"); err != nil || c.Cluster.Overlap {
		t.Fatalf("set cluster.overlap=false: %v (overlap %v)", err, c.Cluster.Overlap)
	}
	if err := c.Set("cluster.bucket_bytes", "4194304"); err != nil || c.Cluster.BucketBytes != 4<<20 {
		t.Fatalf("set cluster.bucket_bytes: %v (%d)", err, c.Cluster.BucketBytes)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Cluster.BucketBytes = -1
	wantErr(t, "negative", c.Validate(), "cluster.bucket_bytes", "must not be negative")
	c.Cluster.BucketBytes = 1 << 50
	wantErr(t, "huge", c.Validate(), "cluster.bucket_bytes", "above its limit")
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("model:\n  hidden: abc\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("model: &m {hidden: 1}\ndata: {<<: *m}\n"))
	f.Add([]byte(`{"model": {"hidden": 1e9}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		c.Cluster.MemoryLimit = "8GB"
		_ = c.Validate() // must not panic, whatever the values
	})
}

// data.val_fraction is in [0, 1) (0: DefaultValFraction) and keeps an
// unset job's hash; data.season is not negative; data.val is refused for
// a forecast, which splits its one file in time.
func TestForecastDataKeys(t *testing.T) {
	c := validJob()
	h := c.Hash()
	c.Data.ValFraction = 0
	if c.Hash() != h {
		t.Fatal("an unset data.val_fraction changed the job's hash")
	}
	for _, v := range []float64{-0.1, 1, 2, math.NaN()} {
		c.Data.ValFraction = v
		wantErr(t, fmt.Sprint("val_fraction ", v), c.Validate(), "data.val_fraction")
	}
	c = validJob()
	c.Data.Season = -1
	wantErr(t, "season -1", c.Validate(), "data.season", "negative")
	c = validJob()
	c.Task.Kind, c.Data.Train, c.Data.Val = TaskForecast, "a.csv", "b.csv"
	wantErr(t, "forecast with data.val", c.Validate(), "data.val", "not supported")
	c = validJob()
	h = c.Hash()
	c.Data.Residual = ResidualAR
	if c.Hash() == h {
		t.Error("data.residual leaves the hash alone, yet the checkpoint's weights depend on it")
	}
	c.Data.Residual = "persistence"
	wantErr(t, "residual persistence", c.Validate(), "data.residual", `"last", "ar"`)
	for _, k := range []string{"data.val_fraction", "data.season", "data.inputs", "data.targets", "data.residual"} {
		if !slices.Contains(Keys(), k) {
			t.Errorf("no key %s", k)
		}
	}
}
