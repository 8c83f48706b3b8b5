package job

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/recur-ml/recur/pkg/rnn"
)

// memCase is a job, the sizes its data gives, and the model pkg/rnn builds
// for it (what package task derives), with one batch of that shape.
type memCase struct {
	name  string
	job   Config
	sizes Sizes
}

func memCases() []memCase {
	mk := func(kind, cell string, hidden, layers, embed int, bidir bool, batch int) Config {
		c := Default()
		c.Task.Kind = kind
		c.Model = ModelConfig{Cell: cell, Hidden: hidden, Layers: layers, Embed: embed, Bidirectional: bidir}
		c.Data.Batch = batch
		return c
	}
	return []memCase{
		{"charlm-lstm", mk(TaskCharLM, "lstm", 64, 2, 16, false, 16), Sizes{Vocab: 50, Outputs: 50, Steps: 60, PerStep: true}},
		{"charlm-gru-1", mk(TaskCharLM, "gru", 48, 1, 24, false, 8), Sizes{Vocab: 90, Outputs: 90, Steps: 80, PerStep: true}},
		{"classify-dense-bidir", mk(TaskClassify, "lstm", 40, 2, 64, true, 16), Sizes{Input: 28, Outputs: 10, Steps: 28}},
		{"classify-tokens-rnn", mk(TaskClassify, "rnn_tanh", 64, 3, 32, false, 16), Sizes{Vocab: 300, Outputs: 4, Steps: 50}},
		{"forecast-gru", mk(TaskForecast, "gru", 32, 2, 64, false, 32), Sizes{Input: 3, Outputs: 6, Steps: 48}},
		{"seq2seq-bidir", mk(TaskSeq2Seq, "lstm", 48, 1, 16, true, 16), Sizes{Vocab: 12, Outputs: 12, Steps: 30, DecSteps: 31}},
	}
}

// model is the rnn.Config package task builds for the case.
func (m memCase) model() rnn.Config {
	cell, _ := rnn.ParseCell(m.job.Model.Cell)
	c := rnn.Config{Vocab: m.sizes.Vocab, Input: m.sizes.Input, Outputs: m.sizes.Outputs, Embed: m.job.Model.Embed, Cell: cell,
		Hidden: m.job.Model.Hidden, Layers: m.job.Model.Layers, Bidirectional: m.job.Model.Bidirectional, Seed: 1}
	if c.Vocab > 0 {
		c.Input = 0
	}
	switch m.job.Task.Kind {
	case TaskCharLM:
		c.Shape = rnn.SeqToSeq
	case TaskClassify:
		c.Shape = rnn.SeqToVec
	case TaskForecast:
		c.Shape, c.Loss = rnn.SeqToVec, rnn.MSE
	case TaskSeq2Seq:
		c.Shape, c.EOS, c.BOS = rnn.EncoderDecoder, 1, 0
	}
	return c
}

// batch is a full batch of the case's longest shape.
func (m memCase) batch() *rnn.Batch[float32] {
	rng := rand.New(rand.NewPCG(1, 2))
	T, B, s := m.sizes.Steps, m.job.Data.Batch, m.sizes
	toks := func(n, v int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(rng.IntN(v))
		}
		return out
	}
	vals := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64())
		}
		return out
	}
	b := &rnn.Batch[float32]{T: T, B: B}
	if s.Vocab > 0 {
		b.Tokens = toks(T*B, s.Vocab)
	} else {
		b.X = vals(T * B * s.Input)
	}
	switch m.job.Task.Kind {
	case TaskCharLM:
		b.Targets = toks(T*B, s.Outputs)
	case TaskClassify:
		b.Targets = toks(B, s.Outputs)
	case TaskForecast:
		b.Y = vals(B * s.Outputs)
	case TaskSeq2Seq:
		b.TD, b.DecIn, b.Targets = s.DecSteps, toks(s.DecSteps*B, s.Outputs), toks(s.DecSteps*B, s.Outputs)
	}
	return b
}

// The parameter count is exactly what pkg/rnn allocates.
func TestEstimateParams(t *testing.T) {
	for _, m := range memCases() {
		model, err := rnn.New[float32](m.model())
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if got, want := m.job.Estimate(m.sizes, 1).Count, float64(model.Params.Len()); got != want {
			t.Errorf("%s: estimate counts %v parameters, the model has %v", m.name, got, want)
		}
	}
}

// The activation estimate is within a factor of 2 of what one training
// step's forward and backward pass allocate on a fresh tape.
func TestEstimateActivations(t *testing.T) {
	for _, m := range memCases() {
		model, err := rnn.New[float32](m.model())
		if err != nil {
			t.Fatal(err)
		}
		b := m.batch()
		grads := make([]float32, model.Params.Len())
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tp := model.NewTape(1)
		if _, err := tp.Forward(b, rnn.State[float32]{}, true); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		tp.Backward(grads)
		runtime.ReadMemStats(&after)
		got := float64(after.TotalAlloc - before.TotalAlloc)
		est := m.job.Estimate(m.sizes, 1).Activations
		if r := est / got; r < 0.5 || r > 2 {
			t.Errorf("%s: estimate %s, a step allocates %s (ratio %.2f)", m.name, FormatBytes(est), FormatBytes(got), r)
		} else {
			t.Logf("%s: estimate %s, a step allocates %s (ratio %.2f)", m.name, FormatBytes(est), FormatBytes(got), r)
		}
	}
}

