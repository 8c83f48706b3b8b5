//go:build linux

package netns

import (
	"fmt"
	"strings"
	"time"

	"github.com/recur-ml/recur/internal/events"
	"github.com/recur-ml/recur/internal/worker"
)

// mark records a fault about to strike: now, and the last step recorded.
func (h *harness) mark(name string) fault {
	f := fault{name: name, at: time.Now()}
	ev := h.hist.read(h.t)
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].Kind == events.EventStep {
			f.step, f.gen = ev[i].Step, ev[i].Generation
			break
		}
	}
	return f
}

// waitRecovered waits for the step that recovery() counts: one of a later
// ring than the one f struck.
func (h *harness) waitRecovered(f fault, what string) {
	h.t.Helper()
	h.waitFor(what, 2*time.Minute, func(ev []events.Event) bool {
		return recoveries([]fault{f}, ev, 0)[0].ok
	})
}

// settle waits until all workers have stepped together again after f.
func (h *harness) settle(f fault) {
	h.t.Helper()
	from := f.at
	if f.restored.After(from) {
		from = f.restored
	}
	h.waitSteps(5, from, 2*time.Minute)
	h.faults = append(h.faults, f)
}

// killWorkers kills workers with SIGKILL; once the others step without
// them, it starts them again.
func (h *harness) killWorkers(ids ...string) {
	f := h.mark("kill -9 worker " + strings.Join(ids, " and "))
	for _, id := range ids {
		h.kill(id)
	}
	h.waitRecovered(f, "a ring without "+strings.Join(ids, ", "))
	for _, id := range ids {
		h.startWorker(id)
	}
	f.restored = time.Now()
	h.settle(f)
}

// cutWorker cuts a worker's link (its process lives on, unreachable) until
// the others step without it, then restores it.
func (h *harness) cutWorker(id string) {
	f := h.mark("link down worker " + id)
	if err := h.nodes[id].SetLink(h.ctx, false); err != nil {
		h.t.Fatal(err)
	}
	h.waitRecovered(f, "a ring without "+id)
	if err := h.nodes[id].SetLink(h.ctx, true); err != nil {
		h.t.Fatal(err)
	}
	f.restored = time.Now()
	h.settle(f)
}

// cutCoordinator cuts the coordinator's link for hold: no step can be
// recorded meanwhile.
func (h *harness) cutCoordinator(hold time.Duration) {
	f := h.mark(fmt.Sprintf("link down coordinator (%v)", hold))
	if err := h.coord.SetLink(h.ctx, false); err != nil {
		h.t.Fatal(err)
	}
	time.Sleep(hold)
	if err := h.coord.SetLink(h.ctx, true); err != nil {
		h.t.Fatal(err)
	}
	f.restored, f.blocking = time.Now(), true
	h.settle(f)
}

// restartCoordinator kills the coordinator with SIGKILL and starts it
// again on the same directory.
func (h *harness) restartCoordinator() {
	if v, ok := h.coordMetric("recur_state_checks_total"); ok {
		h.checks += v // a killed coordinator never records its count
	}
	f := h.mark("kill -9 coordinator, restart")
	h.kill("coordinator")
	h.startCoordinator()
	f.restored, f.blocking = time.Now(), true
	h.settle(f)
}

// slowLink reshapes worker id's egress to rate for steps steps with every
// worker in the ring, and returns what each worker's /metrics counted
// meanwhile. The slow link's sender is the one held back by its right
// neighbour: its wait for credits grows the most.
func (h *harness) slowLink(id, rate string, steps int) map[string]worker.MetricsSummary {
	h.t.Helper()
	before := h.scrapeAll()
	if err := h.nodes[id].SetRate(h.ctx, rate); err != nil {
		h.t.Fatal(err)
	}
	at := time.Now()
	h.waitSteps(steps, at, 3*time.Minute)
	after := h.scrapeAll()
	if err := h.nodes[id].SetRate(h.ctx, h.net.cfg.Rate); err != nil {
		h.t.Fatal(err)
	}
	return deltas(before, after)
}

// scrapeAll scrapes every worker until each has answered once.
func (h *harness) scrapeAll() map[string]worker.MetricsSummary {
	h.t.Helper()
	out := map[string]worker.MetricsSummary{}
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; len(out) < len(h.ids); round++ {
		if round > 0 {
			time.Sleep(100 * time.Millisecond) // one did not answer: try it again shortly
		}
		for _, id := range h.ids {
			if _, ok := out[id]; ok {
				continue
			}
			if s, err := h.scrapeOne(id); err == nil {
				out[id] = s
			} else if time.Now().After(deadline) {
				h.t.Fatalf("%s's /metrics: %v", id, err)
			}
		}
	}
	return out
}
