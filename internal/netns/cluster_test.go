//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/worker"
)

// TestNetnsCluster runs a Recur cluster as if on separate hosts: the
// coordinator and each worker in a network namespace of its own, every
// link shaped with tc tbf, the processes the recur binary. It trains a
// char LM while it kills workers (kill -9), cuts a worker's and the
// coordinator's links, kills and restarts the coordinator, and slows one
// link; then it checks from the run's history and the workers' /metrics
// that no step ran twice or went back and every member held the same
// weights, that the slow link shows in its sender's /metrics, and prints
// each recovery time and each worker's step time and neighbour waits.
//
// RECUR_NETNS=1 turns it on (root; make test-netns). RECUR_NETNS_WORKERS
// (8), RECUR_NETNS_RATE (1gbit), RECUR_NETNS_STEPS (the step budget, 1500)
// and RECUR_NETNS_ROUNDS (of faults, 2) change the run; RECUR_BIN names
// the recur binary (default: built here).
func TestNetnsCluster(t *testing.T) {
	if os.Getenv("RECUR_NETNS") == "" {
		t.Skip("set RECUR_NETNS=1 (as root) for the multi-host cluster in network namespaces: make test-netns")
	}
	if err := Available(); err != nil {
		t.Fatalf("RECUR_NETNS is set, but: %v", err)
	}
	workers := envInt(t, "RECUR_NETNS_WORKERS", 8)
	steps := envInt(t, "RECUR_NETNS_STEPS", 1500)
	rounds := envInt(t, "RECUR_NETNS_ROUNDS", 2)
	rate := os.Getenv("RECUR_NETNS_RATE")
	if rate == "" {
		rate = "1gbit"
	}
	if workers < 4 {
		t.Fatalf("RECUR_NETNS_WORKERS=%d: the faults need at least 4 workers (two die at once, min_workers is 2)", workers)
	}
	ctx, cancel := context.WithCancel(t.Context())
	if d, ok := t.Deadline(); ok { // end before go test's timeout, so that every cleanup runs
		ctx, cancel = context.WithDeadline(t.Context(), d.Add(-30*time.Second))
	}
	defer cancel()
	if removed, err := Sweep(ctx); err != nil || len(removed) > 0 {
		t.Logf("removed the namespaces of earlier runs that did not clean up: %v (%v)", removed, err)
	}
	n, err := New(ctx, Config{Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the harness has killed its processes
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	bin := recurBinary(t)
	jobArgs := []string{"--set", "data.text=" + writeCorpus(t), "--set", "model.hidden=48", "--set", "model.layers=1",
		"--set", "model.embed=16", "--set", "data.seq=32", "--set", fmt.Sprintf("data.batch=%d", 2*workers),
		"--set", fmt.Sprintf("train.steps=%d", steps), "--set", "train.threads=1",
		"--set", "train.checkpoint_every=20", "--set", "train.validate_every=200", "--set", "train.val_windows=4",
		"--set", "cluster.allreduce_timeout_ms=2000", "--set", "cluster.min_workers=2"}
	h := newHarness(t, ctx, n, bin, workers, jobArgs)
	t.Logf("%d workers and the coordinator in namespaces %s*, egress shaped to %s, %d steps", workers, n.Prefix(), rate, steps)

	scrapeCtx, stopScrape := context.WithCancel(ctx)
	scraped := make(chan struct{})
	go func() { defer close(scraped); h.scrapeEvery(scrapeCtx, 2*time.Second) }()
	defer func() { stopScrape(); <-scraped }()

	h.startCoordinator()
	for _, id := range h.ids {
		h.startWorker(id)
	}
	h.waitSteps(10, time.Time{}, 3*time.Minute)

	// Each round: a worker dies, two at once, a worker's link is cut, the
	// coordinator's link is cut, the coordinator dies and restarts. The
	// victims change from round to round.
	for r := range rounds {
		id := func(i int) string { return h.ids[(i+3*r)%len(h.ids)] }
		h.killWorkers(id(len(h.ids) - 1))
		h.killWorkers(id(1), id(len(h.ids)/2+1))
		h.cutWorker(id(2))
		h.cutCoordinator(4 * time.Second)
		h.restartCoordinator()
	}
	// One slow link: a worker's egress is throttled. Its data to its right
	// neighbour and its acknowledgements to its left one both queue there,
	// so the two longest waits on a right neighbour are its own and its
	// left neighbour's on it: /metrics names the slow node.
	slow := h.ids[len(h.ids)/2]
	during := h.slowLink(slow, slowRate, 40)
	t.Logf("worker %s's egress at %s for 40 steps, each worker's /metrics meanwhile:\n%s", slow, slowRate, workerTable(during, h.ids))
	if top := longestWaits(during, "right", 2); len(top) < 2 || !top[0].involves(slow) || !top[1].involves(slow) {
		t.Errorf("worker %s sent over a %s link, but the longest waits on a right neighbour were %v", slow, slowRate, top)
	}

	if last := lastStep(h.hist.read(t)); last >= int64(steps)-20 {
		t.Errorf("the faults ended at step %d of %d: raise RECUR_NETNS_STEPS so that training goes on after them", last, steps)
	}
	h.waitFor("the run to finish", 10*time.Minute, func(ev []events.Event) bool {
		return len(ev) > 0 && ev[len(ev)-1].Kind.Ends()
	})
	if err := waitExit(h.proc("coordinator"), time.Minute); err != nil {
		h.dumpLogs()
		t.Fatalf("the coordinator: %v", err)
	}
	for _, id := range h.ids { // told that the run is over, they exit 0
		if err := waitExit(h.proc(id), time.Minute); err != nil {
			h.dumpLogs()
			t.Fatalf("worker %s: %v", id, err)
		}
	}
	stopScrape()
	<-scraped

	ev := h.hist.read(t)
	if ev[len(ev)-1].Kind != events.EventFinished {
		h.dumpLogs()
		t.Fatalf("the run ended %s: %s", ev[len(ev)-1].Kind, ev[len(ev)-1].Message)
	}
	audit, err := events.CheckHistory(ev)
	var he *events.HistoryError
	if errors.As(err, &he) {
		for _, e := range ev[max(0, he.Index-30) : he.Index+1] {
			if e.Kind != events.EventStep {
				t.Logf("event %d %s: %s", e.Seq, e.Kind, e)
			}
		}
		h.dumpLogs()
		t.Fatal(err)
	}
	checks := h.checks + float64(audit.StateChecks)
	if audit.Last != int64(steps) || checks == 0 {
		h.dumpLogs()
		t.Fatalf("the last step recorded is %d of %d; %v state checksums compared", audit.Last, steps, checks)
	}
	compared, err := checkStates(h.samples, ev)
	if err != nil {
		t.Fatalf("workers' weights differ (from their /metrics): %v", err)
	}
	t.Logf("invariants hold: %d coordinator processes, %d step events up to step %d, every step once and in order, no divergence; "+
		"%v state checksums compared by the coordinators, %d more from the workers' /metrics", audit.Starts, audit.Steps, audit.Last, checks, compared)

	rs := recoveries(h.faults, ev, workers)
	t.Logf("recovery (from the fault to the next step recorded; a blocking fault from its end), %d workers, links %s:\n%s",
		workers, rate, recoveryTable(rs, workers))
	t.Logf("each worker's /metrics at the end (means over its last process's steps; waits summed over its neighbours):\n%s",
		workerTable(h.last, h.ids))
	for _, r := range rs {
		if r.ok && r.after() > 5*time.Second { // say why, for people
			var lines []string
			for _, e := range ev {
				if e.Time.After(r.at) && !e.Time.After(r.next.Time) && e.Kind != events.EventStep {
					lines = append(lines, fmt.Sprintf("%s +%v %s: %s", e.Time.Format("15:04:05.000"), e.Time.Sub(r.at).Round(time.Millisecond), e.Kind, e))
				}
			}
			t.Logf("%s took %v to recover; the status stream meanwhile:\n%s", r.name, r.after().Round(time.Millisecond), strings.Join(lines, "\n"))
		}
		if !r.ok || r.full == 0 {
			t.Errorf("%s: no step after it (%v) or never all %d workers again", r.name, r.ok, workers)
		}
	}
	for _, id := range h.ids {
		s, ok := h.last[id]
		if !ok || s.StepsOK == 0 || len(s.Waits) == 0 {
			t.Errorf("%s: /metrics never showed a step and its neighbour waits: %+v", id, s)
			continue
		}
		for _, w := range s.Waits {
			if _, ok := h.nodes[w.Peer]; !ok || w.Peer == id {
				t.Errorf("%s: a wait on %q, not another worker", id, w.Peer)
			}
		}
	}
}

// slowRate is the slow link's rate: a step's gradients (about 110 KB a
// rank) take some 180 ms on it, against some 30 ms for a whole step on
// the other links.
const slowRate = "5mbit"

// aWait is one worker's wait on one neighbour.
type aWait struct {
	worker, peer string
	wait         time.Duration
}

func (w aWait) involves(id string) bool { return w.worker == id || w.peer == id }

func (w aWait) String() string {
	return fmt.Sprintf("%s on %s %v", w.worker, w.peer, w.wait.Round(time.Millisecond))
}

// longestWaits returns the n longest waits on side over all workers.
func longestWaits(m map[string]worker.MetricsSummary, side string, n int) []aWait {
	var all []aWait
	for id, s := range m {
		for _, w := range s.Waits {
			if w.Side == side {
				all = append(all, aWait{id, w.Peer, w.Wait})
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].wait > all[j].wait })
	return all[:min(n, len(all))]
}

// waitExit waits for p to exit 0.
func waitExit(p *proc, limit time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		return fmt.Errorf("still running after %v", limit)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// recurBinary is $RECUR_BIN, or recur built into a temporary directory.
func recurBinary(t *testing.T) string {
	if b := os.Getenv("RECUR_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("RECUR_BIN: %v", err)
		}
		return b
	}
	out := filepath.Join(t.TempDir(), "recur")
	build := exec.Command("go", "build", "-o", out, "../../cmd/recur")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building recur: %v\n%s", err, b)
	}
	return out
}

// writeCorpus writes 200 KB of text made of a few words.
func writeCorpus(t *testing.T) string {
	words := strings.Fields("a ring of workers passes gradients to the right and waits on the left while the coordinator counts steps and keeps checkpoints")
	var b strings.Builder
	for i := 0; b.Len() < 200000; i++ {
		b.WriteString(words[(i*7+i/5)%len(words)])
		b.WriteString([]string{" ", " ", ",\n", ".\n"}[i%4])
	}
	p := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
