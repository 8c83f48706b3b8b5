package cli

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
)

// These tests run real processes: a coordinator and workers built from
// cmd/recur, killed with SIGKILL. RECUR_SOAK=1 adds the soak test.

var recurBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "recur-bin-")
	if err != nil {
		panic(err)
	}
	recurBin = filepath.Join(dir, "recur")
	build := exec.Command("go", "build", "-o", recurBin, "../../cmd/recur")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building recur:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeCorpus(t *testing.T) string {
	words := strings.Fields("to be or not to be that is the question whether tis nobler in the mind to suffer the slings and arrows of outrageous fortune")
	var b strings.Builder
	for i := 0; b.Len() < 200000; i++ {
		b.WriteString(words[(i*5+i/7)%len(words)])
		b.WriteString([]string{" ", " ", ",\n", ".\n"}[i%4])
	}
	p := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is a running recur process with its log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

type procCluster struct {
	t                        *testing.T
	dir, corpus              string
	control, gossip, metrics string
	steps                    int
	coord                    *proc
	workers                  map[string]*proc
	logs                     string
}

func newProcCluster(t *testing.T, steps int) *procCluster {
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	pc := &procCluster{t: t, dir: t.TempDir(), corpus: writeCorpus(t), control: "127.0.0.1:" + ports[0],
		gossip: "127.0.0.1:" + ports[1], metrics: "127.0.0.1:" + ports[2], steps: steps, workers: map[string]*proc{}, logs: t.TempDir()}
	t.Cleanup(func() {
		for _, p := range pc.workers {
			p.cmd.Process.Kill()
		}
		if pc.coord != nil {
			pc.coord.cmd.Process.Kill()
		}
	})
	return pc
}

func (pc *procCluster) start(name string, args ...string) *proc {
	pc.t.Helper()
	log := filepath.Join(pc.logs, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(log)
	if err != nil {
		pc.t.Fatal(err)
	}
	cmd := exec.Command(recurBin, args...)
	cmd.Stderr, cmd.Stdout = f, f
	cmd.Env = append(os.Environ(), "RECUR_CLUSTER_KEY=soak-test-cluster-key-0123")
	if err := cmd.Start(); err != nil {
		pc.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p
}

func (pc *procCluster) startCoordinator() {
	pc.coord = pc.start("coordinator", "coordinator", "--listen", pc.control, "--gossip", pc.gossip, "--metrics", pc.metrics,
		"--dir", pc.dir, "--set", "data.text="+pc.corpus, "--set", "model.hidden=48", "--set", "model.layers=1",
		"--set", "model.embed=16", "--set", "data.seq=32", "--set", "data.batch=12", "--set", fmt.Sprintf("train.steps=%d", pc.steps),
		"--set", "train.checkpoint_every=5", "--set", "train.validate_every=100", "--set", "train.val_windows=4",
		"--set", "cluster.allreduce_timeout_ms=2000",
		// At least two workers hold the state at every step, so one kill
		// never loses it (a lone worker's state dies with it and training
		// falls back to the newest checkpoint, repeating steps).
		"--set", "cluster.min_workers=2")
}

func (pc *procCluster) startWorker(id string) {
	pc.workers[id] = pc.start(id, "worker", "--id", id, "--coordinator", pc.control, "--gossip", pc.gossip)
}

// metric reads one gauge from the coordinator's /metrics (-1 if unreachable).
func (pc *procCluster) metric(name string) float64 {
	resp, err := http.Get("http://" + pc.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return -1
}

func (pc *procCluster) waitMetric(name string, ok func(float64) bool, timeout time.Duration, what string) float64 {
	pc.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := pc.metric(name)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			pc.dumpLogs()
			pc.t.Fatalf("%s: %s = %v after %v", what, name, v, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (pc *procCluster) dumpLogs() {
	files, _ := filepath.Glob(filepath.Join(pc.logs, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		pc.t.Logf("---- %s (last lines)\n%s", filepath.Base(f), strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
}

// events reads the run's status history (metrics.jsonl): every event of
// every coordinator process of the run.
func (pc *procCluster) events() []events.Event {
	pc.t.Helper()
	ev, bad, err := events.ReadEventsFile(filepath.Join(pc.dir, events.MetricsFile))
	if err != nil {
		pc.t.Logf("%d unreadable lines in the status history (a coordinator killed mid-write): %v", bad, err)
	}
	return ev
}

// waitDone waits for the coordinator to exit 0 with the run finished.
func (pc *procCluster) waitDone(timeout time.Duration) {
	pc.t.Helper()
	select {
	case err := <-pc.coord.done:
		if err != nil {
			pc.dumpLogs()
			pc.t.Fatalf("coordinator exited with %v", err)
		}
	case <-time.After(timeout):
		pc.dumpLogs()
		pc.t.Fatalf("training did not complete in %v", timeout)
	}
	ev := pc.events()
	if len(ev) == 0 || ev[len(ev)-1].Kind != events.EventFinished {
		pc.dumpLogs()
		pc.t.Fatalf("the status history does not end with the run finished: %v", ev[max(len(ev)-3, 0):])
	}
}

func TestProcessesSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	pc := newProcCluster(t, 400)
	pc.startCoordinator()
	for _, id := range []string{"w1", "w2", "w3"} {
		pc.startWorker(id)
	}
	pc.waitMetric("recur_members", func(v float64) bool { return v == 3 }, time.Minute, "3 workers in the ring")
	step0 := pc.metric("recur_step")
	pc.waitMetric("recur_step", func(v float64) bool { return v >= step0+20 }, time.Minute, "3 workers train")
	gen := pc.metric("recur_generation")
	// kill -9 a worker mid-step: the others go on as a new generation.
	t0 := time.Now()
	pc.workers["w3"].cmd.Process.Signal(syscall.SIGKILL)
	pc.waitMetric("recur_members", func(v float64) bool { return v == 2 }, 20*time.Second, "dead worker evicted")
	step := pc.metric("recur_step")
	pc.waitMetric("recur_step", func(v float64) bool { return v > step+5 }, 20*time.Second, "training continues with 2")
	t.Logf("worker killed: 2-worker generation stepping after %v (generation %v -> %v)", time.Since(t0).Round(time.Millisecond), gen, pc.metric("recur_generation"))
	// kill -9 the coordinator while it writes checkpoints (every 5 steps),
	// restart it: it resumes, the workers reconnect with their state.
	before := pc.metric("recur_step")
	pc.coord.cmd.Process.Signal(syscall.SIGKILL)
	<-pc.coord.done
	pc.startCoordinator()
	pc.waitMetric("recur_step", func(v float64) bool { return v > before }, time.Minute, "training resumes after the coordinator restart")
	pc.waitDone(3 * time.Minute)
	var resumed bool
	for _, e := range pc.events() {
		if e.Kind == events.EventStart && e.Step > 0 {
			resumed = true
		}
	}
	if !resumed {
		t.Error("the restarted coordinator did not resume from its checkpoint")
	}
	out, err := exec.Command(recurBin, "eval", "--run", pc.dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "step 400") {
		t.Fatalf("eval of the final checkpoint: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}

func TestSoakRandomKills(t *testing.T) {
	if os.Getenv("RECUR_SOAK") == "" {
		t.Skip("set RECUR_SOAK=1 for the soak test (random kills of workers and the coordinator)")
	}
	pc := newProcCluster(t, 1500)
	pc.startCoordinator()
	ids := []string{"w1", "w2", "w3"}
	for _, id := range ids {
		pc.startWorker(id)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	checks := 0.0 // state checksums compared, over the coordinators killed
	for kill := 0; kill < 10; kill++ {
		// Every worker holds the state before the next kill: with kills
		// faster than the ring re-forms, every holder of a state that no
		// checkpoint has yet could die, and steps would rightly run again.
		pc.waitMetric("recur_members", func(v float64) bool { return v == 3 }, time.Minute, "all three workers in the ring")
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		if rng.IntN(3) == 0 {
			t.Logf("kill %d: coordinator at step %v", kill, pc.metric("recur_step"))
			checks += pc.metric("recur_state_checks_total")
			pc.coord.cmd.Process.Signal(syscall.SIGKILL)
			<-pc.coord.done
			pc.startCoordinator()
		} else {
			id := ids[rng.IntN(len(ids))]
			t.Logf("kill %d: worker %s at step %v", kill, id, pc.metric("recur_step"))
			pc.workers[id].cmd.Process.Signal(syscall.SIGKILL)
			<-pc.workers[id].done
			pc.startWorker(id)
		}
	}
	pc.waitDone(10 * time.Minute)
	checkSoakInvariants(t, pc, checks)
}

// checkSoakInvariants checks the run's status history after random kills
// (events.CheckHistory: every step recorded once, never repeated or
// rolled back, no divergence), that the coordinators did compare the
// members' state checksums, and that the run reached its last step.
func checkSoakInvariants(t *testing.T, pc *procCluster, checks float64) {
	t.Helper()
	history := pc.events()
	a, err := events.CheckHistory(history)
	var he *events.HistoryError
	if errors.As(err, &he) {
		pc.dumpLogs()
		for _, e := range history[max(0, he.Index-30) : he.Index+1] { // what led there
			if e.Kind != events.EventStep {
				t.Logf("event %d %s: %s", e.Seq, e.Kind, e)
			}
		}
		t.Fatal(err)
	}
	checks += float64(a.StateChecks)
	if checks == 0 {
		t.Fatal("no state checksums were compared")
	}
	if a.Last != int64(pc.steps) {
		pc.dumpLogs()
		t.Fatalf("the last step recorded is %d, want %d", a.Last, pc.steps)
	}
	t.Logf("invariants hold: %d coordinator processes, %d step events up to step %d, %v state checksums compared", a.Starts, a.Steps, a.Last, checks)
}
