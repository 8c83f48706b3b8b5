package coordinator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/recur-ml/recur/internal/planner"
)

// waitSteps waits until the coordinator has recorded n steps.
func (tc *testCluster) waitSteps(n int, timeout time.Duration) {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(tc.coord.History()) < n {
		if time.Now().After(deadline) {
			tc.t.Fatalf("only %d of %d steps after %v", len(tc.coord.History()), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkHistory asserts that steps are consecutive from first: none lost,
// none counted twice.
func checkHistory(t *testing.T, h []planner.StepRecord, first int64) {
	t.Helper()
	for i, r := range h {
		if r.Step != first+int64(i) {
			t.Fatalf("history entry %d is step %d, want %d (steps lost or repeated)", i, r.Step, first+int64(i))
		}
	}
}

func TestClusterSurvivesWorkerDeathAndJoin(t *testing.T) {
	job := testJob(testCorpus(t), 400)
	job.Model.Hidden = 64
	tc := startCluster(t, job, t.TempDir(), true)
	for _, id := range []string{"w1", "w2", "w3"} {
		tc.addWorker(id)
	}
	tc.waitSteps(60, time.Minute)
	gen := tc.coord.p.Generation()
	killed := time.Now()
	tc.kill("w3")
	// Training goes on with two workers.
	deadline := time.Now().Add(30 * time.Second)
	var recovered time.Duration
	for recovered == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no step completed by a new generation within 30s of the kill")
		}
		for _, r := range tc.coord.History() {
			if r.Generation > gen && r.World == 2 {
				recovered = time.Since(killed)
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("worker killed: first step of the 2-worker generation after %v", recovered.Round(time.Millisecond))
	if recovered > 10*time.Second {
		t.Errorf("recovery took %v, want <= 10s", recovered)
	}
	// A new worker joins at a step boundary and receives the state.
	tc.addWorker("w4")
	tc.wait(3 * time.Minute)
	h := tc.coord.History()
	checkHistory(t, h, 0)
	if len(h) != 400 {
		t.Fatalf("%d steps, want 400", len(h))
	}
	if last := h[len(h)-1]; last.World != 3 {
		t.Errorf("last step ran with %d workers, want 3 after the join", last.World)
	}
	tc.wg.Wait()
	p1 := tc.params("w1")
	for _, id := range []string{"w2", "w4"} {
		p := tc.params(id)
		for i := range p1 {
			if p[i] != p1[i] {
				t.Fatalf("worker %s differs from w1 at parameter %d", id, i)
			}
		}
	}
}

func TestClusterSurvivesCoordinatorRestart(t *testing.T) {
	job := testJob(testCorpus(t), 300)
	job.Model.Hidden = 64
	dir := t.TempDir()
	tc := startCluster(t, job, dir, false)
	for _, id := range []string{"w1", "w2"} {
		tc.addWorker(id)
	}
	tc.waitSteps(40, time.Minute)
	addr := tc.coord.Addr()
	tc.coord.Close()
	before := len(tc.coord.History())
	time.Sleep(300 * time.Millisecond)
	c2 := restart(t, job, dir, addr, tc.secret)
	c2.mu.Lock()
	resumed := c2.ckptStep
	c2.mu.Unlock()
	if resumed < 10 {
		t.Fatalf("restarted coordinator resumed from checkpoint step %d, want >= 10", resumed)
	}
	select {
	case <-c2.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("training did not finish after the restart (%d steps)", len(c2.History()))
	}
	h := c2.History()
	if len(h) == 0 {
		t.Fatal("no steps after the restart")
	}
	// The workers kept their state: training continues from where the ring
	// was, not from the older checkpoint, with no step repeated.
	if h[0].Step < int64(before)-1 {
		t.Fatalf("restarted run began at step %d, the ring had completed %d", h[0].Step, before)
	}
	checkHistory(t, h, h[0].Step)
	if last := h[len(h)-1].Step; last != 299 {
		t.Fatalf("last step %d, want 299", last)
	}
	tc.wg.Wait()
}

func TestCoordinatorRefusesCheckpointOfAnotherJob(t *testing.T) {
	job := testJob(testCorpus(t), 12)
	dir := t.TempDir()
	tc := startCluster(t, job, dir, false)
	tc.addWorker("w1")
	tc.wait(time.Minute)
	tc.coord.Close()
	job.Model.Hidden = 48
	_, err := NewCoordinator(CoordinatorConfig{Job: job, Listen: "127.0.0.1:0", Gossip: "off", Dir: dir, Secret: tc.secret})
	if err == nil {
		t.Fatal("a checkpoint of another model was accepted")
	}
	t.Log(err)
	if want := "hidden"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the field %q", err, want)
	}
}

// TestClusterAllWorkersLostResumesFromNewestCheckpoint: when every worker
// dies, a new worker continues from the newest checkpoint the coordinator
// saved during the run, not from the start.
func TestClusterAllWorkersLostResumesFromNewestCheckpoint(t *testing.T) {
	job := testJob(testCorpus(t), 200)
	tc := startCluster(t, job, t.TempDir(), true)
	tc.addWorker("w1")
	tc.waitSteps(45, time.Minute)
	tc.kill("w1")
	tc.coord.saving.Wait() // a checkpoint fetch may still be finishing
	tc.coord.mu.Lock()
	ckpt := tc.coord.ckptStep
	tc.coord.mu.Unlock()
	if ckpt < 30 {
		t.Fatalf("newest checkpoint at step %d after 45 steps, want >= 30", ckpt)
	}
	before := len(tc.coord.History())
	tc.addWorker("w2")
	tc.wait(2 * time.Minute)
	h := tc.coord.History()
	if len(h) == before {
		t.Fatal("no step after the new worker joined")
	}
	if first := h[before].Step; first != ckpt {
		t.Fatalf("after losing every worker, training went on from step %d, want the newest checkpoint's %d", first, ckpt)
	}
	checkHistory(t, h[before:], ckpt)
}

// TestClusterRestartWithoutAWorker: a restarted coordinator waits for the
// last ring's workers, but one that never comes back holds training up for
// the rejoin grace only, even while the others are told to wait; with
// gossip, only until the gossip shows it is not there.
func TestClusterRestartWithoutAWorker(t *testing.T) {
	for _, gossipOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "grace", true: "gossip"}[gossipOn], func(t *testing.T) {
			job := testJob(testCorpus(t), 150)
			dir := t.TempDir()
			tc := startCluster(t, job, dir, gossipOn)
			for _, id := range []string{"w1", "w2"} {
				tc.addWorker(id)
			}
			tc.waitSteps(30, time.Minute)
			addr, gossipAddr, grace := tc.coord.Addr(), "off", 2*time.Second
			if gossipOn {
				gossipAddr, grace = tc.coord.GossipAddr(), time.Minute
			}
			tc.coord.Close()
			tc.kill("w2")
			t0 := time.Now()
			c2, err := NewCoordinator(CoordinatorConfig{Job: job, Listen: addr, Gossip: gossipAddr, Dir: dir, Secret: tc.secret,
				RejoinGrace: grace, Log: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))})
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			select {
			case <-c2.Done():
			case <-time.After(2 * time.Minute):
				t.Fatalf("training did not finish without w2 (%d steps)", len(c2.History()))
			}
			h := c2.History()
			el := time.Since(t0)
			if len(h) == 0 || !gossipOn && el < grace {
				t.Fatalf("%d steps in %v: the restarted coordinator did not wait for w2", len(h), el)
			}
			if gossipOn && el > 30*time.Second {
				t.Fatalf("training finished %v after the restart: the gossip did not end the wait for w2", el)
			}
			if h[0].World != 1 {
				t.Fatalf("first step after the restart ran with %d workers, want 1", h[0].World)
			}
			checkHistory(t, h, h[0].Step)
			t.Logf("finished %v after the restart", el.Round(100*time.Millisecond))
		})
	}
}

// TestCoordinatorReadsOldGenerationFile: a run directory written before the
// ring was recorded (the generation number alone) still never reuses a
// generation number.
func TestCoordinatorReadsOldGenerationFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "generation"), []byte("5012"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := NewCoordinator(CoordinatorConfig{Job: testJob(testCorpus(t), 10), Listen: "127.0.0.1:0", Gossip: "off", Dir: dir,
		Secret: []byte("test-cluster-key-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g := c.p.Generation(); g <= 5012 {
		t.Fatalf("generation %d after a run that reached 5012", g)
	}
}
