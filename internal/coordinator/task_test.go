package coordinator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/job"
	"github.com/recur-ml/recur/internal/task"
	"github.com/recur-ml/recur/pkg/rnn"
)

// trainTask runs job on w in-process workers and returns the metrics of the
// final state, read back from the last checkpoint like `recur eval` does.
func trainTask(t *testing.T, jc job.Config, w int) map[string]float64 {
	t.Helper()
	m, _ := trainTaskModel(t, jc, w)
	return m
}

// trainTaskModel is trainTask that also returns the trained model.
func trainTaskModel(t *testing.T, jc job.Config, w int) (map[string]float64, *rnn.Model[float32]) {
	t.Helper()
	tc := startCluster(t, jc, t.TempDir(), false)
	for i := 0; i < w; i++ {
		tc.addWorker(fmt.Sprintf("w%d", i))
	}
	tc.wait(3 * time.Minute)
	tc.wg.Wait()
	m, err := task.EvaluateJob(jc, tc.workers["w0"].Model())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %v", jc.Task.Kind, m)
	return m, tc.workers["w0"].Model()
}

func writeFile(t *testing.T, name, body string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func smallJob(kind string, steps int64) job.Config {
	j := job.Default()
	j.Task.Kind = kind
	j.Model = job.ModelConfig{Cell: "gru", Hidden: 32, Layers: 1, Embed: 16}
	j.Train.Steps, j.Train.CheckpointEvery, j.Train.ValidateEvery = steps, 0, 0
	j.Schedule.BaseLR = 0.01
	j.Cluster.MinWorkers = 2
	return j
}

// TestTaskClassifyJSONL: sequences of ±1 of lengths 1..15 (odd), labelled by
// the sign of their sum; bucketed by length.
func TestTaskClassifyJSONL(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		L, sum := 1+2*rng.IntN(8), 0
		vals := make([]string, L)
		for k := range vals {
			v := 2*rng.IntN(2) - 1
			sum += v
			vals[k] = fmt.Sprintf("[%d]", v)
		}
		label := 0
		if sum > 0 {
			label = 1
		}
		fmt.Fprintf(&b, `{"input": [%s], "target": %d}`+"\n", strings.Join(vals, ","), label)
	}
	jc := smallJob(job.TaskClassify, 300)
	jc.Data.Train, jc.Data.Classes, jc.Data.Buckets = writeFile(t, "signs.jsonl", b.String()), 2, 4
	m := trainTask(t, jc, 2)
	if m["accuracy"] < 0.95 {
		t.Fatalf("accuracy %.3f, want >= 0.95", m["accuracy"])
	}
}

// TestTaskSeq2SeqReverse: reverse strings of 1..6 digits (tokens 2..11;
// BOS 0, EOS 1); outputs must end at EOS.
func TestTaskSeq2SeqReverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	var b strings.Builder
	for i := 0; i < 6000; i++ {
		L := 1 + rng.IntN(6)
		in := make([]string, L)
		out := make([]string, L)
		for k := range in {
			in[k] = fmt.Sprint(2 + rng.IntN(10))
		}
		for k := range in {
			out[k] = in[L-1-k]
		}
		fmt.Fprintf(&b, `{"input": [%s], "output": [%s]}`+"\n", strings.Join(in, ","), strings.Join(out, ","))
	}
	jc := smallJob(job.TaskSeq2Seq, 700)
	jc.Model = job.ModelConfig{Cell: "lstm", Hidden: 64, Layers: 1, Embed: 16}
	jc.Schedule.BaseLR = 0.005
	jc.Data.Train, jc.Data.Vocab = writeFile(t, "reverse.jsonl", b.String()), 12
	m, model := trainTaskModel(t, jc, 2)
	if m["exact_match"] < 0.9 {
		t.Fatalf("exact match %.3f, want >= 0.9", m["exact_match"])
	}
	in := writeFile(t, "new.jsonl", `{"input": [2,3,4]}`+"\n"+`{"input": [9]}`+"\n")
	var out strings.Builder
	if err := task.Predict(jc, model, in, &out); err != nil {
		t.Fatal(err)
	}
	if want := `{"line":1,"output":[4,3,2]}` + "\n" + `{"line":2,"output":[9]}` + "\n"; out.String() != want {
		t.Errorf("predictions\n%s want\n%s", out.String(), want)
	}
}

// TestTaskForecastBeatsBaselines: a noisy seasonal series (two periods) four
// steps ahead; the RNN must beat persistence and a linear AR fit.
func TestTaskForecastBeatsBaselines(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	var b strings.Builder
	b.WriteString("value\n")
	for i := 0; i < 3000; i++ {
		v := 10 + 3*math.Sin(2*math.Pi*float64(i)/24) + 1.5*math.Sin(2*math.Pi*float64(i)/7) + 0.3*rng.NormFloat64()
		v += 2 * math.Max(0, math.Sin(2*math.Pi*float64(i)/24)) * math.Sin(2*math.Pi*float64(i)/7) // a nonlinear interaction
		fmt.Fprintf(&b, "%.4f\n", v)
	}
	jc := smallJob(job.TaskForecast, 600)
	jc.Data.Train, jc.Data.Seq, jc.Data.Horizon = writeFile(t, "series.csv", b.String()), 24, 4
	jc.Model.Hidden = 48
	m := trainTask(t, jc, 2)
	if m["rmse"] >= m["rmse_persistence"] || m["rmse"] >= m["rmse_linear_ar"] {
		t.Fatalf("rmse %.4f does not beat persistence %.4f and linear AR %.4f", m["rmse"], m["rmse_persistence"], m["rmse_linear_ar"])
	}
}