// Optimizer state follows the kind: none for plain SGD, 2 for Adam.
func TestEstimateOptimizer(t *testing.T) {
	c := validJob()
	s := c.Sizes()
	adam := c.Estimate(s, 1)
	c.Optimizer.Kind = "sgd"
	sgd := c.Estimate(s, 1)
	if sgd.Optimizer != 0 || adam.Optimizer != 2*adam.Params {
		t.Fatalf("optimizer state: sgd %v, adam %v of %v", sgd.Optimizer, adam.Optimizer, adam.Params)
	}
	if w2 := validJob().Estimate(s, 2); w2.Rows != 16 || w2.Activations >= adam.Activations {
		t.Fatalf("two workers: %d rows, activations %v vs %v", w2.Rows, w2.Activations, adam.Activations)
	}
}

func TestDetectMemoryLimit(t *testing.T) {
	meminfo := &fstest.MapFile{Data: []byte("MemTotal:       24683568 kB\nMemFree:        22183264 kB\n")}
	for _, tc := range []struct {
		name  string
		fs    fstest.MapFS
		bytes float64
		src   string
	}{
		{"nothing", fstest.MapFS{}, 0, ""},
		{"meminfo", fstest.MapFS{"proc/meminfo": meminfo}, 24683568 * 1024, "/proc/meminfo MemTotal"},
		{"v2 own cgroup below a parent", fstest.MapFS{
			"proc/meminfo":     meminfo,
			"proc/self/cgroup": {Data: []byte("0::/kubepods/pod1/c1\n")},
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": {Data: []byte("max\n")},
			"sys/fs/cgroup/kubepods/pod1/memory.max":    {Data: []byte("2147483648\n")},
			"sys/fs/cgroup/kubepods/memory.max":         {Data: []byte("4294967296\n")},
		}, 2147483648, "cgroup memory.max (/sys/fs/cgroup/kubepods/pod1/memory.max)"},
		{"v2 namespaced root", fstest.MapFS{
			"proc/meminfo":             meminfo,
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
		}, 1 << 30, "cgroup memory.max (/sys/fs/cgroup/memory.max)"},
		{"v1 unlimited", fstest.MapFS{
			"proc/meminfo":     meminfo,
			"proc/self/cgroup": {Data: []byte("4:memory:/process_api/x\n0::/\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes":               {Data: []byte("9223372036854771712\n")},
			"sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, 24683568 * 1024, "/proc/meminfo MemTotal"},
		{"v1 limited", fstest.MapFS{
			"proc/meminfo":     meminfo,
			"proc/self/cgroup": {Data: []byte("4:cpu,memory:/docker/abc\n")},
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": {Data: []byte("536870912\n")},
		}, 1 << 29, "cgroup memory.limit_in_bytes (/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes)"},
		{"garbage", fstest.MapFS{
			"proc/meminfo":             {Data: []byte("MemTotal: lots\n")},
			"proc/self/cgroup":         {Data: []byte("::::\n0::/../../etc\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("-5\n")},
		}, 0, ""},
	} {
		got := DetectMemoryLimit(tc.fs)
		if got.Bytes != tc.bytes || got.Source != tc.src {
			t.Errorf("%s: %+v, want %v from %q", tc.name, got, tc.bytes, tc.src)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]float64{"24GB": 24e9, "24gb": 24e9, "16GiB": 16 << 30, "512Mi": 512 << 20, "1.5 G": 1.5e9,
		"1000000": 1e6, "1e9": 1e9, " 2 TB ": 2e12, "100B": 100, "1PiB": 1 << 50} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "lots", "24 XB", "-1GB", "0", "NaN", "Inf", "2PiB", "1e400", "0.5"} {
		if got, err := ParseBytes(in); err == nil {
			t.Errorf("ParseBytes(%q) = %v, want an error", in, got)
		} else if !strings.Contains(err.Error(), "size") {
			t.Errorf("ParseBytes(%q): %v", in, err)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"24GB", "16GiB", "1e9", "lots", "5€GB", "1.5 T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err == nil && (n < 1 || n > MaxMemoryLimit) {
			t.Fatalf("ParseBytes(%q) = %v outside [1, MaxMemoryLimit]", s, n)
		}
	})
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[float64]string{900: "900 B", 1.5e6: "1.5 MB", 24e9: "24 GB", 120.4e9: "120 GB", 3e15: "3.0 PB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%v) = %q, want %q", n, got, want)
		}
	}
}

// The /proc and /sys files are read defensively: whatever they hold, the
// limit is 0 (unknown) or a positive number below the "unlimited" values.
func FuzzDetectMemoryLimit(f *testing.F) {
	f.Add("0::/a/b\n", "MemTotal: 1024 kB\n", "max\n", "4:memory:/x\n")
	f.Add("0::/../..\n", "MemTotal:\n", "-1\n", "4:memory:\n")
	f.Fuzz(func(t *testing.T, cgroup, meminfo, max2, v1 string) {
		fsys := fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte(cgroup + v1)},
			"proc/meminfo":                               {Data: []byte(meminfo)},
			"sys/fs/cgroup/memory.max":                   {Data: []byte(max2)},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte(max2)},
		}
		lim := DetectMemoryLimit(fsys)
		if lim.Bytes < 0 || lim.Bytes >= unlimited || (lim.Bytes > 0) != (lim.Source != "") {
			t.Fatalf("limit %+v", lim)
		}
	})
}
